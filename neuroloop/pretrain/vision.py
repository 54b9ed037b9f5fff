"""Pose pretraining of a brain's visual module: regress the object's position and orientation.

The network trained is the brain itself, cut at its visual module: the frames go in through
the brain's ``vision`` input and the module's own layers (for the ``cortical`` brain: the
rescaling, the convolutions and the ``visual`` Dense with its activation), and a linear pose
head reads the module's output. Position is regressed per axis in units of the training
set's spread, orientation as the continuous 6-D representation (``neuroloop.pretrain.rotation``)
with the loss on the rotation matrix it maps to. Whole-brain weights are saved with their
architecture file, so the brain's ``visual_weights`` option (or ``load``) takes the module.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from neuroloop.brain.activations import LIFRate
from neuroloop.brain.contract import Brain
from neuroloop.brain.trained import Architecture, write_architecture
from neuroloop.pretrain.frames import PoseFrames
from neuroloop.pretrain.rotation import (
    SIX_D,
    angle_between,
    mean_rotation,
    sixd_to_matrix,
    sixd_to_matrix_tensor,
)

MODULE = "visual"
"""The module pretrained unless told otherwise."""
VISION = "vision"
POSE_HEAD = "pose_head"
POSITION = 3
MM_PER_M = 1000.0
MIN_SPREAD = 1e-6
"""Positions are regressed per axis in units of the training set's spread, at least this (m)."""
WEIGHTS_NAME = "visual.weights.h5"
REPORT_NAME = "pose_report.json"
LOADING_OPTIONS = ("visual_weights", "load")
"""Brain options that load weights at build time: left out of the saved architecture."""

EpochProgress = Callable[[int, float], None]
"""``progress(epoch, loss)`` after each epoch."""


@dataclass(frozen=True)
class PoseTraining:
    """How the pose network is trained and tested."""

    epochs: int = 30
    """Passes over the training frames."""
    batch_size: int = 32
    """Frames per gradient step."""
    learning_rate: float = 1e-3
    """Adam's step size."""
    held_out: float = 0.2
    """Fraction of the frames kept out of training and used to measure the errors."""
    seed: int = 0
    """Seeds the split, the initial weights and the shuffling."""
    module: str = MODULE
    """The brain module whose output the pose head reads."""


@dataclass(frozen=True)
class PoseErrors:
    """Position (mm) and orientation (degrees) errors over the held-out frames."""

    position_mm: np.ndarray
    orientation_deg: np.ndarray

    def summary(self) -> dict[str, dict[str, float]]:
        """Mean and median of each."""
        return {
            "position_error_mm": _stats(self.position_mm),
            "orientation_error_deg": _stats(self.orientation_deg),
        }


def module_output(model: keras.Model, module: str) -> Any:
    """The output tensor of ``module``: its Dense layer's, or the LIF activation after it.

    Raises:
        ValueError: If the model has no layer called ``module``.
    """
    try:
        output = model.get_layer(module).output
    except ValueError:
        raise ValueError(
            f"expected the brain to have a module {module!r} (a layer so named). "
            f"Received: layers {[layer.name for layer in model.layers]}"
        ) from None
    for layer in model.layers:
        if isinstance(layer, LIFRate) and layer.input is output:
            return layer.output
    return output


def pose_network(brain: Brain, module: str) -> keras.Model:
    """Frames ``[B, 1, H, W, 3]`` -> ``[B, 1, 3 + 6]``: position, then the 6-D rotation.

    Its layers up to ``module`` are the brain's own (training them trains the brain).

    Raises:
        ValueError: If the brain has no vision input or no such module.
    """
    if VISION not in brain.policy_modalities:
        raise ValueError(
            f"expected a brain whose policy reads {VISION!r}. Received: modalities "
            f"{list(brain.policy_modalities)}"
        )
    frames = brain.joint.get_layer(VISION).output
    features = module_output(brain.joint, module)
    pose = keras.layers.Dense(POSITION + SIX_D, name=POSE_HEAD)(features)
    network = keras.Model(frames, pose, name=f"{module}_pose")
    for layer in network.layers:
        layer.trainable = True
    return network


def pose_loss(target: Any, predicted: Any) -> Any:
    """Squared position error (scaled units) plus squared Frobenius error of the rotation.

    Args:
        target: ``[B, 1, 3 + 9]``: scaled position, then the rotation matrix row by row.
        predicted: ``[B, 1, 3 + 6]``: scaled position, then the 6-D rotation.
    """
    ops = keras.ops
    target = ops.reshape(target, (-1, POSITION + 9))
    predicted = ops.reshape(predicted, (-1, POSITION + SIX_D))
    position = ops.sum(ops.square(target[:, :POSITION] - predicted[:, :POSITION]), axis=-1)
    rotation = sixd_to_matrix_tensor(predicted[:, POSITION:])
    actual = ops.reshape(target[:, POSITION:], (-1, 3, 3))
    return position + ops.sum(ops.square(rotation - actual), axis=(-2, -1))


