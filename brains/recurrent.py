"""``lstm`` and ``gru``: small recurrent brains, Dense embedding -> recurrent layer -> heads.

Each tower (policy, value) has its own embedding and recurrent layer, so its own state:
``policy_state_h``/``policy_state_c`` and ``value_state_h``/``value_state_c`` for the LSTM,
``policy_state_h`` and ``value_state_h`` for the GRU.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from neuroloop.brain.activations import ActivationSpec
from neuroloop.brain.contract import Brain
from neuroloop.brain.distributions import Distribution
from neuroloop.plugins.brains.blocks import (
    VISION_FILTERS,
    KerasTensor,
    RecurrentKind,
    assemble_two_towers,
    check_units,
    check_units_tuple,
    dense,
    recurrent_core,
)

EMBEDDING_UNITS = 64
"""Units of the Dense embedding in front of the recurrent layer."""
RECURRENT_UNITS = 64
"""Units of the recurrent layer."""
EMBEDDING_ACTIVATION = "tanh"


def _build_recurrent(
    kind: RecurrentKind,
    input_shapes: Mapping[str, tuple[int, ...]],
    distribution: Distribution,
    embedding_units: int,
    recurrent_units: int,
    vision_filters: Sequence[int],
    normalize_inputs: bool,
    activation: ActivationSpec,
) -> Brain:
    """Build the ``lstm`` or ``gru`` brain (arguments as in ``build_lstm``)."""
    check_units("embedding_units", embedding_units)
    check_units("recurrent_units", recurrent_units)
    filters = check_units_tuple("vision_filters", vision_filters)

    def body(
        tower: str, features: KerasTensor
    ) -> tuple[KerasTensor, dict[str, KerasTensor], dict[str, KerasTensor]]:
        embedding = dense(features, embedding_units, activation, f"{tower}_embedding")
        return recurrent_core(tower, kind, recurrent_units, embedding)

    return assemble_two_towers(kind, input_shapes, distribution, body, filters, normalize_inputs)


def build_lstm(
    input_shapes: Mapping[str, tuple[int, ...]],
    distribution: Distribution,
    *,
    embedding_units: int = EMBEDDING_UNITS,
    recurrent_units: int = RECURRENT_UNITS,
    vision_filters: Sequence[int] = VISION_FILTERS,
    normalize_inputs: bool = True,
    activation: ActivationSpec = EMBEDDING_ACTIVATION,
) -> Brain:
    """A small LSTM brain with separate policy and value towers.

    Args:
        input_shapes: Per-step shape of each modality.
        distribution: The policy's action distribution.
        embedding_units: Units of the tanh Dense embedding.
        recurrent_units: Units of the LSTM (and of each state tensor).
        vision_filters: Filters of the vision convolutions (used only with vision).
        normalize_inputs: Normalize non-vision inputs with running statistics.
        activation: Of the embedding: a Keras activation name, ``"lif"``, ``"soft_lif"`` or
            ``{"name": "lif", **LIF parameters}`` (``neuroloop.brain.activations``).

    Raises:
        ValueError: If a size is not a positive int or the activation is unknown.
    """
    return _build_recurrent(
        "lstm",
        input_shapes,
        distribution,
        embedding_units,
        recurrent_units,
        vision_filters,
        normalize_inputs,
        activation,
    )


def build_gru(
    input_shapes: Mapping[str, tuple[int, ...]],
    distribution: Distribution,
    *,
    embedding_units: int = EMBEDDING_UNITS,
    recurrent_units: int = RECURRENT_UNITS,
    vision_filters: Sequence[int] = VISION_FILTERS,
    normalize_inputs: bool = True,
    activation: ActivationSpec = EMBEDDING_ACTIVATION,
) -> Brain:
    """A small GRU brain with separate policy and value towers.

    Args:
        input_shapes: Per-step shape of each modality.
        distribution: The policy's action distribution.
        embedding_units: Units of the tanh Dense embedding.
        recurrent_units: Units of the GRU (and of its state tensor).
        vision_filters: Filters of the vision convolutions (used only with vision).
        normalize_inputs: Normalize non-vision inputs with running statistics.
        activation: Of the embedding: a Keras activation name, ``"lif"``, ``"soft_lif"`` or
            ``{"name": "lif", **LIF parameters}`` (``neuroloop.brain.activations``).

    Raises:
        ValueError: If a size is not a positive int or the activation is unknown.
    """
    return _build_recurrent(
        "gru",
        input_shapes,
        distribution,
        embedding_units,
        recurrent_units,
        vision_filters,
        normalize_inputs,
        activation,
    )
