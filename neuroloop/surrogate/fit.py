"""Fitting ArmNet to a collected dataset, and the held-out report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from neuroloop.surrogate.armnet import ArmNet, Normalizer, variance_explained
from neuroloop.surrogate.config import FitSettings
from neuroloop.surrogate.data import Dataset


@dataclass(frozen=True)
class FitReport:
    """How well an ArmNet predicts held-out sequences."""

    names: tuple[str, ...]
    """State variables."""
    variance_explained: np.ndarray
    """Per variable, over held-out sequences and steps (physical units)."""
    mse: float
    """Held-out MSE of the normalised state."""
    mean_mse: float
    """Held-out MSE of the normalised state predicted as the training mean (0)."""
    sequences: tuple[int, int]
    """Training and held-out sequences."""
    epochs: int
    """Epochs trained."""

    def table(self) -> str:
        """The per-variable variance explained as a text table."""
        width = max(len(name) for name in self.names)
        lines = [f"{'variable':<{width}}  variance explained (held-out)"]
        for name, value in zip(self.names, self.variance_explained, strict=True):
            lines.append(f"{name:<{width}}  {100.0 * value:8.2f} %")
        lines.append(
            f"normalised MSE {self.mse:.5f} (mean predictor {self.mean_mse:.5f}); "
            f"{self.sequences[0]} training, {self.sequences[1]} held-out sequences, "
            f"{self.epochs} epochs"
        )
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "variance_explained": dict(
                zip(self.names, (float(v) for v in self.variance_explained), strict=True)
            ),
            "mse": self.mse,
            "mean_mse": self.mean_mse,
            "sequences": list(self.sequences),
            "epochs": self.epochs,
        }


def split(count: int, held_out: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of training and held-out sequences (at least one of each)."""
    order = np.random.default_rng(seed).permutation(count)
    n_test = min(max(1, round(count * held_out)), count - 1)
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def evaluate(net: ArmNet, dataset: Dataset, indices: np.ndarray, epochs: int) -> FitReport:
    """The fit report of ``net`` on the sequences ``indices`` of ``dataset``."""
    states = dataset.states[indices]
    prediction = net.predict(states[:, 0], dataset.inputs[indices])
    truth = states[:, 1:]
    normal_truth = net.normalizer.normalize(truth)
    normal_prediction = net.normalizer.normalize(prediction)
    return FitReport(
        net.names,
        variance_explained(truth, prediction),
        float(np.mean((normal_truth - normal_prediction) ** 2)),
        float(np.mean(normal_truth**2)),
        (dataset.states.shape[0] - indices.size, indices.size),
        epochs,
    )


def learning_rate(
    settings: FitSettings, batches: int
) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """``Fit.LearningRate``, decayed along a cosine over ``batches`` gradient steps to 1 %
    of it when ``Fit.Schedule`` is ``cosine``."""
    if settings.schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(
            settings.learning_rate, decay_steps=max(1, batches), alpha=0.01
        )
    return settings.learning_rate


def fit_armnet(
    dataset: Dataset,
    settings: FitSettings,
    *,
    epochs: int | None = None,
    units: int | None = None,
    checkpoint: Path | None = None,
    initial: ArmNet | None = None,
    indices: tuple[np.ndarray, np.ndarray] | None = None,
    progress: Callable[[int, dict[str, float]], None] | None = None,
) -> tuple[ArmNet, FitReport]:
    """Train an ArmNet on the training split of ``dataset``; report on the held-out split.

    Args:
        dataset: The collected sequences.
        settings: The config's ``Fit`` section.
        epochs: Overrides ``settings.epochs``.
        units: Overrides ``settings.units``.
        checkpoint: A folder the net is saved into after every epoch.
        initial: A net to continue training (its weights, normaliser and size are kept;
            its L2 penalty becomes ``settings.l2``).
        indices: Training and held-out sequences; default ``split`` by ``settings``.
        progress: Called with the epoch (from 1) and its losses.
    """
    epochs = epochs or settings.epochs
    keras.utils.set_random_seed(settings.seed)
    train, test = indices or split(dataset.states.shape[0], settings.held_out, settings.seed)
    if initial is not None:
        net = initial.with_l2(settings.l2)
    else:
        net = ArmNet(
            dataset.inputs.shape[-1],
            dataset.names,
            units or settings.units,
            settings.l2,
            Normalizer.fit(dataset.states[train]),
            dataset.dt_s,
        )
    batches = epochs * -(-train.size // settings.batch_size)
    net.model.compile(
        optimizer=keras.optimizers.Adam(
            learning_rate(settings, batches), global_clipnorm=settings.clip_norm
        ),
        loss="mse",
    )

    def arrays(indices: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        states = net.normalizer.normalize(dataset.states[indices])
        return [states[:, 0], dataset.inputs[indices]], states[:, 1:]

    def after_epoch(epoch: int, logs: dict[str, float] | None = None) -> None:
        if checkpoint is not None:
            net.save(checkpoint, {"epochs": epoch + 1, "losses": logs or {}})
        if progress is not None:
            progress(epoch + 1, logs or {})

    x_train, y_train = arrays(train)
    net.model.fit(
        x_train,
        y_train,
        batch_size=settings.batch_size,
        epochs=epochs,
        validation_data=arrays(test),
        shuffle=True,
        verbose=0,
        callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=after_epoch)],
    )
    report = evaluate(net, dataset, test, epochs)
    return net, report
