"""Sensation: what a brain perceives in one step, batched over worlds (AngoraPy's contract).

A Sensation has up to four modalities — vision, touch, proprioception, goal — plus
``asymmetric``, inputs only the value network sees during training. A brain's input layers
are named after the modalities it uses. Every present modality is a numpy array whose first
axis is the world (one row per simulated world of an engine).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from neuroloop.datapack import DataPack, as_tensor

MODALITIES: tuple[str, ...] = ("vision", "touch", "proprioception", "goal", "asymmetric")
"""Sensation modalities, in a fixed order; also the names of brain input layers."""

POLICY_MODALITIES: tuple[str, ...] = ("vision", "touch", "proprioception", "goal")
"""Modalities a policy may see: all but the training-only ``asymmetric``."""

BATCHED_RANKS: dict[str, int] = {
    "vision": 4,
    "touch": 2,
    "proprioception": 2,
    "goal": 2,
    "asymmetric": 2,
}
"""Rank of each modality in a Sensation: ``[worlds, H, W, C]`` for vision, else ``[worlds, n]``."""

TIME_AXIS = 1
"""Where ``as_inputs`` inserts the time axis: Keras brains take ``[batch, time, ...]``."""


@dataclass(frozen=True, eq=False)
class Sensation:
    """One step of perception for a batch of worlds.

    Arrays are converted to contiguous little-endian numeric arrays. At least one modality
    must be present, each with its rank in ``BATCHED_RANKS``, and all with the same first
    (world) dimension.

    Raises:
        ValueError: If no modality is given, a modality is not numeric or has the wrong
            rank, or the modalities disagree on the number of worlds.
    """

    vision: np.ndarray | None = None
    """Camera images ``[worlds, height, width, channels]``."""
    touch: np.ndarray | None = None
    """Touch sensor readings ``[worlds, n_touch]``."""
    proprioception: np.ndarray | None = None
    """Joint positions, velocities and similar body state ``[worlds, n_proprioception]``."""
    goal: np.ndarray | None = None
    """The task's goal, e.g. a target orientation ``[worlds, n_goal]``."""
    asymmetric: np.ndarray | None = None
    """Training-only privileged state for the value network ``[worlds, n_asymmetric]``."""

    def __post_init__(self) -> None:
        present = {}
        for name in MODALITIES:
            value = getattr(self, name)
            if value is None:
                continue
            array = as_tensor(value, f"Sensation.{name}")
            if array.ndim != BATCHED_RANKS[name]:
                raise ValueError(
                    f"Sensation.{name}: expected rank {BATCHED_RANKS[name]} (first axis = world). "
                    f"Received: {name}.shape={array.shape}"
                )
            object.__setattr__(self, name, array)
            present[name] = array
        if not present:
            raise ValueError(
                f"Sensation: expected at least one of {list(MODALITIES)}. Received: none"
            )
        worlds = {array.shape[0] for array in present.values()}
        if len(worlds) > 1:
            shapes = ", ".join(f"{name}.shape={array.shape}" for name, array in present.items())
            raise ValueError(
                "Sensation: every modality must have the same first (world) dimension. "
                f"Received: {shapes}"
            )

    @property
    def modalities(self) -> tuple[str, ...]:
        """Names of the present modalities, in ``MODALITIES`` order."""
        return tuple(name for name in MODALITIES if getattr(self, name) is not None)

    @property
    def num_worlds(self) -> int:
        """Number of worlds: the shared first dimension of the present modalities."""
        first: np.ndarray = getattr(self, self.modalities[0])
        return int(first.shape[0])

    def values(self) -> dict[str, np.ndarray]:
        """The present modalities by name."""
        return {name: getattr(self, name) for name in self.modalities}

    @classmethod
    def from_values(cls, values: Mapping[str, np.ndarray | None]) -> Sensation:
        """Build a Sensation from modality arrays by name; ``None`` values are ignored.

        Args:
            values: Arrays keyed by modality name.

        Raises:
            ValueError: If a key is not a modality, or the arrays are invalid together.
        """
        unknown = sorted(set(values) - set(MODALITIES))
        if unknown:
            raise ValueError(
                f"Sensation: expected modalities from {list(MODALITIES)}. Received: {unknown}"
            )
        return cls(**{name: value for name, value in values.items() if value is not None})

    @classmethod
    def from_datapacks(cls, datapacks: Iterable[DataPack]) -> Sensation:
        """Build a Sensation from tensor datapacks named after modalities.

        Empty datapacks are ignored, like ``None`` in ``from_values``.

        Args:
            datapacks: Datapacks whose names are modality names.

        Raises:
            ValueError: If a datapack is not a modality or holds a JSON value, or the
                arrays are invalid together.
        """
        values: dict[str, np.ndarray | None] = {}
        for datapack in datapacks:
            if datapack.data is not None and not isinstance(datapack.data, np.ndarray):
                raise ValueError(
                    f"Sensation: datapack {datapack.id} must hold an array. "
                    f"Received: {type(datapack.data).__name__}"
                )
            values[datapack.name] = datapack.data
        return cls.from_values(values)

    def to_datapacks(self, engine_name: str) -> list[DataPack]:
        """One tensor datapack per present modality, named after the modality.

        Args:
            engine_name: The engine the datapacks are sent to (usually the brain engine).
        """
        return [DataPack(name, engine_name, array) for name, array in self.values().items()]

    def as_inputs(
        self, names: Iterable[str] | None = None, add_time_axis: bool = True
    ) -> dict[str, np.ndarray]:
        """Keras model inputs: arrays keyed by input-layer (modality) name.

        Pass exactly the model's input names: Keras matches dict inputs by order, and
        extra keys shift them.

        Args:
            names: The modalities to include (e.g. a brain's policy inputs); all present
                modalities when ``None``.
            add_time_axis: Insert a time axis of length 1 at axis ``TIME_AXIS``, giving
                ``[worlds, 1, ...]`` for brains that take ``[batch, time, ...]``.

        Raises:
            ValueError: If a requested modality is absent or unknown.
        """
        wanted = self.modalities if names is None else tuple(names)
        missing = [name for name in wanted if name not in MODALITIES or getattr(self, name) is None]
        if missing:
            raise ValueError(
                f"Sensation.as_inputs: requested modalities {missing} are not present. "
                f"Received: modalities={list(self.modalities)}"
            )
        arrays = {name: getattr(self, name) for name in wanted}
        if add_time_axis:
            return {name: np.expand_dims(array, TIME_AXIS) for name, array in arrays.items()}
        return arrays
