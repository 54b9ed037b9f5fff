"""Checkpoints: everything a training run needs to resume exactly, in one atomic file.

A checkpoint is one ``.npz`` archive: the brain's weights (``joint.get_weights()``, which
include the observation normalization layers), the optimizer's variables, the running
statistics (observation and return normalizers, with their counts), counters, and the
resolved recipe, the number of processes and the cycle's progress record as JSON
(minibatch order is derived from the seed, rank and cycle). It is written to a temporary
file in the same folder, fsynced, moved into place with ``os.replace`` and the folder
fsynced, so a run killed (or a machine losing power) at any moment leaves either the old
or the new checkpoint, never half of one. Nothing is pickled.

A checkpoint that is damaged anyway (truncated, empty, overwritten) is a
:class:`DamagedCheckpointError`; :func:`newest_readable` picks the newest checkpoint of a
run that still reads.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neuroloop.errors import UsageError

CHECKPOINTS = "checkpoints"
"""The folder of a run directory that holds its checkpoints."""
LATEST = "latest.npz"
BEST = "best.npz"
PERIODIC = "cycle_{cycle:05d}.npz"
PERIODIC_GLOB = "cycle_*.npz"
TEMPORARY_SUFFIX = ".tmp.npz"
"""Ends the name of a checkpoint being written (a kill in mid-write leaves one behind)."""
_META = "meta_json"
DAMAGE = (EOFError, zipfile.BadZipFile, ValueError, KeyError)
"""What ``np.load`` and reading the archive raise for a damaged file: ``EOFError`` (empty),
``BadZipFile`` (truncated, bad CRC), ``ValueError`` (neither zip nor npy: pickled or garbage
bytes; or unreadable JSON), ``KeyError`` (an entry missing)."""


CHECKPOINT_HELP = (
    "best, latest, or a cycle number: the periodic checkpoint of that cycle "
    "(Checkpoint.Every in the recipe)"
)
"""The ``--checkpoint`` help of the commands that read a run's brain."""


def checkpoint_choice(text: str) -> str:
    """``--checkpoint``'s value: ``"best"``, ``"latest"`` or a cycle number, as given.

    Raises:
        argparse.ArgumentTypeError: For anything else (argparse prints it as the usage error).
    """
    if text in ("best", "latest") or (text.isdigit() and int(text) > 0):
        return text
    raise argparse.ArgumentTypeError(f"expected best, latest or a cycle number. Received: {text!r}")


def checkpoint_file(run_dir: Path, which: str) -> Path:
    """The checkpoint ``which`` (``"best"``, ``"latest"`` or a cycle number) of ``run_dir``."""
    if which == "best":
        name = BEST
    elif which == "latest":
        name = LATEST
    else:
        name = PERIODIC.format(cycle=int(which))
    return run_dir / CHECKPOINTS / name


class DamagedCheckpointError(UsageError):
    """A checkpoint file exists but cannot be read.

    Args:
        path: The checkpoint file.
        reason: What reading it raised.
    """

    def __init__(self, path: Path, reason: BaseException) -> None:
        self.path = path
        self.reason = f"{type(reason).__name__}: {reason}"
        super().__init__(f"{path} is damaged ({self.reason})")


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
    processes: int = 1
    """Processes (MPI ranks) the run trained with."""
    progress: dict[str, Any] | None = None
    """The progress record of the checkpoint's last cycle (``None`` before the first)."""


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
        "processes": state.processes,
        "progress": state.progress,
    }
    arrays: dict[str, np.ndarray] = {_META: np.array(json.dumps(meta))}
    arrays.update({f"weight_{i:04d}": w for i, w in enumerate(state.weights)})
    arrays.update({f"optimizer_{i:04d}": v for i, v in enumerate(state.optimizer)})
    for name, statistics in state.statistics.items():
        arrays.update({f"statistics/{name}/{k}": np.asarray(v) for k, v in statistics.items()})
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, suffix=TEMPORARY_SUFFIX)
    try:
        with os.fdopen(descriptor, "wb") as stream:
            np.savez(stream, **arrays)  # type: ignore[arg-type]
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    _fsync_directory(path.parent)


def _fsync_directory(folder: Path) -> None:
    """Make a rename in ``folder`` durable (its entry is data of the folder)."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def load_checkpoint(path: Path) -> TrainingState:
    """Read a checkpoint written by ``save_checkpoint``.

    Raises:
        FileNotFoundError: If there is no checkpoint at ``path``.
        DamagedCheckpointError: If the file cannot be read as one.
    """
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise ValueError("a single array, not a checkpoint archive")
            meta = json.loads(str(archive[_META]))
            return TrainingState(
                cycle=meta["cycle"],
                env_steps=meta["env_steps"],
                best_return=meta["best_return"],
                weights=[archive[f"weight_{i:04d}"] for i in range(meta["n_weights"])],
                optimizer=[archive[f"optimizer_{i:04d}"] for i in range(meta["n_optimizer"])],
                statistics=_statistics(archive),
                recipe=meta["recipe"],
                processes=meta.get("processes", 1),
                progress=meta.get("progress"),
            )
    except DAMAGE as error:
        raise DamagedCheckpointError(path, error) from error


@dataclass(frozen=True)
class Resumption:
    """The checkpoint a run resumes from, and the newer ones that were damaged."""

    state: TrainingState
    """What the run resumes from."""
    path: Path
    """The checkpoint file it came from."""
    damaged: list[DamagedCheckpointError]
    """Checkpoints that could not be read, ``latest`` first if it was one of them."""


def checkpoint_files(folder: Path) -> list[Path]:
    """The checkpoints in ``folder``: latest, the periodic ones (newest first), best."""
    periodic = sorted(folder.glob(PERIODIC_GLOB), reverse=True)
    return [p for p in (folder / LATEST, *periodic, folder / BEST) if p.is_file()]


def remove_partial_writes(folder: Path) -> None:
    """Delete the temporary files of checkpoints whose writing a kill interrupted."""
    for path in folder.glob(f"*{TEMPORARY_SUFFIX}"):
        path.unlink()


def newest_readable(folder: Path) -> Resumption:
    """``latest.npz`` if it reads, else the readable checkpoint of the highest cycle.

    Raises:
        UsageError: If ``folder`` holds no checkpoint, or none that reads (each named).
    """
    found: list[tuple[TrainingState, Path]] = []
    damaged: list[DamagedCheckpointError] = []
    for path in checkpoint_files(folder):
        try:
            found.append((load_checkpoint(path), path))
        except DamagedCheckpointError as error:
            damaged.append(error)
            continue
        if path.name == LATEST:
            break
    if not found:
        reasons = "; ".join(f"{e.path.name}: {e.reason}" for e in damaged) or "none"
        raise UsageError(f"{folder}: expected a readable checkpoint. Received: {reasons}")
    state, path = max(found, key=lambda item: item[0].cycle)
    return Resumption(state, path, damaged)


def _statistics(archive: Any) -> dict[str, dict[str, Any]]:
    statistics: dict[str, dict[str, Any]] = {}
    for key in archive.files:
        if key.startswith("statistics/"):
            _, name, field_name = key.split("/", 2)
            statistics.setdefault(name, {})[field_name] = archive[key]
    return statistics
