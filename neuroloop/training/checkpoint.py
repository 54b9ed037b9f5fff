"""Checkpoints: everything a training run needs to resume exactly, in one atomic file.

A checkpoint is one ``.npz`` archive: the brain's weights (``joint.get_weights()``, which
include the observation normalization layers), the optimizer's variables, the running
statistics (observation and return normalizers, with their counts), counters, and the
resolved recipe as JSON (minibatch order is derived from the seed, rank and cycle). It is
written to a temporary file in the same folder and moved into place with ``os.replace``,
so a run killed at any moment leaves either the old or the new checkpoint, never half of
one. Nothing is pickled.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CHECKPOINTS = "checkpoints"
"""The folder of a run directory that holds its checkpoints."""
LATEST = "latest.npz"
BEST = "best.npz"
PERIODIC = "cycle_{cycle:05d}.npz"
_META = "meta_json"


@dataclass
class TrainingState:
    """What a run resumes from."""

    cycle: int
    """Cycles completed."""
    env_steps: int
    """Environment steps gathered so far (all processes)."""
    best_return: float
    """Best mean episode return seen in gathering."""
    weights: list[np.ndarray]
    """``brain.joint.get_weights()``."""
    optimizer: list[np.ndarray]
    """The optimizer's variables, in ``optimizer.variables`` order."""
    statistics: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Running statistics by name (``RunningMeanStd.state()``): observations, returns."""
    recipe: dict[str, Any] = field(default_factory=dict)
    """The resolved recipe."""


def save_checkpoint(path: Path, state: TrainingState) -> None:
    """Write ``state`` to ``path`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "cycle": state.cycle,
        "env_steps": state.env_steps,
        "best_return": state.best_return,
        "n_weights": len(state.weights),
        "n_optimizer": len(state.optimizer),
        "recipe": state.recipe,
    }
    arrays: dict[str, np.ndarray] = {_META: np.array(json.dumps(meta))}
    arrays.update({f"weight_{i:04d}": w for i, w in enumerate(state.weights)})
    arrays.update({f"optimizer_{i:04d}": v for i, v in enumerate(state.optimizer)})
    for name, statistics in state.statistics.items():
        arrays.update({f"statistics/{name}/{k}": np.asarray(v) for k, v in statistics.items()})
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
    os.close(descriptor)
    try:
        np.savez(temporary, **arrays)  # type: ignore[arg-type]
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def load_checkpoint(path: Path) -> TrainingState:
    """Read a checkpoint written by ``save_checkpoint``.

    Raises:
        FileNotFoundError: If there is no checkpoint at ``path``.
    """
    with np.load(path, allow_pickle=False) as archive:
        meta = json.loads(str(archive[_META]))
        return TrainingState(
            cycle=meta["cycle"],
            env_steps=meta["env_steps"],
            best_return=meta["best_return"],
            weights=[archive[f"weight_{i:04d}"] for i in range(meta["n_weights"])],
            optimizer=[archive[f"optimizer_{i:04d}"] for i in range(meta["n_optimizer"])],
            statistics=_statistics(archive),
            recipe=meta["recipe"],
        )


def _statistics(archive: Any) -> dict[str, dict[str, Any]]:
    statistics: dict[str, dict[str, Any]] = {}
    for key in archive.files:
        if key.startswith("statistics/"):
            _, name, field_name = key.split("/", 2)
            statistics.setdefault(name, {})[field_name] = archive[key]
    return statistics
