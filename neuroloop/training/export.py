"""Export a training run's brain as a Keras weights file that a simulation config can load.

The file holds every weight of the brain, the running input statistics included, so a
keras_brain engine given it as ``EngineExtraConfigs.Weights`` acts exactly as the checkpoint
did during training (with ``Deterministic: true``, as ``neuroloop evaluate --deterministic``).
"""

from __future__ import annotations

from pathlib import Path

from neuroloop.brain.weights import WEIGHTS_SUFFIX
from neuroloop.errors import UsageError
from neuroloop.training.evaluate import load_run
from neuroloop.training.trainer import build_recipe_brain


def export_weights(run_dir: Path, output: Path, which: str = "best") -> Path:
    """Write the ``which`` checkpoint of ``run_dir`` to the Keras weights file ``output``.

    Raises:
        UsageError: If the run or its checkpoint is missing, or ``output`` does not end in
            ``.weights.h5``.
    """
    if not output.name.endswith(WEIGHTS_SUFFIX):
        raise UsageError(
            f"export --output: expected a file name ending in {WEIGHTS_SUFFIX}. Received: {output}"
        )
    recipe, state = load_run(run_dir, which, "export")
    config = recipe.simulation_config()
    brain = build_recipe_brain(recipe, config.engine(recipe.brain_engine).extra)
    brain.joint.set_weights(state.weights)
    output.parent.mkdir(parents=True, exist_ok=True)
    brain.joint.save_weights(output)
    return output
