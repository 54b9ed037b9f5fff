"""``mlp``: a feed-forward brain, two tanh (or ``activation``) layers per tower, per step."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from neuroloop.brain.activations import ActivationSpec
from neuroloop.brain.contract import Brain
from neuroloop.brain.distributions import Distribution
from neuroloop.plugins.brains.blocks import (
    VISION_FILTERS,
    KerasTensor,
    assemble_two_towers,
    check_units_tuple,
    dense,
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
    activation: ActivationSpec = ACTIVATION,
) -> Brain:
    """Feed-forward policy and value towers; inputs ``[B, T, ...]`` are processed per step.

    Args:
        input_shapes: Per-step shape of each modality.
        distribution: The policy's action distribution.
        hidden_units: Sizes of the tanh hidden layers of each tower.
        vision_filters: Filters of the vision convolutions (used only with vision).
        normalize_inputs: Normalize non-vision inputs with running statistics.
        activation: Of the hidden layers: a Keras activation name, ``"lif"``, ``"soft_lif"``
            or ``{"name": "lif", **LIF parameters}`` (``neuroloop.brain.activations``).

    Raises:
        ValueError: If a size is not a positive int or the activation is unknown.
    """
    sizes = check_units_tuple("hidden_units", hidden_units)
    filters = check_units_tuple("vision_filters", vision_filters)

    def body(
        tower: str, features: KerasTensor
    ) -> tuple[KerasTensor, dict[str, KerasTensor], dict[str, KerasTensor]]:
        for index, units in enumerate(sizes):
            features = dense(features, units, activation, f"{tower}_dense{index}")
        return features, {}, {}

    return assemble_two_towers("mlp", input_shapes, distribution, body, filters, normalize_inputs)
