"""The brain contract: ``Brain``, policy, value and joint Keras models built together.

Model contract, for every brain (``B`` batch, ``T`` time, ``A`` action_dim):

- Inputs are a dict keyed by input-layer name. Modality inputs are named after Sensation
  modalities and shaped ``[B, T, *input_shapes[name]]``; the policy never takes
  ``asymmetric``. Recurrent brains add state inputs ``[B, units]`` named
  ``policy_state_*`` (policy) and ``value_state_*`` (value).
- Outputs are a dict: the distribution's parameters (``alpha``/``beta``, ``mean``/``log_std``
  or ``logits``), ``value [B, T, 1]``, and the final recurrent states under the same names
  as the state inputs.
- Pass exactly a model's input names (``Brain.select_inputs``): Keras matches dict inputs
  by order, so extra keys silently shift them.
- Observation normalization lives inside the models: ``RunningNormalization`` layers
  (``neuroloop.brain.layers``) listed in ``Brain.input_normalizers``, set with
  ``Brain.set_input_statistics``; feed raw observations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

import keras
import numpy as np

from neuroloop.brain.distributions import Distribution
from neuroloop.brain.normalization import RunningMeanStd
from neuroloop.sensation import MODALITIES

if TYPE_CHECKING:
    from neuroloop.brain.layers import RunningNormalization

STATE_DTYPE = np.float32
"""dtype of recurrent state arrays from ``Brain.initial_state``."""


InputStatistics: TypeAlias = RunningMeanStd | tuple[Any, Any]
"""A modality's observation statistics: a ``RunningMeanStd`` or ``(mean [n], var [n])``."""


def _input_names(model: keras.Model) -> tuple[str, ...]:
    """The input-layer names of a functional model."""
    return tuple(sorted(tensor.name for tensor in model.inputs))


@dataclass(frozen=True)
class Brain:
    """Policy, value and joint Keras models built together, sharing their layers.

    ``joint`` computes both heads in one pass; training it trains ``policy`` and ``value``.
    """

    name: str
    """The builder's name or spec, e.g. ``"lstm"`` or ``"my_brain.py:build"``."""
    policy: keras.Model
    """Modalities (no ``asymmetric``) and policy state in; distribution parameters and
    policy state out."""
    value: keras.Model
    """Modalities (``asymmetric`` allowed) and value state in; ``value [B, T, 1]`` and value
    state out."""
    joint: keras.Model
    """Inputs of both models in; outputs of both models out."""
    distribution: Distribution
    """The action distribution whose parameters the policy outputs."""
    policy_state_sizes: Mapping[str, int] = field(default_factory=dict)
    """Recurrent state of the policy: input/output name -> units. Empty if feed-forward."""
    value_state_sizes: Mapping[str, int] = field(default_factory=dict)
    """Recurrent state of the value network: input/output name -> units."""
    input_normalizers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Modality -> names of the ``RunningNormalization`` layers (in ``joint``) that
    normalize it. Empty if the brain normalizes no input."""

    @property
    def policy_state_names(self) -> tuple[str, ...]:
        """Names of the policy's recurrent state inputs (and outputs)."""
        return tuple(self.policy_state_sizes)

    @property
    def value_state_names(self) -> tuple[str, ...]:
        """Names of the value network's recurrent state inputs (and outputs)."""
        return tuple(self.value_state_sizes)

    @property
    def state_names(self) -> tuple[str, ...]:
        """Names of the joint model's recurrent state: policy's, then value's."""
        return self.policy_state_names + self.value_state_names

    @property
    def is_recurrent(self) -> bool:
        """True when the brain carries recurrent state between steps."""
        return bool(self.state_names)

    @property
    def policy_modalities(self) -> tuple[str, ...]:
        """Modalities the policy reads, in ``MODALITIES`` order."""
        names = _input_names(self.policy)
        return tuple(name for name in MODALITIES if name in names)

    @property
    def value_modalities(self) -> tuple[str, ...]:
        """Modalities the value network reads, in ``MODALITIES`` order."""
        names = _input_names(self.value)
        return tuple(name for name in MODALITIES if name in names)

    def initial_state(
        self, batch_size: int, names: tuple[str, ...] | None = None
    ) -> dict[str, np.ndarray]:
        """Zero recurrent state ``[batch_size, units]`` per state name.

        Args:
            batch_size: Number of worlds (batch rows).
            names: State names to include; all of ``state_names`` when ``None``.
        """
        sizes = {**self.policy_state_sizes, **self.value_state_sizes}
        wanted = self.state_names if names is None else names
        return {name: np.zeros((batch_size, sizes[name]), STATE_DTYPE) for name in wanted}

    def reset_state(
        self, state: Mapping[str, np.ndarray], done: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Zero the state rows of worlds whose episode ended.

        Args:
            state: Recurrent state by name, each ``[batch, units]``.
            done: Boolean ``[batch]``: True where the episode ended.
        """
        keep = ~np.asarray(done, dtype=bool)[:, np.newaxis]
        return {
            name: np.where(keep, np.asarray(value), 0).astype(STATE_DTYPE)
            for name, value in state.items()
        }

    def _normalizer_layers(self, modality: str) -> list[RunningNormalization]:
        """The ``RunningNormalization`` layers of ``modality``.

        Raises:
            ValueError: If the brain does not normalize ``modality``.
        """
        if modality not in self.input_normalizers:
            raise ValueError(
                f"[{self.name}] expected statistics of normalized modalities "
                f"{list(self.input_normalizers)}. Received: {modality!r}"
            )
        return [self.joint.get_layer(name) for name in self.input_normalizers[modality]]

    def set_input_statistics(self, stats: Mapping[str, InputStatistics]) -> None:
        """Write observation statistics into every normalization layer of each modality.

        Modalities not in ``stats`` keep their statistics. The statistics are weights of
        ``joint``, so ``flat_weights(brain.joint)`` carries them to the brain engines.

        Args:
            stats: Per modality a ``RunningMeanStd`` of shape ``(n,)`` or ``(mean, var)``
                arrays ``[n]``.

        Raises:
            ValueError: If a modality is not normalized by this brain or a shape is wrong.
        """
        layers = {modality: self._normalizer_layers(modality) for modality in stats}
        for modality, statistics in stats.items():
            if isinstance(statistics, RunningMeanStd):
                mean, var = statistics.mean, statistics.var
            else:
                mean, var = statistics
            for layer in layers[modality]:
                layer.set_statistics(mean, var)

    def input_statistics(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``(mean [n], variance [n])`` of every normalized modality (its first layer)."""
        return {
            modality: self._normalizer_layers(modality)[0].statistics()
            for modality in self.input_normalizers
        }

    def select_inputs(self, model: keras.Model, values: Mapping[str, Any]) -> dict[str, Any]:
        """Exactly the inputs ``model`` takes, picked from ``values`` by name, as tensors.

        Converting every value lets callers mix numpy arrays and tensors (Keras refuses a
        dict that mixes them), e.g. fresh observations with state a model returned.

        Args:
            model: ``policy``, ``value`` or ``joint``.
            values: Modality arrays and recurrent state by name (extra keys are dropped).

        Raises:
            ValueError: If ``values`` lacks an input of ``model``.
        """
        names = _input_names(model)
        missing = [name for name in names if name not in values]
        if missing:
            raise ValueError(
                f"[{self.name}] {model.name} needs inputs {list(names)}; missing {missing}. "
                f"Received: keys={sorted(values)}"
            )
        return {name: keras.ops.convert_to_tensor(values[name]) for name in names}
