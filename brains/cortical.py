"""``cortical``: a policy wired as the frontoparietal network, from named modules.

The policy is one declared graph of modules (``DEFAULT_MODULES``)::

    vision -> visual --------------.
    goal --------------------------+-> parietal -> premotor (LSTM) -> motor (LSTM) -> head
    touch, proprioception -> somatosensory -'-----------------------------'

Each module concatenates its inputs (modalities or other modules), applies a ``Dense`` layer
named after it and its activation (``tanh``, ``relu``, ``lif``, ``soft_lif``, ...); a recurrent
module then runs an LSTM or GRU named ``{module}_{kind}`` whose state is
``policy_state_{module}_h`` (and ``_c``). A module that reads vision (``visual``) first
convolves the frames, scaled from [0, 255] to [0, 1] (``visual_step_conv{i}``). A module
whose inputs are all absent (``visual`` without vision) is left out, and so are its edges.
The value network is a separate tower (Dense -> LSTM -> value) over every modality,
``asymmetric`` included.

A module can be frozen (its weights leave the optimizer) and its weights can be taken from
another trained brain's ``.weights.h5`` (``load``): the modular direction, a trained module
driven by a new one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

from neuroloop.brain.activations import ActivationSpec
from neuroloop.brain.contract import Brain
from neuroloop.brain.distributions import Distribution, get_distribution
from neuroloop.brain.loading import build_brain
from neuroloop.brain.trained import read_architecture
from neuroloop.errors import UsageError
from neuroloop.plugins.brains.blocks import (
    POLICY,
    STATE_SUFFIXES,
    VALUE,
    VISION_FILTERS,
    KerasTensor,
    check_units,
    check_units_tuple,
    convolve_frames,
    dense,
    encode,
    modality_inputs,
    normalize_modalities,
    recurrent_core,
    wrap_models,
)
from neuroloop.sensation import MODALITIES, POLICY_MODALITIES
from neuroloop.shipped import WEIGHTS, resolve

NAME = "cortical"
PIXEL_SCALE = 1.0 / 255.0
"""Frames arrive as values in [0, 255]."""
ACTIVATION = "tanh"
MODULE_KEYS: tuple[str, ...] = ("inputs", "units", "recurrent", "activation", "frozen")
"""What a module's entry in ``modules`` may set."""
VALUE_KEYS: tuple[str, ...] = ("units", "recurrent", "activation")
RESERVED_PREFIXES: tuple[str, ...] = (POLICY, VALUE)
"""Layer names of the policy head and of the value tower start so."""

DEFAULT_MODULES: dict[str, dict[str, Any]] = {
    "visual": {"inputs": ["vision"], "units": 64, "recurrent": None},
    "somatosensory": {"inputs": ["touch", "proprioception"], "units": 64, "recurrent": None},
    "parietal": {"inputs": ["visual", "somatosensory", "goal"], "units": 64, "recurrent": None},
    "premotor": {"inputs": ["parietal"], "units": 64, "recurrent": "lstm"},
    "motor": {"inputs": ["premotor", "somatosensory"], "units": 64, "recurrent": "lstm"},
}
"""The declared graph: each module's inputs, size and recurrent cell (``None``: none)."""
VISUAL = "visual"
"""The module that reads vision, which ``visual_weights`` loads."""
OUTPUT = "motor"
"""The module the policy head reads."""
NEW_MODULE: dict[str, Any] = {"units": 64, "recurrent": None}
"""Defaults of a module ``modules`` adds."""
DEFAULT_VALUE: dict[str, Any] = {"units": 64, "recurrent": "lstm"}
"""The value tower: Dense of ``units`` (the brain's activation) -> recurrent cell -> value."""


@dataclass(frozen=True)
class Module:
    """One module of the policy graph."""

    name: str
    inputs: tuple[str, ...]
    """Modalities or modules it reads, concatenated in this order."""
    units: int
    """Units of its Dense layer and of its recurrent cell."""
    recurrent: str | None
    """``"lstm"``, ``"gru"`` or ``None`` (feed-forward)."""
    activation: ActivationSpec
    """Activation of its Dense layer."""
    frozen: bool
    """Its weights are not trained."""


def _check_recurrent(option: str, value: Any) -> str | None:
    """``value`` if it is ``None`` or a recurrent kind, else ``ValueError``."""
    if value is not None and value not in STATE_SUFFIXES:
        raise ValueError(
            f"`{option}` must be one of {sorted(STATE_SUFFIXES)} or null. "
            f"Received: {option}={value!r}"
        )
    return value


