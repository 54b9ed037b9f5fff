"""The brain registry: ``Brain`` (policy, value and joint Keras models) and ``build_brain``.

A brain builder is a function
``builder(input_shapes, distribution, *, normalize_inputs, **options) -> Brain`` registered
with ``@register_brain("name")``. ``build_brain`` validates what every builder relies on
(modality names and per-step shapes, the distribution) before calling it.

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
  (``brains.blocks``) listed in ``Brain.input_normalizers``, set with
  ``Brain.set_input_statistics``; feed raw observations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import keras
import numpy as np

from neuroloop.sensation import BATCHED_RANKS, MODALITIES, POLICY_MODALITIES
from neuroloop.training.distributions import Distribution, get_distribution
from neuroloop.training.normalization import RunningMeanStd

if TYPE_CHECKING:
    from brains.blocks import RunningNormalization

STATE_DTYPE = np.float32
"""dtype of recurrent state arrays from ``Brain.initial_state``."""


BrainBuilder: TypeAlias = Callable[..., "Brain"]
"""``builder(input_shapes, distribution, *, normalize_inputs, **options) -> Brain``."""

InputStatistics: TypeAlias = RunningMeanStd | tuple[Any, Any]
"""A modality's observation statistics: a ``RunningMeanStd`` or ``(mean [n], var [n])``."""

BuilderT = TypeVar("BuilderT", bound=BrainBuilder)

_BRAINS: dict[str, BrainBuilder] = {}


def _input_names(model: keras.Model) -> tuple[str, ...]:
    """The input-layer names of a functional model."""
    return tuple(sorted(tensor.name for tensor in model.inputs))


@dataclass(frozen=True)
class Brain:
    """Policy, value and joint Keras models built together, sharing their layers.

    ``joint`` computes both heads in one pass; training it trains ``policy`` and ``value``.
    """

    name: str
    """Registry name of the builder, e.g. ``"lstm"``."""
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


def register_brain(name: str) -> Callable[[BuilderT], BuilderT]:
    """Register a brain builder under ``name``.

    Args:
        name: The name configs and ``build_brain`` use.

    Raises:
        ValueError: If ``name`` is already registered.
    """

    def decorator(builder: BuilderT) -> BuilderT:
        if name in _BRAINS:
            raise ValueError(f"Brain {name!r} is already registered.")
        _BRAINS[name] = builder
        return builder

    return decorator


def known_brains() -> tuple[str, ...]:
    """Names of the registered brains, sorted."""
    return tuple(sorted(_BRAINS))


def _validate_input_shapes(
    input_shapes: Mapping[str, tuple[int, ...]],
) -> dict[str, tuple[int, ...]]:
    """Check modality names and per-step shapes; return them as tuples of ints.

    Raises:
        ValueError: If a name is not a modality, a shape has the wrong rank or a
            non-positive size, or no modality is left for the policy.
    """
    unknown = sorted(set(input_shapes) - set(MODALITIES))
    if unknown:
        raise ValueError(
            f"build_brain: input names must be Sensation modalities {list(MODALITIES)}. "
            f"Received: {unknown}"
        )
    shapes = {}
    for name in MODALITIES:
        if name not in input_shapes:
            continue
        shape = tuple(input_shapes[name])
        rank = BATCHED_RANKS[name] - 1
        if len(shape) != rank or not all(isinstance(size, int) and size > 0 for size in shape):
            raise ValueError(
                f"build_brain: input_shapes[{name!r}] must be {rank} positive ints per step "
                f"(no batch or time axis). Received: {name}={input_shapes[name]!r}"
            )
        shapes[name] = shape
    if not any(name in shapes for name in POLICY_MODALITIES):
        raise ValueError(
            f"build_brain: the policy needs at least one of {list(POLICY_MODALITIES)}. "
            f"Received: input_shapes={dict(input_shapes)}"
        )
    return shapes


def build_brain(
    name: str,
    *,
    input_shapes: Mapping[str, tuple[int, ...]],
    action_dim: int,
    distribution: str | Distribution = "beta",
    distribution_options: Mapping[str, Any] | None = None,
    normalize_inputs: bool = True,
    **options: Any,
) -> Brain:
    """Build a registered brain.

    Args:
        name: Registry name (``known_brains()``), e.g. ``"mlp"``, ``"lstm"``, ``"gru"``,
            ``"wide"``.
        input_shapes: Per-step shape of each modality input, without batch or time axis:
            ``(H, W, C)`` for vision, ``(n,)`` for the others.
        action_dim: Number of action dimensions (joints).
        distribution: A distribution name (``"beta"``, ``"gaussian"``,
            ``"multicategorical"``) or a ``Distribution`` with the same ``action_dim``.
        distribution_options: Options for ``get_distribution`` when ``distribution`` is a
            name, e.g. ``{"n_bins": 11}``.
        normalize_inputs: Normalize every non-vision modality input with running
            statistics inside the brain (``Brain.set_input_statistics``).
        **options: Builder options, e.g. layer sizes (see each builder).

    Raises:
        ValueError: If ``name`` is unknown, the shapes are invalid, or the distribution
            does not match ``action_dim``.
        TypeError: If an option does not belong to the builder.
    """
    if name not in _BRAINS:
        raise ValueError(
            f"Unknown brain; expected one of {list(known_brains())}. Received: name={name!r}"
        )
    shapes = _validate_input_shapes(input_shapes)
    if isinstance(distribution, Distribution):
        if distribution_options:
            raise ValueError(
                "build_brain: `distribution_options` only apply to a distribution name. "
                f"Received: distribution={distribution!r}, "
                f"distribution_options={dict(distribution_options)}"
            )
        if distribution.action_dim != action_dim:
            raise ValueError(
                "build_brain: the distribution's action_dim must equal `action_dim`. "
                f"Received: action_dim={action_dim}, distribution={distribution!r}"
            )
        dist = distribution
    else:
        dist = get_distribution(distribution, action_dim, **(distribution_options or {}))
    return _BRAINS[name](shapes, dist, normalize_inputs=normalize_inputs, **options)
