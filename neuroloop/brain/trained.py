"""A trained brain as a Python object: its architecture file, loading, and stepping it.

Exported weights (``NAME.weights.h5``) carry their architecture in ``NAME.brain.json`` beside
them: the brain engine settings that rebuild the network the weights fit (``Brain``,
``BrainOptions``, ``Distribution``, ``DistributionOptions``, ``InputShapes``, ``ActionDim``).
``neuroloop.load_brain`` reads either such a pair or a training run directory::

    brain = neuroloop.load_brain("experiments/trained/reach_lstm.weights.h5")
    state = None
    action, state, outputs = brain.step(sensation, state)   # sensation: {modality: [B, n]}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neuroloop.brain.acting import ACTION, act
from neuroloop.brain.contract import Brain
from neuroloop.brain.weights import WEIGHTS_SUFFIX

ARCHITECTURE_SUFFIX = ".brain.json"
"""The architecture file of ``NAME.weights.h5`` is ``NAME.brain.json`` in the same folder."""

ARCHITECTURE_KEYS = (
    "Brain",
    "BrainOptions",
    "Distribution",
    "DistributionOptions",
    "InputShapes",
    "ActionDim",
)
"""Brain engine ``EngineExtraConfigs`` keys an architecture file holds (all of them)."""


@dataclass(frozen=True)
class Architecture:
    """What rebuilds the network a weights file fits: brain engine settings."""

    settings: Mapping[str, Any]
    """``ARCHITECTURE_KEYS`` with their values, as in a keras_brain engine's
    ``EngineExtraConfigs``."""

    @classmethod
    def from_engine(cls, extra: Mapping[str, Any]) -> Architecture:
        """The architecture part of a keras_brain engine's ``EngineExtraConfigs``."""
        return cls({key: extra[key] for key in ARCHITECTURE_KEYS if key in extra})

    def build(self) -> Brain:
        """A freshly initialized brain of this architecture."""
        from neuroloop.brain.loading import build_brain

        settings = self.settings
        return build_brain(
            settings["Brain"],
            input_shapes={name: tuple(s) for name, s in settings["InputShapes"].items()},
            action_dim=int(settings["ActionDim"]),
            distribution=settings.get("Distribution", "beta"),
            distribution_options=dict(settings.get("DistributionOptions") or {}),
            **dict(settings.get("BrainOptions") or {}),
        )


def architecture_path(weights: Path) -> Path:
    """``NAME.brain.json`` beside ``NAME.weights.h5``."""
    stem = weights.name.removesuffix(WEIGHTS_SUFFIX)
    return weights.with_name(stem + ARCHITECTURE_SUFFIX)


def write_architecture(weights: Path, architecture: Architecture) -> Path:
    """Write ``architecture`` beside ``weights``; return the file written."""
    path = architecture_path(weights)
    path.write_text(json.dumps(dict(architecture.settings), indent=2) + "\n", encoding="utf-8")
    return path


def read_architecture(weights: Path) -> Architecture | None:
    """The architecture beside ``weights``, or None when there is no such file.

    Raises:
        ValueError: If the file is not a JSON object holding every ``ARCHITECTURE_KEYS``
            entry but the optional ones.
    """
    path = architecture_path(weights)
    if not path.is_file():
        return None
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: expected a JSON object. Received: {error}") from None
    missing = [key for key in ("Brain", "InputShapes", "ActionDim") if key not in settings]
    unknown = sorted(set(settings) - set(ARCHITECTURE_KEYS))
    if missing or unknown:
        raise ValueError(
            f"{path}: expected the keys {list(ARCHITECTURE_KEYS)} (Brain, InputShapes and "
            f"ActionDim required). Received: missing {missing}, unknown {unknown}"
        )
    return Architecture(settings)