def _declared_modules(
    overrides: Mapping[str, Mapping[str, Any] | None], activation: ActivationSpec
) -> dict[str, Module]:
    """``DEFAULT_MODULES`` with ``overrides`` merged in per key; ``None`` removes a module.

    Raises:
        ValueError: If an entry has an unknown key or a bad value.
    """
    entries: dict[str, dict[str, Any]] = {
        name: dict(spec) for name, spec in DEFAULT_MODULES.items()
    }
    for name, override in overrides.items():
        if override is None:
            entries.pop(name, None)
            continue
        if not isinstance(override, Mapping) or set(override) - set(MODULE_KEYS):
            raise ValueError(f"`modules.{name}` takes {list(MODULE_KEYS)}. Received: {override!r}")
        entries[name] = {**entries.get(name, NEW_MODULE), **override}
    modules = {}
    for name, entry in entries.items():
        if name in MODALITIES or name.startswith(RESERVED_PREFIXES) or not name.isidentifier():
            raise ValueError(
                f"`modules` names must be identifiers, not modalities {list(MODALITIES)}, not "
                f"starting with {list(RESERVED_PREFIXES)}. Received: {name!r}"
            )
        if "inputs" not in entry:
            raise ValueError(f"`modules.{name}` needs `inputs`. Received: {entry!r}")
        check_units(f"modules.{name}.units", entry["units"])
        inputs = entry["inputs"]
        if not isinstance(inputs, list | tuple) or not all(isinstance(x, str) for x in inputs):
            raise ValueError(
                f"`modules.{name}.inputs` must be a list of modality or module names. "
                f"Received: {inputs!r}"
            )
        modules[name] = Module(
            name=name,
            inputs=tuple(inputs),
            units=entry["units"],
            recurrent=_check_recurrent(f"modules.{name}.recurrent", entry["recurrent"]),
            activation=entry.get("activation", activation),
            frozen=bool(entry.get("frozen", False)),
        )
    return modules


def _wired(modules: Mapping[str, Module], modalities: Sequence[str]) -> list[Module]:
    """The modules that receive input, in an order where every input comes first.

    Inputs that are absent (a modality the body does not send, a module left out) are
    dropped from each module; a module left with none is left out.

    Raises:
        ValueError: If a module reads an unknown name or ``asymmetric``, or the graph has
            a cycle.
    """
    for module in modules.values():
        for source in module.inputs:
            if source in modules:
                continue
            if source not in POLICY_MODALITIES:
                raise ValueError(
                    f"`modules.{module.name}.inputs` must name policy modalities "
                    f"{list(POLICY_MODALITIES)} or modules {sorted(modules)}. "
                    f"Received: {source!r}"
                )
    order: list[Module] = []
    present = set(modalities)
    pending = dict(modules)
    while pending:
        ready = [
            module
            for module in pending.values()
            if all(source not in pending for source in module.inputs)
        ]
        if not ready:
            raise ValueError(
                f"`modules` must not form a cycle. Received: modules {sorted(pending)} "
                "read each other"
            )
        for module in ready:
            del pending[module.name]
            inputs = tuple(source for source in module.inputs if source in present)
            if inputs:
                order.append(dataclasses.replace(module, inputs=inputs))
                present.add(module.name)
    return order


def _visual_features(frames: KerasTensor, filters: tuple[int, ...], module: str) -> KerasTensor:
    """Frames ``[B, T, H, W, C]`` in [0, 255] -> flattened convolution features per step.

    Layers are named ``{module}_scale``, ``{module}_step_conv{i}``, ``{module}_flatten``.
    """
    scaled = keras.layers.Rescaling(PIXEL_SCALE, name=f"{module}_scale")(frames)
    return convolve_frames(scaled, filters, module)


def _build_policy_modules(
    order: Sequence[Module],
    sources: dict[str, KerasTensor],
    filters: tuple[int, ...],
) -> tuple[dict[str, list[str]], dict[str, KerasTensor], dict[str, KerasTensor]]:
    """Build every module in ``order``, adding its output to ``sources``.

    Returns:
        The layer names of each module, the policy's state inputs and final states.
    """
    layers: dict[str, list[str]] = {}
    state_in: dict[str, KerasTensor] = {}
    state_out: dict[str, KerasTensor] = {}
    for module in order:
        names: list[str] = []
        parts = [
            _visual_features(sources[source], filters, module.name)
            if source == "vision"
            else sources[source]
            for source in module.inputs
        ]
        if "vision" in module.inputs:
            names += [f"{module.name}_step_conv{index}" for index in range(len(filters))]
        x = parts[0]
        if len(parts) > 1:
            x = keras.layers.Concatenate(axis=-1, name=f"{module.name}_inputs")(parts)
        x = dense(x, module.units, module.activation, module.name)
        names.append(module.name)
        if module.recurrent is not None:
            x, inputs, finals = recurrent_core(
                POLICY, module.recurrent, module.units, x, module=module.name
            )
            state_in.update(inputs)
            state_out.update(finals)
            names.append(f"{module.name}_{module.recurrent}")
        layers[module.name] = names
        sources[module.name] = x
    return layers, state_in, state_out


