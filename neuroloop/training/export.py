"""Export a training run's brain as a Keras weights file that a simulation config can load,
and load a trained brain back into Python (``neuroloop.load_brain``).

The weights file holds every weight of the brain, the running input statistics included, so
a keras_brain engine given it as ``EngineExtraConfigs.Weights`` acts exactly as the
checkpoint did during training (with ``Deterministic: true``, as ``neuroloop evaluate
--deterministic``). Its architecture goes beside it (``NAME.brain.json``), so the file can
be loaded, evaluated and rendered without restating the network's shape.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neuroloop.brain.trained import (
    Architecture,
    TrainedBrain,
    load_weights_file,
    write_architecture,
)
from neuroloop.brain.weights import WEIGHTS_SUFFIX
from neuroloop.errors import UsageError
from neuroloop.training.evaluate import load_run


def run_architecture(
    run_dir: Path, which: str, command: str
) -> tuple[Architecture, list[np.ndarray]]:
    """The architecture and the ``which`` checkpoint's weights of training run ``run_dir``.

    Raises:
        UsageError: If the run or its checkpoint is missing (``command`` is named).
    """
    recipe, state = load_run(run_dir, which, command)
    config = recipe.simulation_config()
    return Architecture.from_engine(config.engine(recipe.brain_engine).extra), state.weights


def export_weights(run_dir: Path, output: Path, which: str = "best") -> Path:
    """Write the ``which`` checkpoint of ``run_dir`` to the Keras weights file ``output``,
    and its architecture beside it.

    Raises:
        UsageError: If the run or its checkpoint is missing, or ``output`` does not end in
            ``.weights.h5``.
    """
    if not output.name.endswith(WEIGHTS_SUFFIX):
        raise UsageError(
            f"export --output: expected a file name ending in {WEIGHTS_SUFFIX}. Received: {output}"
        )
    architecture, weights = run_architecture(run_dir, which, "export")
    brain = architecture.build()
    brain.joint.set_weights(weights)
    output.parent.mkdir(parents=True, exist_ok=True)
    brain.joint.save_weights(output)
    write_architecture(output, architecture)
    return output


def load_brain(source: str | Path, which: str = "best", deterministic: bool = True) -> TrainedBrain:
    """A trained brain to step in Python: ``step(sensation, state) -> (action, state, outputs)``.

    Args:
        source: A training run directory (its ``which`` checkpoint), or a ``.weights.h5``
            file with its ``.brain.json`` beside it (``neuroloop export`` writes both).
        which: ``"best"`` or ``"latest"`` checkpoint of a run.
        deterministic: Act on the policy's mode (as ``neuroloop evaluate --deterministic``).

    Raises:
        UsageError: If ``source`` is neither, or its files do not fit together.
    """
    path = Path(source)
    if path.is_dir():
        architecture, weights = run_architecture(path, which, "load_brain")
        brain = architecture.build()
        brain.joint.set_weights(weights)
        return TrainedBrain(brain, deterministic)
    try:
        trained = load_weights_file(path)
    except (ValueError, OSError) as error:
        raise UsageError(f"load_brain {path}: {error}") from None
    trained.deterministic = deterministic
    return trained
