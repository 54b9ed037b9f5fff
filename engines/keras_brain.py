"""The brain engine: a Keras brain stepped for a batch of worlds, one compiled call per step.

The engine's section of a simulation config::

    {
      "EngineName": "brain",
      "EngineType": "keras_brain",
      "EngineTimestep": 0.02,
      "EngineExtraConfigs": {
        "Brain": "lstm",
        "BrainOptions": {"recurrent_units": 64},
        "Distribution": "beta",
        "InputShapes": {"proprioception": [48], "touch": [5], "goal": [15]},
        "ActionDim": 20,
        "Worlds": 4,
        "Seed": 3,
        "Record": ["policy_embedding", "policy_lstm"]
      }
    }

Its ``EngineExtraConfigs`` keys are declared, with their meaning and defaults, in
``keras_brain.schema.json`` beside this file (relative paths are resolved against the
config's folder).

``Seed`` also seeds Keras's initializers, so two engines with the same ``Seed`` start from
the same weights; ``reset(seed)`` reseeds only the sampler. ``Weights`` replaces the
initial weights.

Each ``step`` runs one ``tf.function``-compiled call of the brain's joint model on the
current inputs of all ``W`` worlds with the carried recurrent state, then samples (a seeded
``tf.random.Generator`` whose state lives in the compiled call) or takes the mode. The
duration of the step does not matter: one step is one policy decision.

Datapacks in (first axis = world ``W``):

================ ======================= ===================================================
name             shape, dtype            content
================ ======================= ===================================================
<modality>       [W, *InputShapes[m]]    one per modality in ``InputShapes`` (``vision``,
                 numeric                 ``touch``, ``proprioception``, ``goal``,
                                         ``asymmetric``), cast to float32; must be finite.
                                         Inputs stay until replaced or ``reset``.
episode_start    [W] bool                worlds whose episode just (re)started: their
                                         recurrent state is zeroed now, before the next step
weights          [n_weights] float       every array of ``joint.get_weights()`` flattened and
                                         concatenated in order (``flat_weights``)
checkpoint       JSON string             path of a ``.weights.h5`` file to load, under the
                                         config's folder or a ``CheckpointDirectories`` one
================ ======================= ===================================================

Datapacks out (``None`` until the first step after ``initialize`` or ``reset``):

================ ======================= ===================================================
name             shape, dtype            content
================ ======================= ===================================================
action           [W, A] float32          the sample (or mode); int32 bin indices for
                                         multicategorical
log_prob         [W] float32             log probability of ``action``
value            [W] float32             the value network's estimate
alpha, beta      [W, A] float32          Beta parameters (beta distribution)
mean, log_std    [W, A] float32          Gaussian parameters (gaussian distribution)
logits           [W, A, n_bins] float32  multicategorical logits
<state name>     [W, units] float32      one per ``brain.state_names`` entry (e.g.
                                         ``policy_state_h``): the recurrent state the next
                                         step starts from (any ``episode_start`` applied);
                                         none for a feed-forward brain. Read-only.
================ ======================= ===================================================

Reading an input datapack returns what was last set (``weights``: the current weights).
``weights`` include the non-trainable input-normalization statistics
(``Brain.set_input_statistics``), so pushing weights also pushes the normalizers; brains
normalize raw observations themselves (``BrainOptions: {"normalize_inputs": false}`` turns it
off).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from neuroloop.brain.acting import ACTION, LOG_PROB, VALUE, act
from neuroloop.brain.contract import Brain
from neuroloop.brain.loading import build_brain, known_brains
from neuroloop.brain.weights import WEIGHTS_SUFFIX, assign_flat_weights, flat_weights
from neuroloop.config import engine_extra_configs
from neuroloop.datapack import DataPackValue
from neuroloop.engine import Engine
from neuroloop.recording import LAYER_PREFIX
from neuroloop.sensation import MODALITIES

RNG_ALGORITHM = "philox"
"""Algorithm of the sampler's ``tf.random.Generator`` (fixed, so reseeding keeps its shape)."""

KERAS_VALUES_MARKER = "Target variable:"
"""Where Keras's weight-loading errors start listing a variable's values."""