def _value_tower(
    features_in: Mapping[str, KerasTensor],
    options: Mapping[str, Any],
    activation: ActivationSpec,
    filters: tuple[int, ...],
) -> tuple[KerasTensor, dict[str, KerasTensor], dict[str, KerasTensor]]:
    """Every modality -> Dense -> optional recurrent cell -> value ``[B, T, 1]``."""
    unknown = sorted(set(options) - set(VALUE_KEYS))
    if unknown:
        raise ValueError(f"`value` takes {list(VALUE_KEYS)}. Received: {dict(options)!r}")
    settings = {**DEFAULT_VALUE, **options}
    check_units("value.units", settings["units"])
    kind = _check_recurrent("value.recurrent", settings["recurrent"])
    x = dense(
        encode(VALUE, features_in, filters),
        settings["units"],
        settings.get("activation", activation),
        f"{VALUE}_embedding",
    )
    state_in: dict[str, KerasTensor] = {}
    state_out: dict[str, KerasTensor] = {}
    if kind is not None:
        x, state_in, state_out = recurrent_core(VALUE, kind, settings["units"], x)
    return keras.layers.Dense(1, name=VALUE)(x), state_in, state_out


def _load_modules(
    brain: Brain,
    layers: Mapping[str, list[str]],
    load: Mapping[str, Any],
    input_shapes: Mapping[str, tuple[int, ...]],
    own: Mapping[str, Any],
) -> None:
    """Copy the weights of ``load["modules"]`` from another trained brain, layer by layer.

    The source brain is built (``load["brain"]``, default ``cortical``, with
    ``load["options"]``, default this brain's options) for ``load["input_shapes"]`` and
    ``load["action_dim"]`` (default this brain's), and its ``load["weights"]`` file loaded.

    Raises:
        ValueError: If a key is missing or unknown, a module is not in this brain, or a
            layer's weights do not fit.
    """
    keys = ("weights", "modules", "brain", "options", "input_shapes", "action_dim")
    unknown = sorted(set(load) - set(keys))
    if unknown or "weights" not in load or "modules" not in load:
        raise ValueError(
            f"`load` takes {list(keys)} and needs `weights` and `modules`. Received: {dict(load)!r}"
        )
    wanted = [load["modules"]] if isinstance(load["modules"], str) else list(load["modules"])
    missing = [name for name in wanted if name not in layers]
    if missing:
        raise ValueError(
            f"`load.modules` must name modules of this brain {sorted(layers)}. Received: {missing}"
        )
    path = Path(load["weights"])
    if not path.is_file():
        raise ValueError(f"`load.weights` must be a .weights.h5 file. Received: {str(path)!r}")
    action_dim = load.get("action_dim", brain.distribution.action_dim)
    distribution: str | Distribution = brain.distribution
    if action_dim != brain.distribution.action_dim:
        distribution = get_distribution(brain.distribution.name, action_dim)
    source = build_brain(
        load.get("brain", NAME),
        input_shapes=load.get("input_shapes", input_shapes),
        action_dim=action_dim,
        distribution=distribution,
        **load.get("options", {key: value for key, value in own.items() if key != "load"}),
    )
    source.joint.load_weights(path)
    for module in wanted:
        for name in layers[module]:
            target = brain.joint.get_layer(name)
            values = source.joint.get_layer(name).get_weights()
            shapes = [tuple(w.shape) for w in target.get_weights()]
            if [tuple(v.shape) for v in values] != shapes:
                raise ValueError(
                    f"`load`: layer {name!r} of module {module!r} has weights of shapes "
                    f"{shapes} here. Received: {[tuple(v.shape) for v in values]} in {path}"
                )
            target.set_weights(values)