class TrainedBrain:
    """A brain with trained weights, stepped one control step at a time in this process.

    It computes what a keras_brain engine with the same weights computes: the joint model on
    one time step, then the policy's mode (``deterministic``) or a sample.

    Args:
        brain: The brain, its weights set.
        deterministic: Act on the policy's mode (as ``Deterministic: true``) or sample.
        seed: Seed of the sampler (sampling only).
    """

    def __init__(self, brain: Brain, deterministic: bool = True, seed: int | None = None) -> None:
        import tensorflow as tf

        self.brain = brain
        self.deterministic = deterministic
        self._generator = (
            tf.random.Generator.from_non_deterministic_state()
            if seed is None
            else tf.random.Generator.from_seed(seed)
        )

    @property
    def modalities(self) -> tuple[str, ...]:
        """The Sensation modalities ``step`` reads (the joint model's inputs)."""
        return tuple(sorted({*self.brain.policy_modalities, *self.brain.value_modalities}))

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-step shape of each modality ``step`` reads (no world or time axis)."""
        shapes = {tensor.name: tuple(tensor.shape[2:]) for tensor in self.brain.joint.inputs}
        return {name: shapes[name] for name in self.modalities}

    def initial_state(self, batch_size: int = 1) -> dict[str, np.ndarray]:
        """Zero recurrent state for ``batch_size`` worlds (empty for a feed-forward brain)."""
        return self.brain.initial_state(batch_size)

    def step(
        self,
        sensation: Mapping[str, Any],
        state: Mapping[str, np.ndarray] | None = None,
    ) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Act once.

        Args:
            sensation: Each modality the brain reads, ``[B, *shape]`` (B worlds).
            state: The state the previous step returned; ``None`` starts an episode.

        Returns:
            ``(action [B, A], next state, outputs)``; outputs hold ``value [B]``,
            ``log_prob [B]`` and the distribution's parameters (e.g. ``alpha``, ``beta``).

        Raises:
            ValueError: If a modality the brain reads is missing.
        """
        missing = [name for name in self.modalities if name not in sensation]
        if missing:
            raise ValueError(
                f"step: expected every modality the brain reads {list(self.modalities)}. "
                f"Received: no {missing}"
            )
        inputs = {name: np.asarray(sensation[name], np.float32) for name in self.modalities}
        batch = len(inputs[self.modalities[0]])
        out, next_state = act(
            self.brain,
            inputs,
            self.initial_state(batch) if state is None else state,
            deterministic=self.deterministic,
            generator=self._generator,
        )
        action = np.asarray(out.pop(ACTION))
        outputs = {key: np.asarray(value) for key, value in out.items()}
        return action, {name: np.asarray(value) for name, value in next_state.items()}, outputs


def load_weights_file(weights: Path) -> TrainedBrain:
    """A trained brain from ``NAME.weights.h5`` and its ``NAME.brain.json``.

    Raises:
        ValueError: If the architecture file is missing or malformed, or the weights do not
            fit it.
    """
    if not weights.name.endswith(WEIGHTS_SUFFIX):
        raise ValueError(f"expected a {WEIGHTS_SUFFIX} file. Received: {weights}")
    architecture = read_architecture(weights)
    if architecture is None:
        raise ValueError(
            f"{weights}: expected its architecture in {architecture_path(weights).name} beside "
            "it (neuroloop export writes one). Received: no such file"
        )
    brain = architecture.build()
    brain.joint.load_weights(weights)
    return TrainedBrain(brain)


def parameter_summary(brain: Brain) -> list[str]:
    """Lines naming each module (layer) of ``brain`` that holds parameters, with its count
    (trainable, plus the non-trained input statistics), and the total."""
    lines = []
    trainable = frozen = 0
    for layer in brain.joint.layers:
        learnt = sum(int(np.prod(w.shape)) for w in layer.trainable_weights)
        kept = sum(int(np.prod(w.shape)) for w in layer.non_trainable_weights)
        if learnt or kept:
            note = f"{learnt:,}" if not kept else f"{learnt:,} (+{kept:,} not trained)"
            lines.append(f"  {layer.name:<28} {type(layer).__name__:<22} {note}")
        trainable += learnt
        frozen += kept
    lines.append(
        f"  {'total':<28} {'':<22} {trainable:,} trained (+{frozen:,} input statistics, "
        "not trained)"
    )
    return lines