INPUT_DTYPE = np.float32
"""dtype the brain's modality inputs are cast to."""

EPISODE_START = "episode_start"
WEIGHTS = "weights"
CHECKPOINT = "checkpoint"
CONTROL_INPUTS = (EPISODE_START, WEIGHTS, CHECKPOINT)
"""Inputs besides the modalities."""

BASE_OUTPUTS = (ACTION, LOG_PROB, VALUE)
"""Outputs besides the distribution's parameters and the recurrent state."""
RECORD_ALL = "all"


def _set_threads(threads: int, log: logging.Logger) -> None:
    """Set TensorFlow's thread pools, unless TensorFlow has already started."""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        log.debug("TensorFlow already started: Threads=%d not applied", threads)


class KerasBrainEngine(Engine):
    """A Keras brain (policy, value, joint models) acting for a batch of worlds.

    Args:
        name: The engine's name in the simulation config; errors and logs use it.
    """

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._log = logging.getLogger(f"{__name__}.{name}")
        self._brain: Brain | None = None
        self._names: tuple[str, ...] = ()
        self._worlds = 0
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._base = Path.cwd()
        self._inputs: dict[str, tf.Tensor] = {}
        self._pending_reset: np.ndarray | None = None
        self._state: dict[str, tf.Tensor] = {}
        self._outputs: dict[str, tf.Tensor] = {}
        self._checkpoint: str | None = None
        self._checkpoint_roots: tuple[Path, ...] = ()
        self._generator: tf.random.Generator | None = None
        self._forward: Any = None
        self._recorded: dict[str, str] = {}
        """Recorded layers: datapack name -> layer name."""

    # ------------------------------------------------------------------ lifecycle

    def initialize(self, config: Mapping[str, Any]) -> None:
        """Build the brain, load its weights and compile the step.

        Args:
            config: The engine's section of the simulation config (see the module docstring).

        Raises:
            ValueError: If a key is missing, unknown or malformed, the brain cannot be built,
                or the weights file is missing or does not fit the brain.
        """
        context = f"[{self.name}] initialize"
        extra = engine_extra_configs(
            __file__, config.get("EngineExtraConfigs") or {}, f"{context}:"
        )
        self._base = Path(config.get("ConfigDirectory") or Path.cwd())
        self._checkpoint_roots = tuple(
            (self._base / folder).resolve() for folder in ("", *extra["CheckpointDirectories"])
        )
        _set_threads(extra["Threads"], self._log)
        self._worlds = extra["Worlds"]
        deterministic = extra["Deterministic"]
        seed = extra["Seed"]
        if seed is not None:
            keras.utils.set_random_seed(seed)

        brain = self._build(extra, context)
        weights = extra["Weights"]
        if weights is not None:
            self._load_weights(brain, weights, f"{context}: EngineExtraConfigs.Weights")
        self._brain = brain

        reserved = {*self._shapes, *CONTROL_INPUTS, *BASE_OUTPUTS, *brain.state_names}
        clashing = sorted(reserved & set(brain.distribution.param_names))
        if clashing:
            raise ValueError(
                f"{context}: expected distribution parameter names that differ from the "
                f"engine's datapacks {sorted(reserved)}. Received: {clashing}"
            )
        self._recorded = self._recorded_layers(brain, extra["Record"], context)
        self._names = (
            *self._shapes,
            *CONTROL_INPUTS,
            ACTION,
            LOG_PROB,
            VALUE,
            *brain.distribution.param_names,
            *brain.state_names,
            *self._recorded,
        )
        self._generator = (
            tf.random.Generator.from_non_deterministic_state(alg=RNG_ALGORITHM)
            if seed is None
            else tf.random.Generator.from_seed(seed, alg=RNG_ALGORITHM)
        )
        self._forward = self._compile(brain, deterministic)
        self._clear()

    def reset(self, seed: int | None) -> None:
        """Zero the recurrent state, forget inputs and outputs, reseed the sampler.

        Args:
            seed: Non-negative integer that makes sampling repeatable, or ``None`` for
                fresh entropy.

        Raises:
            ValueError: If the seed is negative or not an integer, or before ``initialize``.
        """
        self._require("reset")
        generator = self._generator
        assert generator is not None
        if seed is None:
            generator.reset_from_seed(secrets.randbits(63))
        else:
            generator.reset_from_seed(self._checked_seed(seed, f"[{self.name}] reset", "seed"))
        self._clear()

    def step(self, timestep_ns: int) -> None:
        """Act once for every world: one compiled forward pass, then sample or take the mode.

        Raises:
            ValueError: If a modality input has not been set since ``initialize`` or
                ``reset``.
        """
        self._require("step")
        missing = [name for name in self._shapes if name not in self._inputs]
        if missing:
            raise ValueError(
                f"[{self.name}] step: expected every modality the brain reads "
                f"({', '.join(self._shapes)}) to be set. Received: no {', '.join(missing)}"
            )
        self._outputs, self._state = self._forward(self._inputs, self._state)
        self._pending_reset = None

    # ------------------------------------------------------------------ datapacks

    @property
    def datapack_names(self) -> Sequence[str]:
        return self._names

    @property
    def brain(self) -> Brain:
        """The brain this engine steps (its joint model holds the current weights)."""
        return self._require("brain")

    def get_datapack(self, name: str) -> DataPackValue:
        brain = self._require(f"get {name}")
        if name in self._shapes:
            tensor = self._inputs.get(name)
            return None if tensor is None else tensor.numpy()
        if name == EPISODE_START:
            return None if self._pending_reset is None else self._pending_reset.copy()
        if name == WEIGHTS:
            return flat_weights(brain.joint)
        if name == CHECKPOINT:
            return self._checkpoint
        if name in self._state:
            return self._state[name].numpy()
        if name not in self._names:
            raise ValueError(
                f"[{self.name}] get: expected one of this engine's datapacks "
                f"({', '.join(self._names)}). Received: {name!r}"
            )
        value = self._outputs.get(name)
        return None if value is None else value.numpy()

    def set_datapack(self, name: str, value: DataPackValue) -> None:
        brain = self._require(f"set {name}")
        if name in self._shapes:
            self._inputs[name] = tf.constant(self._modality(name, value))
        elif name == EPISODE_START:
            restart = self._episode_start(value)
            self._pending_reset = (
                restart if self._pending_reset is None else self._pending_reset | restart
            )
            if restart.any() and self._state:
                zeroed = brain.reset_state({k: v.numpy() for k, v in self._state.items()}, restart)
                self._state = {name: tf.constant(state) for name, state in zeroed.items()}
        elif name == WEIGHTS:
            self._set_flat_weights(brain, value)
            self._checkpoint = None
        elif name == CHECKPOINT:
            if not isinstance(value, str):
                raise ValueError(
                    f"[{self.name}] set checkpoint: expected a JSON string path to a "
                    f"{WEIGHTS_SUFFIX} file. Received: {type(value).__name__}"
                )
            self._load_weights(brain, self._checkpoint_file(value), f"[{self.name}] set checkpoint")
        else:
            inputs = (*self._shapes, *CONTROL_INPUTS)
            raise ValueError(
                f"[{self.name}] set: expected one of the datapacks this engine accepts "
                f"({', '.join(inputs)}). Received: {name!r}"
            )

    # ------------------------------------------------------------------ helpers

    def _require(self, verb: str) -> Brain:
        if self._brain is None:
            raise ValueError(f"[{self.name}] {verb}: expected initialize() first. Received: none")
        return self._brain

    def _checked_seed(self, seed: Any, context: str, key: str) -> int:
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ValueError(
                f"{context}: expected a non-negative integer {key} or none. "
                f"Received: {key}={seed!r}"
            )
        return int(seed)

    def _build(self, extra: Mapping[str, Any], context: str) -> Brain:
        """Build the brain named by ``Brain`` with its options and distribution."""
        given = extra["InputShapes"]
        self._shapes = {name: tuple(given[name]) for name in MODALITIES if name in given}
        action_dim = extra["ActionDim"]
        options = extra["BrainOptions"]
        dist_name = extra["Distribution"]
        dist_options = extra["DistributionOptions"]
        spec = extra["Brain"]
        if ":" not in spec and spec not in known_brains():
            raise ValueError(
                f"{context}: expected EngineExtraConfigs.Brain to be a registered brain "
                f"{list(known_brains())} or 'path/to/file.py:builder'. Received: Brain={spec!r}"
            )
        try:
            brain = build_brain(
                spec,
                input_shapes=self._shapes,
                action_dim=action_dim,
                distribution=dist_name,
                distribution_options=dist_options,
                base=self._base,
                **options,
            )
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"{context}: cannot build brain {spec!r} (BrainOptions={dict(options)}, "
                f"Distribution={dist_name!r}, DistributionOptions={dict(dist_options)}). "
                f"Received: {error}"
            ) from None
        used = {tensor.name for tensor in brain.joint.inputs} & set(MODALITIES)
        if used != set(self._shapes):
            raise ValueError(
                f"{context}: expected the brain to read exactly the modalities in "
                f"InputShapes {list(self._shapes)}. Received: brain inputs {sorted(used)}"
            )
        if brain.distribution.action_dim != action_dim:
            raise ValueError(
                f"{context}: expected the brain's distribution to have ActionDim={action_dim}. "
                f"Received: {brain.distribution!r}"
            )
        return brain

    def _recorded_layers(
        self, brain: Brain, record: str | Sequence[str], context: str
    ) -> dict[str, str]:
        """Datapack name -> layer name of each layer ``Record`` asks for."""
        layers = [
            layer.name
            for layer in brain.joint.layers
            if not isinstance(layer, keras.layers.InputLayer)
        ]
        if record == RECORD_ALL:
            names = layers
        else:
            unknown = [name for name in record if name not in layers]
            if unknown:
                raise ValueError(
                    f"{context}: expected EngineExtraConfigs.Record to be {RECORD_ALL!r} or "
                    f"names of the brain's layers ({', '.join(layers)}). Received: {unknown}"
                )
            names = list(dict.fromkeys(record))
        return {f"{LAYER_PREFIX}{name}": name for name in names}

    def _joint_with_layers(self, brain: Brain) -> keras.Model:
        """The joint model, also returning the recorded layers' outputs (shared weights)."""
        if not self._recorded:
            return brain.joint
        outputs = dict(brain.joint.output)
        for datapack, layer_name in self._recorded.items():
            output = brain.joint.get_layer(layer_name).output
            outputs[datapack] = output[0] if isinstance(output, list | tuple) else output
        return keras.Model(brain.joint.input, outputs, name=f"{brain.joint.name}_recorded")

    def _compile(self, brain: Brain, deterministic: bool) -> Any:
        """The step as the concrete function of one ``tf.function``, traced once here.

        Calling the concrete function skips ``tf.function``'s per-call argument matching,
        which costs about as much as the brain itself at small sizes.
        """
        worlds = self._worlds
        generator = self._generator
        sizes = {**brain.policy_state_sizes, **brain.value_state_sizes}
        names = brain.state_names
        model = self._joint_with_layers(brain)
        recorded = tuple(self._recorded)
        # Outputs with a time axis ([W, T, ...]) lose it: one step is one time step.
        timed = {name for name in recorded if model.output[name].shape[1] is None}
        signature = [
            {
                name: tf.TensorSpec((worlds, *shape), tf.float32, name=name)
                for name, shape in self._shapes.items()
            },
            {name: tf.TensorSpec((worlds, sizes[name]), tf.float32, name=name) for name in names},
        ]

        def forward(
            inputs: dict[str, tf.Tensor], state: dict[str, tf.Tensor]
        ) -> tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]:
            return act(
                brain,
                inputs,
                state,
                deterministic=deterministic,
                generator=generator,
                model=model,
                extra=recorded,
                timed=timed,
            )

        return tf.function(forward).get_concrete_function(*signature)

    def _clear(self) -> None:
        brain = self._require("reset")
        self._inputs = {}
        self._pending_reset = None
        self._outputs = {}
        self._state = {
            name: tf.constant(value) for name, value in brain.initial_state(self._worlds).items()
        }

    def _modality(self, name: str, value: DataPackValue) -> np.ndarray:
        expected = (self._worlds, *self._shapes[name])
        array = np.asarray(value) if isinstance(value, np.ndarray | np.generic) else None
        if array is None or array.dtype.kind not in "biuf":
            received = type(value).__name__ if array is None else f"dtype={array.dtype}"
            raise ValueError(
                f"[{self.name}] set {name}: expected a numeric array of shape {expected}. "
                f"Received: {received}"
            )
        if array.shape != expected:
            raise ValueError(
                f"[{self.name}] set {name}: expected shape {expected} (worlds, *InputShapes."
                f"{name}). Received: shape {array.shape}"
            )
        array = np.ascontiguousarray(array, dtype=INPUT_DTYPE)
        if not np.isfinite(array).all():
            finite = np.isfinite(array).reshape(self._worlds, -1).all(axis=1)
            raise ValueError(
                f"[{self.name}] set {name}: expected finite values. Received: NaN or inf in "
                f"worlds {np.flatnonzero(~finite).tolist()}"
            )
        return array

    def _episode_start(self, value: DataPackValue) -> np.ndarray:
        array = np.asarray(value) if isinstance(value, np.ndarray | np.generic) else None
        if array is None or array.shape != (self._worlds,) or array.dtype.kind != "b":
            received = (
                type(value).__name__
                if array is None
                else f"dtype={array.dtype}, shape {array.shape}"
            )
            raise ValueError(
                f"[{self.name}] set {EPISODE_START}: expected a bool array of shape "
                f"({self._worlds},) (one flag per world). Received: {received}"
            )
        return array.copy()

    def _set_flat_weights(self, brain: Brain, value: DataPackValue) -> None:
        try:
            assign_flat_weights(brain.joint, value)
        except ValueError as error:
            raise ValueError(f"[{self.name}] set {WEIGHTS}: {error}") from None

    def _checkpoint_file(self, path_text: str) -> str:
        """The weights file the ``checkpoint`` datapack names, if it may be loaded.

        It must be a ``.weights.h5`` file under one of the folders the config allows (links
        and ``..`` resolved first). A missing file and a forbidden one get the same error, so
        the datapack tells nothing about the host's files.
        """
        try:
            path = (self._base / path_text).resolve()
            allowed = (
                path.name.endswith(WEIGHTS_SUFFIX)
                and any(path.is_relative_to(root) for root in self._checkpoint_roots)
                and path.is_file()
            )
        except (OSError, ValueError):  # a name too long, a NUL byte
            allowed = False
        if not allowed:
            roots = ", ".join(map(str, self._checkpoint_roots))
            raise ValueError(
                f"[{self.name}] set checkpoint: expected an existing {WEIGHTS_SUFFIX} file "
                f"under {roots} (the config's folder and EngineExtraConfigs."
                f"CheckpointDirectories). Received: {path_text!r}"
            )
        return str(path)

    def _load_weights(self, brain: Brain, path_text: str, context: str) -> None:
        path = Path(path_text) if Path(path_text).is_absolute() else self._base / path_text
        path = path.resolve()
        if not path.name.endswith(WEIGHTS_SUFFIX):
            raise ValueError(
                f"{context}: expected a {WEIGHTS_SUFFIX} file written by "
                f"brain.joint.save_weights. Received: {path}"
            )
        if not path.is_file():
            raise ValueError(f"{context}: expected an existing weights file. Received: {path}")
        before = brain.joint.get_weights()
        try:
            brain.joint.load_weights(path)
        except (ValueError, OSError) as error:
            brain.joint.set_weights(before)  # Keras loads what fits before it raises
            # Keras appends the target variable's values: keep the message before them.
            reason = " ".join(str(error).split(KERAS_VALUES_MARKER)[0].split())
            raise ValueError(
                f"{context}: the weights in {path} do not fit brain {brain.name!r}. "
                f"Received: {reason}"
            ) from None
        self._checkpoint = str(path)