def _visual_component(path: str, layers: Mapping[str, list[str]]) -> dict[str, Any]:
    """The ``load`` setting that takes the visual module from a pretrained component.

    Raises:
        ValueError: If this brain has no visual module or the file has no architecture.
    """
    if VISUAL not in layers:
        raise ValueError(
            f"`visual_weights` needs the module {VISUAL!r}, which reads vision. Received: "
            f"modules {sorted(layers)}"
        )
    try:
        weights = resolve(WEIGHTS, path)
    except UsageError as error:
        raise ValueError(f"`visual_weights`: {error}") from None
    architecture = read_architecture(weights)
    if architecture is None:
        raise ValueError(
            "`visual_weights` must be a .weights.h5 file with its .brain.json beside it (as "
            f"`neuroloop pretrain vision` writes). Received: {path!r}"
        )
    settings = architecture.settings
    return {
        "weights": str(weights),
        "modules": [VISUAL],
        "brain": settings["Brain"],
        "options": dict(settings.get("BrainOptions") or {}),
        "input_shapes": {name: tuple(shape) for name, shape in settings["InputShapes"].items()},
        "action_dim": int(settings["ActionDim"]),
    }


def build_cortical(
    input_shapes: Mapping[str, tuple[int, ...]],
    distribution: Distribution,
    *,
    modules: Mapping[str, Mapping[str, Any] | None] | None = None,
    output: str = OUTPUT,
    activation: ActivationSpec = ACTIVATION,
    value: Mapping[str, Any] | None = None,
    vision_filters: Sequence[int] = VISION_FILTERS,
    normalize_inputs: bool = True,
    load: Mapping[str, Any] | None = None,
    visual_weights: str | None = None,
) -> Brain:
    """The cortical brain: a policy graph of named modules and a separate value tower.

    Args:
        input_shapes: Per-step shape of each modality.
        distribution: The policy's action distribution.
        modules: Per module, keys to change in ``DEFAULT_MODULES`` (``inputs``, ``units``,
            ``recurrent``: ``"lstm"``/``"gru"``/null, ``activation``, ``frozen``); a new
            name adds a module (``inputs`` required), null removes one.
        output: The module the policy head reads.
        activation: Of every module and the value tower unless they set their own (a Keras
            name, ``"lif"``, ``"soft_lif"`` or ``{"name": "lif", **LIF parameters}``).
        value: Keys to change in ``DEFAULT_VALUE`` (``units``, ``recurrent``,
            ``activation``).
        vision_filters: Filters of the convolutions of the visual module and value tower.
        normalize_inputs: Normalize non-vision inputs with running statistics.
        load: Take modules' weights from another trained brain: ``weights`` (a
            ``.weights.h5`` path), ``modules`` (names), and optionally ``brain``,
            ``options``, ``input_shapes``, ``action_dim`` of the source brain.
        visual_weights: A pretrained visual module: the ``.weights.h5`` file of
            ``neuroloop pretrain vision`` (its ``.brain.json`` beside it), or the name of
            shipped trained weights; freeze it with
            ``modules: {visual: {frozen: true}}``.

    Raises:
        ValueError: If the graph or an option is invalid, or ``output`` receives no input.
    """
    filters = check_units_tuple("vision_filters", vision_filters)
    declared = _declared_modules(modules or {}, activation)
    order = _wired(declared, [name for name in POLICY_MODALITIES if name in input_shapes])
    if output not in {module.name for module in order}:
        raise ValueError(
            f"`output` must be a module that receives input {[m.name for m in order]}. "
            f"Received: output={output!r}"
        )
    inputs = modality_inputs(input_shapes)
    normalizers: dict[str, tuple[str, ...]] = {}
    features_in: dict[str, KerasTensor] = dict(inputs)
    if normalize_inputs:
        features_in, normalizers = normalize_modalities(inputs)
    sources = {key: x for key, x in features_in.items() if key in POLICY_MODALITIES}
    layers, policy_state_in, policy_state_out = _build_policy_modules(order, sources, filters)
    params = distribution.build_head(sources[output], name_prefix=f"{POLICY}_")
    brain = wrap_models(
        NAME,
        inputs,
        distribution,
        (params, policy_state_in, policy_state_out),
        _value_tower(features_in, value or {}, activation, filters),
        normalizers,
    )
    if visual_weights is not None:
        _load_modules(brain, layers, _visual_component(visual_weights, layers), input_shapes, {})
    if load is not None:
        own = {
            "modules": modules,
            "output": output,
            "activation": activation,
            "value": value,
            "vision_filters": list(filters),
            "normalize_inputs": normalize_inputs,
        }
        _load_modules(brain, layers, load, input_shapes, own)
    for module in order:
        if module.frozen:
            for name in layers[module.name]:
                brain.joint.get_layer(name).trainable = False
    return brain
