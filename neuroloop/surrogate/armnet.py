"""ArmNet: a GRU that maps a body's inputs (muscle excitations) to its state sequence.

``h0 = tanh(W s0 + b)`` encodes the (normalised) initial state; each step the GRU takes the
input applied during the step, and a linear readout gives the normalised state after it.
Trained with backpropagation through time on the MSE of the normalised state (Bray & Vyas,
"High-fidelity RNN approximations for musculoskeletal models of the arm": batch 128, L2
1e-4, gradient clipping at 10). Saved as ``armnet.weights.h5`` plus ``armnet.json`` (sizes,
variable names, normaliser, fit report) in one folder.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import keras
import numpy as np
import tensorflow as tf

from neuroloop.errors import UsageError

WEIGHTS_FILE = "armnet.weights.h5"
META_FILE = "armnet.json"
T = TypeVar("T")
STD_FLOOR = 1e-6
"""Standard deviation below which a variable counts as constant (it is then not scaled)."""


@dataclass(frozen=True)
class Normalizer:
    """Per-variable affine normalisation of the state: ``(x - mean) / std``."""

    mean: np.ndarray
    """``[S]``."""
    std: np.ndarray
    """``[S]``; 1 for constant variables."""

    @classmethod
    def fit(cls, states: np.ndarray) -> Normalizer:
        """Mean and standard deviation over every axis but the last."""
        flat = np.asarray(states, dtype=np.float64).reshape(-1, states.shape[-1])
        std = flat.std(axis=0)
        return cls(flat.mean(axis=0), np.where(std < STD_FLOOR, 1.0, std))

    def normalize(self, states: np.ndarray) -> np.ndarray:
        return ((states - self.mean) / self.std).astype(np.float32)

    def denormalize(self, states: np.ndarray) -> np.ndarray:
        return np.asarray(states, dtype=np.float64) * self.std + self.mean


class ArmNet:
    """The surrogate's layers, a sequence model for training and a one-step function.

    Args:
        n_inputs: Inputs per step.
        names: State variable names (their count is the state size).
        units: GRU units.
        l2: L2 penalty on every weight matrix.
        normalizer: The state normaliser.
        dt_s: The control timestep the surrogate was fitted at.
    """

    def __init__(
        self,
        n_inputs: int,
        names: Sequence[str],
        units: int,
        l2: float,
        normalizer: Normalizer,
        dt_s: float,
    ) -> None:
        self.n_inputs = n_inputs
        self.names = tuple(names)
        self.units = units
        self.l2 = l2
        self.normalizer = normalizer
        self.dt_s = dt_s
        self.body: dict[str, Any] = {}
        """How the body's datapacks map onto the state (``data.body_description``)."""
        penalty = keras.regularizers.L2(l2) if l2 > 0 else None
        size = len(self.names)
        self.encoder = keras.layers.Dense(
            units, activation="tanh", kernel_regularizer=penalty, name="encoder"
        )
        self.gru = keras.layers.GRU(
            units,
            return_sequences=True,
            kernel_regularizer=penalty,
            recurrent_regularizer=penalty,
            name="gru",
        )
        self.readout = keras.layers.Dense(size, kernel_regularizer=penalty, name="readout")
        initial = keras.Input((size,), name="initial_state")
        inputs = keras.Input((None, n_inputs), name="inputs")
        hidden = self.gru(inputs, initial_state=self.encoder(initial))
        self.model = keras.Model([initial, inputs], self.readout(hidden), name="armnet")
        self.model.trainable = True

    def start(self, initial: tf.Tensor) -> tf.Tensor:
        """The recurrent state ``[B, units]`` for normalised initial states ``[B, S]``."""
        hidden: tf.Tensor = self.encoder(initial)
        return hidden

    def step(self, hidden: tf.Tensor, inputs: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """One control step: ``(next hidden [B, units], normalised state after it [B, S])``."""
        output, _ = self.gru.cell(inputs, [hidden])
        return output, self.readout(output)

    def predict(self, initial: np.ndarray, inputs: np.ndarray) -> np.ndarray:
        """States ``[N, T, S]`` (physical units) after each step, from initial states
        ``[N, S]`` and inputs ``[N, T, n]``."""
        normalised = self.model.predict_on_batch(
            [self.normalizer.normalize(initial), inputs.astype(np.float32)]
        )
        return self.normalizer.denormalize(normalised)

    def with_l2(self, l2: float) -> ArmNet:
        """This net (same weights, normaliser and body) with another L2 penalty."""
        return self if l2 == self.l2 else self._rebuilt(l2)

    def _rebuilt(self, l2: float) -> ArmNet:
        """A fresh (uncompiled) net with this one's weights, normaliser and body."""
        net = ArmNet(self.n_inputs, self.names, self.units, l2, self.normalizer, self.dt_s)
        net.model.set_weights(self.model.get_weights())
        net.body = dict(self.body)
        return net

    def save(self, folder: Path, report: dict[str, Any] | None = None) -> None:
        """Write weights and metadata into ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        # A compiled model's weights file would also hold its optimizer's state (twice the
        # weights again), which nothing reads: fit --resume starts a fresh optimizer.
        plain = self._rebuilt(self.l2) if getattr(self.model, "optimizer", None) else self
        plain.model.save_weights(folder / WEIGHTS_FILE)
        meta = {
            "n_inputs": self.n_inputs,
            "names": list(self.names),
            "units": self.units,
            "l2": self.l2,
            "mean": self.normalizer.mean.tolist(),
            "std": self.normalizer.std.tolist(),
            "dt_s": self.dt_s,
            "report": report or {},
            "body": self.body,
        }
        (folder / META_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, folder: str | Path) -> ArmNet:
        """Read an ArmNet that ``save`` wrote.

        Raises:
            UsageError: If the folder lacks the files or they do not match.
        """

        def build(meta: dict[str, Any], folder: Path) -> ArmNet:
            net = cls(
                int(meta["n_inputs"]),
                meta["names"],
                int(meta["units"]),
                float(meta["l2"]),
                Normalizer(np.asarray(meta["mean"]), np.asarray(meta["std"])),
                float(meta["dt_s"]),
            )
            net.model.load_weights(folder / WEIGHTS_FILE)
            net.body = dict(meta.get("body") or {})
            return net

        return read_saved(folder, META_FILE, WEIGHTS_FILE, "fit", build)


def read_saved(
    folder: str | Path,
    meta_file: str,
    weights_file: str,
    verb: str,
    build: Callable[[dict[str, Any], Path], T],
) -> T:
    """``build(metadata, folder)`` for a network that ``neuroloop surrogate VERB`` saved.

    Raises:
        UsageError: If the files are missing or do not fit together.
    """
    folder = Path(folder)
    try:
        meta = json.loads((folder / meta_file).read_text(encoding="utf-8"))
        return build(meta, folder)
    except (OSError, KeyError, ValueError, TypeError) as error:
        raise UsageError(
            f"expected a folder with {meta_file} and {weights_file} from neuroloop surrogate "
            f"{verb}. Received: {folder} ({type(error).__name__}: {error})"
        ) from None


def variance_explained(truth: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """Per variable (last axis) ``1 - SSE / SST`` over all other axes, SST about the mean of
    ``truth``; 1 for a variable that ``truth`` holds constant and ``prediction`` matches."""
    truth = np.asarray(truth, dtype=np.float64).reshape(-1, truth.shape[-1])
    prediction = np.asarray(prediction, dtype=np.float64).reshape(truth.shape)
    sse = np.sum((truth - prediction) ** 2, axis=0)
    sst = np.sum((truth - truth.mean(axis=0)) ** 2, axis=0)
    safe = np.where(sst > 0, sst, 1.0)
    return np.where(sst > 0, 1.0 - sse / safe, np.where(sse > 0, -np.inf, 1.0))
