"""``wide``: the OpenAI (2020) / AngoraPy baseline brain for in-hand manipulation.

Each tower is ``Dense -> LayerNormalization -> ReLU -> LSTM -> head`` (``activation`` may
replace the ReLU), and the value network has its own embedding and LSTM: policy and value
share no trainable layers. The defaults are the real sizes; tests pass small
``embedding_units`` and ``recurrent_units``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import keras

from neuroloop.brain.activations import ActivationSpec, activation_layer, activation_name
from neuroloop.brain.contract import Brain
from neuroloop.brain.distributions import Distribution
from neuroloop.plugins.brains.blocks import (
    VISION_FILTERS,
    KerasTensor,
    assemble_two_towers,
    check_units,
    check_units_tuple,
    recurrent_core,
)

EMBEDDING_UNITS = 512
"""Units of the Dense embedding of each tower."""
RECURRENT_UNITS = 1024
"""Units of the LSTM of each tower."""
EMBEDDING_ACTIVATION = "relu"


def build_wide(
    input_shapes: Mapping[str, tuple[int, ...]],
    distribution: Distribution,
    *,
    embedding_units: int = EMBEDDING_UNITS,
    recurrent_units: int = RECURRENT_UNITS,
    vision_filters: Sequence[int] = VISION_FILTERS,
    normalize_inputs: bool = True,
    activation: ActivationSpec = EMBEDDING_ACTIVATION,
) -> Brain:
    """The wide baseline: per tower Dense + layer norm + ReLU embedding, then an LSTM.

    Args:
        input_shapes: Per-step shape of each modality.
        distribution: The policy's action distribution.
        embedding_units: Units of the Dense embedding.
        recurrent_units: Units of the LSTM (and of each state tensor).
        vision_filters: Filters of the vision convolutions (used only with vision).
        normalize_inputs: Normalize non-vision inputs with running statistics.
        activation: After the layer norm: a Keras activation name, ``"lif"``, ``"soft_lif"``
            or ``{"name": "lif", **LIF parameters}`` (``neuroloop.brain.activations``).

    Raises:
        ValueError: If a size is not a positive int or the activation is unknown.
    """
    check_units("embedding_units", embedding_units)
    check_units("recurrent_units", recurrent_units)
    filters = check_units_tuple("vision_filters", vision_filters)

    def body(
        tower: str, features: KerasTensor
    ) -> tuple[KerasTensor, dict[str, KerasTensor], dict[str, KerasTensor]]:
        x = keras.layers.Dense(embedding_units, name=f"{tower}_embedding")(features)
        x = keras.layers.LayerNormalization(name=f"{tower}_embedding_norm")(x)
        label = activation_name(activation)
        x = activation_layer(activation, name=f"{tower}_embedding_{label}")(x)
        return recurrent_core(tower, "lstm", recurrent_units, x)

    return assemble_two_towers("wide", input_shapes, distribution, body, filters, normalize_inputs)
