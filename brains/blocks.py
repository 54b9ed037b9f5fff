"""Building blocks shared by the brain builders: inputs, encoders, recurrent cores, assembly.

Every brain here has two towers with no shared trainable layers: the policy tower reads the
policy modalities, the value tower reads every modality (including ``asymmetric``). A tower
is ``encoder -> body -> head``; the body is what distinguishes the brains. Tensors carry a
time axis throughout (``[B, T, ...]``): Dense layers act per step, vision goes through
``TimeDistributed`` convolutions, recurrent layers run over ``T``.

Every non-vision modality input passes through a ``RunningNormalization`` layer (named
``{modality}_normalization``, shared by both towers) whose non-trainable ``mean`` and
``variance`` hold the observation statistics; ``Brain.set_input_statistics`` writes them,
and as weights of the joint model they travel with ``get_weights``/``flat_weights``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeAlias

import keras

from neuroloop.brain.activations import (
    ActivationSpec,
    activation_layer,
    activation_name,
    is_keras_activation,
)
from neuroloop.brain.contract import Brain
from neuroloop.brain.distributions import Distribution
from neuroloop.brain.layers import RunningNormalization
from neuroloop.sensation import MODALITIES, POLICY_MODALITIES

KerasTensor: TypeAlias = Any
"""A symbolic Keras tensor (``keras.KerasTensor``)."""

RecurrentKind: TypeAlias = Literal["lstm", "gru"]

VISION_FILTERS: tuple[int, ...] = (8, 16)
"""Filters of the vision block's stride-2 3x3 convolutions."""
VISION_KERNEL_SIZE = 3
VISION_STRIDE = 2

STATE_SUFFIXES: dict[str, tuple[str, ...]] = {"lstm": ("h", "c"), "gru": ("h",)}
"""Recurrent state tensors per cell kind: state inputs are named ``{tower}_state_{suffix}``."""

POLICY = "policy"
VALUE = "value"

UNNORMALIZED_MODALITIES: tuple[str, ...] = ("vision",)
"""Modalities that get no ``RunningNormalization`` (images are scaled by their encoder)."""
NORMALIZATION_SUFFIX = "_normalization"
"""``RunningNormalization`` layers are named ``{modality}{NORMALIZATION_SUFFIX}``."""

Body: TypeAlias = Callable[
    [str, KerasTensor], tuple[KerasTensor, dict[str, KerasTensor], dict[str, KerasTensor]]
]
"""``body(tower, features) -> (features, state_inputs, state_outputs)``; ``tower`` prefixes
layer and state names."""