def split(count: int, held_out: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and held-out indices (at least one of each).

    Raises:
        ValueError: If ``count`` is below 2 or ``held_out`` outside (0, 1).
    """
    if count < 2 or not 0.0 < held_out < 1.0:
        raise ValueError(
            f"expected at least 2 frames and 0 < held_out < 1. Received: {count} frames, "
            f"held_out={held_out}"
        )
    order = np.random.default_rng(seed).permutation(count)
    n_test = min(count - 1, max(1, round(held_out * count)))
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def pose_errors(
    positions: np.ndarray,
    rotations: np.ndarray,
    true_positions: np.ndarray,
    true_rotations: np.ndarray,
) -> PoseErrors:
    """Per-frame position (mm) and geodesic orientation (degrees) errors."""
    return PoseErrors(
        position_mm=MM_PER_M * np.linalg.norm(positions - true_positions, axis=-1),
        orientation_deg=angle_between(rotations, true_rotations),
    )


def train_pose(
    brain: Brain,
    data: PoseFrames,
    training: PoseTraining,
    progress: EpochProgress | None = None,
) -> dict[str, Any]:
    """Train the brain's module on pose; return the report (errors beside the baseline).

    The baseline always predicts the training frames' mean pose: their mean position and
    the rotation nearest their mean rotation matrix.

    Raises:
        ValueError: If the frames do not fit the brain's vision input, or the split is bad.
    """
    expected = tuple(brain.joint.get_layer(VISION).output.shape[2:])
    if tuple(data.frames.shape[1:]) != expected:
        raise ValueError(
            f"expected frames of the brain's vision shape {list(expected)}. Received: "
            f"{list(data.frames.shape[1:])}"
        )
    keras.utils.set_random_seed(training.seed)
    train, test = split(len(data), training.held_out, training.seed)
    network = pose_network(brain, training.module)
    centre = data.positions[train].mean(axis=0)
    scale = np.maximum(data.positions[train].std(axis=0), MIN_SPREAD)
    targets = np.concatenate(
        [(data.positions - centre) / scale, data.rotations.reshape(len(data), 9)], axis=-1
    )[:, None, :]
    frames = data.frames[:, None].astype(np.float32)
    network.compile(optimizer=keras.optimizers.Adam(training.learning_rate), loss=pose_loss)
    callbacks = [] if progress is None else [_EpochCallback(progress)]
    started = time.perf_counter()
    history = network.fit(
        frames[train],
        targets[train],
        batch_size=training.batch_size,
        epochs=training.epochs,
        shuffle=True,
        verbose=0,
        callbacks=callbacks,
    )
    train_s = time.perf_counter() - started
    predicted = network.predict(frames[test], batch_size=training.batch_size, verbose=0)[:, 0]
    errors = pose_errors(
        centre + scale * predicted[:, :POSITION],
        sixd_to_matrix(predicted[:, POSITION:]),
        data.positions[test],
        data.rotations[test],
    )
    baseline = pose_errors(
        np.broadcast_to(centre, (len(test), 3)),
        np.broadcast_to(mean_rotation(data.rotations[train]), (len(test), 3, 3)),
        data.positions[test],
        data.rotations[test],
    )
    return {
        "module": training.module,
        "frames": len(data),
        "frame_shape": list(data.frames.shape[1:]),
        "trained_on": len(train),
        "held_out": len(test),
        "epochs": training.epochs,
        "final_loss": float(history.history["loss"][-1]),
        "held_out_errors": errors.summary(),
        "mean_pose_baseline": baseline.summary(),
        "frames_per_s_generated": len(data) / data.seconds if data.seconds > 0 else None,
        "samples_per_s_trained": len(train) * training.epochs / train_s,
        "position_spread_mm": (MM_PER_M * scale).tolist(),
    }


def save_component(
    brain: Brain, settings: Mapping[str, Any], report: Mapping[str, Any], out: Path
) -> Path:
    """Write the brain's weights, their architecture file and the report into ``out``.

    Args:
        brain: The brain whose module was trained.
        settings: Its brain engine settings (``Architecture`` keys); options that load
            weights are left out.
        report: What ``train_pose`` returned.
        out: The folder (created).

    Returns:
        The weights file.
    """
    out.mkdir(parents=True, exist_ok=True)
    weights = out / WEIGHTS_NAME
    brain.joint.save_weights(weights)
    options = {
        key: value
        for key, value in dict(settings.get("BrainOptions") or {}).items()
        if key not in LOADING_OPTIONS
    }
    write_architecture(weights, Architecture({**settings, "BrainOptions": options}))
    (out / REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return weights


def report_lines(report: Mapping[str, Any]) -> list[str]:
    """The report's errors beside the baseline, as table lines."""
    ours, base = report["held_out_errors"], report["mean_pose_baseline"]
    lines = [f"held-out frames {report['held_out']} (trained on {report['trained_on']})"]
    lines.append(f"{'':26}{'mean':>10}{'median':>10}   baseline mean / median")
    for key, label in (
        ("position_error_mm", "position error (mm)"),
        ("orientation_error_deg", "orientation error (deg)"),
    ):
        lines.append(
            f"{label:26}{ours[key]['mean']:10.1f}{ours[key]['median']:10.1f}   "
            f"{base[key]['mean']:.1f} / {base[key]['median']:.1f}"
        )
    generated = report["frames_per_s_generated"]
    if generated is not None:
        lines.append(f"frames generated   {generated:.1f} /s")
    lines.append(f"samples trained    {report['samples_per_s_trained']:.0f} /s")
    return lines


class _EpochCallback(keras.callbacks.Callback):
    def __init__(self, progress: EpochProgress) -> None:
        super().__init__()
        self._progress = progress

    def on_epoch_end(self, epoch: int, logs: Mapping[str, float] | None = None) -> None:
        self._progress(epoch + 1, float((logs or {}).get("loss", float("nan"))))


def _stats(values: np.ndarray) -> dict[str, float]:
    return {"mean": float(np.mean(values)), "median": float(np.median(values))}
