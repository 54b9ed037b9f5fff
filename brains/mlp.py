"""``mlp``: a feed-forward brain, two tanh layers per tower, applied at every time step."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import keras

from neuroloop.brain.contract import Brain
from neuroloop.brain.distributions import Distribution
from neuroloop.plugins.brains.blocks import (
    VISION_FILTERS,
    KerasTensor,
    assemble_two_towers,
    check_units_tuple,
)

HIDDEN_UNITS: tuple[int, ...] = (64, 64)
"""Sizes of the hidden layers of each tower."""
ACTIVATION = "tanh"


def build_mlp(
    input_shapes: Mapping[str, tuple[int, ...]],
    distribution: Distribution,
    *,
    hidden_units: Sequence[int] = HIDDEN_UNITS,
    vision_filters: Sequence[int] = VISION_FILTERS,
    normalize_inputs: bool = True,
) -> Brain:
    """Feed-forward policy and value towers; inputs ``[B, T, ...]`` are processed per step.

    Args:
        input_shapes: Per-step shape of each modality.
        distribution: The policy's action distribution.
        hidden_units: Sizes of the tanh hidden layers of each tower.
        vision_filters: Filters of the vision convolutions (used only with vision).
        normalize_inputs: Normalize non-vision inputs with running statistics.

    Raises:
        ValueError: If a size is not a positive int.
    """
    sizes = check_units_tuple("hidden_units", hidden_units)
    filters = check_units_tuple("vision_filters", vision_filters)

    def body(
        tower: str, features: KerasTensor
    ) -> tuple[KerasTensor, dict[str, KerasTensor], dict[str, KerasTensor]]:
        for index, units in enumerate(sizes):
            dense = keras.layers.Dense(units, activation=ACTIVATION, name=f"{tower}_dense{index}")
            features = dense(features)
        return features, {}, {}

    return assemble_two_towers("mlp", input_shapes, distribution, body, filters, normalize_inputs)