def check_units(option: str, value: Any) -> None:
    """Raise ``ValueError`` unless ``value`` is a positive int.

    Args:
        option: The builder option's name, for the message.
        value: The option's value.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{option}` must be a positive int. Received: {option}={value!r}")


def check_units_tuple(option: str, value: Any) -> tuple[int, ...]:
    """Return ``value`` as a tuple of positive ints, or raise ``ValueError``.

    Args:
        option: The builder option's name, for the message.
        value: A sequence of layer sizes.
    """
    sizes = tuple(value)
    for size in sizes:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(
                f"`{option}` must be a sequence of positive ints. Received: {option}={value!r}"
            )
    return sizes


def dense(features: KerasTensor, units: int, activation: ActivationSpec, name: str) -> KerasTensor:
    """A ``Dense`` layer named ``name``, then ``activation``.

    A Keras activation name is applied by the ``Dense`` itself (so brains keep the graph
    they were trained with); ``lif``/``soft_lif`` is its own ``LIFRate`` layer named
    ``{name}_{activation}``.

    Raises:
        ValueError: If ``activation`` names no activation.
    """
    if is_keras_activation(activation):
        return keras.layers.Dense(units, activation=activation, name=name)(features)
    layer = activation_layer(activation, name=f"{name}_{activation_name(activation)}")
    return layer(keras.layers.Dense(units, name=name)(features))


def modality_inputs(input_shapes: Mapping[str, tuple[int, ...]]) -> dict[str, KerasTensor]:
    """One ``keras.Input`` ``[B, T, *shape]`` per modality, named after it."""
    return {
        name: keras.Input(shape=(None, *shape), name=name) for name, shape in input_shapes.items()
    }


def normalize_modalities(
    inputs: Mapping[str, KerasTensor],
) -> tuple[dict[str, KerasTensor], dict[str, tuple[str, ...]]]:
    """Pass every modality except vision through its own ``RunningNormalization``.

    Args:
        inputs: Modality inputs ``[B, T, ...]`` by name.

    Returns:
        The inputs with non-vision modalities normalized, and the normalization layer names
        by modality (``Brain.input_normalizers``).
    """
    normalized = dict(inputs)
    layers: dict[str, tuple[str, ...]] = {}
    for name, x in inputs.items():
        if name in UNNORMALIZED_MODALITIES:
            continue
        layer_name = f"{name}{NORMALIZATION_SUFFIX}"
        normalized[name] = RunningNormalization(name=layer_name)(x)
        layers[name] = (layer_name,)
    return normalized, layers


def convolve_frames(frames: KerasTensor, filters: tuple[int, ...], prefix: str) -> KerasTensor:
    """Stride-2 ReLU convolutions of every step's frame, flattened: ``[B, T, F]``.

    Layers are named ``{prefix}_step_conv{i}`` (wrapping ``{prefix}_conv{i}``) and
    ``{prefix}_flatten``.
    """
    x = frames
    for index, count in enumerate(filters):
        conv = keras.layers.Conv2D(
            count,
            VISION_KERNEL_SIZE,
            strides=VISION_STRIDE,
            padding="same",
            activation="relu",
            name=f"{prefix}_conv{index}",
        )
        x = keras.layers.TimeDistributed(conv, name=f"{prefix}_step_conv{index}")(x)
    return keras.layers.TimeDistributed(keras.layers.Flatten(), name=f"{prefix}_flatten")(x)


def encode(
    tower: str, inputs: Mapping[str, KerasTensor], vision_filters: tuple[int, ...]
) -> KerasTensor:
    """Concatenate the tower's modalities per step; vision is convolved and flattened first.

    Args:
        tower: Layer-name prefix.
        inputs: Modality inputs ``[B, T, ...]`` by name.
        vision_filters: Filters of the vision convolutions.

    Returns:
        Features ``[B, T, F]``.
    """
    parts = []
    for name in MODALITIES:
        if name not in inputs:
            continue
        x = inputs[name]
        if name == "vision":
            x = convolve_frames(x, vision_filters, f"{tower}_vision")
        parts.append(x)
    if len(parts) == 1:
        return parts[0]
    return keras.layers.Concatenate(axis=-1, name=f"{tower}_concat")(parts)


def recurrent_core(
    tower: str,
    kind: RecurrentKind,
    units: int,
    features: KerasTensor,
    module: str | None = None,
) -> tuple[KerasTensor, dict[str, KerasTensor], dict[str, KerasTensor]]:
    """An LSTM or GRU over time with explicit state inputs and outputs.

    Args:
        tower: Prefix of the layer and state names.
        kind: ``"lstm"`` or ``"gru"``.
        units: Recurrent units.
        features: ``[B, T, F]``.
        module: For a brain with several recurrent modules: the layer is named
            ``{module}_{kind}`` and the states ``{tower}_state_{module}_h`` (``_c``).

    Returns:
        Sequence ``[B, T, units]``, state inputs and final states ``[B, units]``, both keyed
        ``{tower}_state_h`` (and ``{tower}_state_c`` for an LSTM).
    """
    prefix = f"{tower}_state" if module is None else f"{tower}_state_{module}"
    names = [f"{prefix}_{suffix}" for suffix in STATE_SUFFIXES[kind]]
    state_inputs = {name: keras.Input(shape=(units,), name=name) for name in names}
    layer_class = keras.layers.LSTM if kind == "lstm" else keras.layers.GRU
    layer_name = f"{tower}_{kind}" if module is None else f"{module}_{kind}"
    layer = layer_class(units, return_sequences=True, return_state=True, name=layer_name)
    sequence, *final_states = layer(features, initial_state=list(state_inputs.values()))
    return sequence, state_inputs, dict(zip(names, final_states, strict=True))


def assemble_two_towers(
    name: str,
    input_shapes: Mapping[str, tuple[int, ...]],
    distribution: Distribution,
    body: Body,
    vision_filters: tuple[int, ...] = VISION_FILTERS,
    normalize_inputs: bool = True,
) -> Brain:
    """Build policy and value towers with ``body`` and wrap them in the three models.

    Args:
        name: The brain's registry name.
        input_shapes: Validated per-step shapes by modality.
        distribution: The policy's action distribution.
        body: Maps a tower's encoded features to its last features, creating any state.
        vision_filters: Filters of the vision convolutions.
        normalize_inputs: Put a ``RunningNormalization`` layer behind every non-vision
            modality input (shared by both towers).
    """
    inputs = modality_inputs(input_shapes)
    normalizers: dict[str, tuple[str, ...]] = {}
    features_in = inputs
    if normalize_inputs:
        features_in, normalizers = normalize_modalities(inputs)
    policy_features_in = {key: x for key, x in features_in.items() if key in POLICY_MODALITIES}

    features, policy_state_in, policy_state_out = body(
        POLICY, encode(POLICY, policy_features_in, vision_filters)
    )
    params = distribution.build_head(features, name_prefix=f"{POLICY}_")

    features, value_state_in, value_state_out = body(
        VALUE, encode(VALUE, features_in, vision_filters)
    )
    value = keras.layers.Dense(1, name=VALUE)(features)
    return wrap_models(
        name,
        inputs,
        distribution,
        (params, policy_state_in, policy_state_out),
        (value, value_state_in, value_state_out),
        normalizers,
    )


Head: TypeAlias = tuple[Any, dict[str, KerasTensor], dict[str, KerasTensor]]
"""A tower's outputs (distribution parameters by name, or the value tensor), its state
inputs and its final states."""


def wrap_models(
    name: str,
    inputs: Mapping[str, KerasTensor],
    distribution: Distribution,
    policy_head: Head,
    value_head: Head,
    normalizers: Mapping[str, tuple[str, ...]],
) -> Brain:
    """The policy, value and joint models over built towers, as a ``Brain``.

    Args:
        name: The brain's registry name.
        inputs: Every modality input by name (the policy takes the policy modalities).
        distribution: The policy's action distribution.
        policy_head: Distribution parameters by name, policy state inputs and outputs.
        value_head: The value tensor ``[B, T, 1]``, value state inputs and outputs.
        normalizers: ``Brain.input_normalizers``.
    """
    params, policy_state_in, policy_state_out = policy_head
    value, value_state_in, value_state_out = value_head
    policy_inputs = {key: x for key, x in inputs.items() if key in POLICY_MODALITIES}
    policy_outputs = {**params, **policy_state_out}
    value_outputs = {VALUE: value, **value_state_out}
    policy = keras.Model(
        {**policy_inputs, **policy_state_in}, policy_outputs, name=f"{name}_{POLICY}"
    )
    value_model = keras.Model({**inputs, **value_state_in}, value_outputs, name=f"{name}_{VALUE}")
    joint = keras.Model(
        {**inputs, **policy_state_in, **value_state_in},
        {**policy_outputs, **value_outputs},
        name=f"{name}_joint",
    )
    return Brain(
        name=name,
        policy=policy,
        value=value_model,
        joint=joint,
        distribution=distribution,
        policy_state_sizes={key: int(x.shape[-1]) for key, x in policy_state_in.items()},
        value_state_sizes={key: int(x.shape[-1]) for key, x in value_state_in.items()},
        input_normalizers=dict(normalizers),
    )
