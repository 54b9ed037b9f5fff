"""Action distributions of policy heads: Beta, Gaussian and multicategorical.

A distribution object knows its ``action_dim``, builds the policy head that turns a feature
tensor into the distribution's parameters, and implements ``sample``, ``log_prob``,
``entropy`` and ``mode`` once, in TensorFlow ops. The same code runs inside ``tf.function``
(training) and eagerly on numpy arrays (the brain engine, tests); results are ``tf.Tensor``
(call ``.numpy()`` for numpy).

Parameters travel as a mapping from parameter name to tensor, exactly as the policy model
returns them, so ``distribution.log_prob(policy(inputs), actions)`` works; keys other than
the distribution's ``param_names`` (a value, recurrent state) are ignored. Shapes, with
``...`` any leading batch shape (typically ``[B, T]``) and ``A = action_dim``:

============== ========================================= ===================== ============
distribution   parameters                                actions               dtype
============== ========================================= ===================== ============
beta           ``alpha [..., A]``, ``beta [..., A]``     in ``[0, 1]``         float32
gaussian       ``mean [..., A]``, ``log_std [..., A]``   unbounded reals       float32
multicat.      ``logits [..., A, n_bins]``               bin index per joint   int32
============== ========================================= ===================== ============

``log_prob`` and ``entropy`` sum over the action dimension and return ``[...]``; ``sample``
and ``mode`` return ``[..., A]``.

Sampling is seedable: pass a stateless seed (an int, or a shape-``[2]`` integer tensor/array
as for ``tf.random.stateless_*``) or a ``tf.random.Generator``, whose state then advances.
"""

from __future__ import annotations

import abc
import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, TypeAlias

# Keras reads its backend when first imported; neuroloop's brains are TensorFlow models.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import numpy as np
import tensorflow as tf

from neuroloop.brain.actions import DEFAULT_N_BINS, Actions, get_actions

if keras.backend.backend() != "tensorflow":
    raise ImportError(
        "neuroloop.brain.distributions needs the TensorFlow Keras backend. "
        f"Received: KERAS_BACKEND={keras.backend.backend()!r}"
    )

TensorLike: TypeAlias = tf.Tensor | np.ndarray
Params: TypeAlias = Mapping[str, Any]
"""Distribution parameters by name (``tf.Tensor``, ``np.ndarray`` or Keras tensors)."""
Seed: TypeAlias = int | Sequence[int] | np.ndarray | tf.Tensor | tf.random.Generator
"""A stateless seed (int or shape-``[2]`` integers) or a ``tf.random.Generator``."""

BETA_ACTION_EPSILON = 1e-6
"""Beta ``log_prob`` clips actions to ``[eps, 1 - eps]`` so actions at the bounds stay finite."""

BETA_CONCENTRATION_OFFSET = 1.0
"""Added to softplus so Beta concentrations exceed 1 and the density is unimodal."""

DEFAULT_INITIAL_LOG_STD = 0.0
"""Initial state-independent log standard deviation of the Gaussian (std = 1)."""

POLICY_HEAD_INIT_GAIN = 0.01
"""Gain of the orthogonal initializer of policy heads: near-uniform initial policies (PPO)."""

_LOG_2PI_E = math.log(2.0 * math.pi * math.e)
_LOG_2PI = math.log(2.0 * math.pi)
_SEED_SHAPE = 2


def _as_float(x: Any) -> tf.Tensor:
    """Return ``x`` as a float tensor (float32 unless it already is a float tensor)."""
    if isinstance(x, tf.Tensor | tf.Variable) and x.dtype.is_floating:
        return tf.convert_to_tensor(x)
    array_dtype = getattr(x, "dtype", None)
    if isinstance(array_dtype, np.dtype) and array_dtype.kind == "f":
        return tf.convert_to_tensor(x)
    return tf.convert_to_tensor(x, dtype=tf.float32)


def _stateless_seed(seed: Seed) -> tf.Tensor:
    """Return a shape-``[2]`` int64 seed for ``tf.random.stateless_*`` ops.

    Args:
        seed: An int, a shape-``[2]`` integer array or tensor, or a ``tf.random.Generator``
            (its state advances by one draw).

    Raises:
        ValueError: If ``seed`` is an array of the wrong shape.
    """
    if isinstance(seed, tf.random.Generator):
        return seed.make_seeds(1)[:, 0]
    if isinstance(seed, int | np.integer):
        return tf.constant([0, int(seed)], dtype=tf.int64)
    tensor = tf.convert_to_tensor(seed)
    if tensor.shape.rank is not None and tensor.shape.as_list() != [_SEED_SHAPE]:
        raise ValueError(
            f"A stateless seed must have shape [{_SEED_SHAPE}]. Received: seed.shape={tensor.shape}"
        )
    return tf.cast(tensor, tf.int64)


def _lbeta(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Log of the Beta function, elementwise."""
    return tf.math.lgamma(a) + tf.math.lgamma(b) - tf.math.lgamma(a + b)


def _checked_log_std(value: Any) -> float:
    """Return ``value`` as a float, or raise ``ValueError`` unless it is a finite number.

    Args:
        value: A candidate initial log standard deviation.
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(
            f"`initial_log_std` must be a finite number. Received: initial_log_std={value!r}"
        )
    return float(value)


@keras.saving.register_keras_serializable(package="neuroloop")
class StateIndependentLogStd(keras.layers.Layer):
    """A trainable log standard deviation per action dimension, independent of the state.

    Called on the Gaussian mean ``[..., A]``, it returns its weight ``log_std [A]``
    broadcast to the mean's shape, so the policy model outputs both parameters.

    Args:
        initial_log_std: Initial value of every log standard deviation.
        **kwargs: Base layer keyword arguments (``name``, ``dtype``, ...).

    Raises:
        ValueError: If ``initial_log_std`` is not a finite number.
    """

    def __init__(self, initial_log_std: float = DEFAULT_INITIAL_LOG_STD, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.initial_log_std = _checked_log_std(initial_log_std)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        action_dim = input_shape[-1]
        if action_dim is None:
            raise ValueError(
                "StateIndependentLogStd needs a known last (action) dimension. "
                f"Received: input_shape={input_shape}"
            )
        self.log_std = self.add_weight(
            shape=(action_dim,),
            initializer=keras.initializers.Constant(self.initial_log_std),
            trainable=True,
            name="log_std",
        )

    def call(self, mean: tf.Tensor) -> tf.Tensor:
        return tf.broadcast_to(tf.cast(self.log_std, mean.dtype), tf.shape(mean))

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config["initial_log_std"] = self.initial_log_std
        return config


class Distribution(abc.ABC):
    """An action distribution: its policy head and its maths, in TensorFlow ops.

    Args:
        action_dim: Number of action dimensions (joints).

    Raises:
        ValueError: If ``action_dim`` is not a positive int.
    """

    name: ClassVar[str]
    """Registry name, e.g. ``"beta"``."""
    param_names: ClassVar[tuple[str, ...]]
    """Names of the parameter tensors, in the order the head returns them."""
    action_dtype: ClassVar[tf.DType]
    """dtype of sampled actions."""

    def __init__(self, action_dim: int) -> None:
        if isinstance(action_dim, bool) or not isinstance(action_dim, int) or action_dim < 1:
            raise ValueError(
                f"[{self.name}] `action_dim` must be a positive int. "
                f"Received: action_dim={action_dim!r}"
            )
        self.action_dim = action_dim

    @property
    @abc.abstractmethod
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Trailing shape of each parameter tensor (after the batch shape ``...``)."""

    @abc.abstractmethod
    def build_head(self, features: Any, name_prefix: str = "") -> dict[str, Any]:
        """Apply new policy-head layers to ``features [..., F]``.

        Args:
            features: A Keras (symbolic) tensor of features.
            name_prefix: Prepended to the names of the head's layers; the returned keys are
                always ``param_names``.

        Returns:
            The parameter tensors by name, shaped as in ``param_shapes``.
        """

    @abc.abstractmethod
    def sample(self, params: Params, seed: Seed) -> tf.Tensor:
        """Draw one action per batch element.

        Args:
            params: Parameter tensors by name (see the module docstring for shapes).
            seed: A stateless seed or a ``tf.random.Generator``.

        Returns:
            Actions ``[..., A]`` of dtype ``action_dtype``.
        """

    @abc.abstractmethod
    def log_prob(self, params: Params, actions: TensorLike) -> tf.Tensor:
        """Log density (or log probability) of ``actions [..., A]``, summed over ``A``: ``[...]``.

        Args:
            params: Parameter tensors by name.
            actions: Actions ``[..., A]``.
        """

    @abc.abstractmethod
    def entropy(self, params: Params) -> tf.Tensor:
        """Differential (or discrete) entropy, summed over the action dimension: ``[...]``.

        Args:
            params: Parameter tensors by name.
        """

    @abc.abstractmethod
    def mode(self, params: Params) -> tf.Tensor:
        """The most probable action ``[..., A]`` (deterministic evaluation).

        Args:
            params: Parameter tensors by name.
        """

    @property
    def action_shape(self) -> tuple[int, ...]:
        """Trailing shape of one action: ``(action_dim,)``."""
        return (self.action_dim,)

    def get_config(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this distribution with ``get_distribution``."""
        return {"action_dim": self.action_dim}

    def actions(self) -> Actions:
        """What this distribution's samples mean: their space and their actuator targets."""
        return get_actions(self.name, self.get_config())

    def _params(self, params: Params) -> tuple[tf.Tensor, ...]:
        """Return this distribution's parameters from ``params`` as float tensors, in order.

        Raises:
            KeyError: If a parameter is missing.
        """
        missing = [key for key in self.param_names if key not in params]
        if missing:
            raise KeyError(
                f"[{self.name}] missing distribution parameters {missing}; expected "
                f"{list(self.param_names)}. Received: keys={sorted(params)}"
            )
        return tuple(_as_float(params[key]) for key in self.param_names)

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _policy_dense(units: int, name: str, activation: str | None = None) -> keras.layers.Dense:
    """A policy-head Dense layer with a small orthogonal initializer."""
    return keras.layers.Dense(
        units,
        activation=activation,
        kernel_initializer=keras.initializers.Orthogonal(gain=POLICY_HEAD_INIT_GAIN),
        name=name,
    )


class BetaDistribution(Distribution):
    """Independent Beta per joint, for bounded joints; actions in ``[0, 1]``.

    Head: ``Dense -> softplus -> + 1`` for each of ``alpha`` and ``beta``, so both
    concentrations exceed 1 (the density is unimodal and vanishes at the bounds).

    Args:
        action_dim: Number of joints.
    """

    name = "beta"
    param_names = ("alpha", "beta")
    action_dtype = tf.float32

    @property
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"alpha": self.action_shape, "beta": self.action_shape}

    def build_head(self, features: Any, name_prefix: str = "") -> dict[str, Any]:
        head = {}
        for key in self.param_names:
            softplus = _policy_dense(self.action_dim, f"{name_prefix}{key}_dense", "softplus")
            offset = keras.layers.Rescaling(
                scale=1.0, offset=BETA_CONCENTRATION_OFFSET, name=f"{name_prefix}{key}"
            )
            head[key] = offset(softplus(features))
        return head

    def sample(self, params: Params, seed: Seed) -> tf.Tensor:
        alpha, beta = self._params(params)
        seeds = tf.random.experimental.stateless_split(_stateless_seed(seed), num=2)
        shape = tf.shape(alpha)
        x = tf.random.stateless_gamma(shape, seeds[0], alpha=alpha, dtype=alpha.dtype)
        y = tf.random.stateless_gamma(shape, seeds[1], alpha=beta, dtype=alpha.dtype)
        return x / (x + y)

    def log_prob(self, params: Params, actions: TensorLike) -> tf.Tensor:
        alpha, beta = self._params(params)
        x = tf.clip_by_value(
            tf.cast(actions, alpha.dtype), BETA_ACTION_EPSILON, 1.0 - BETA_ACTION_EPSILON
        )
        log_density = (
            (alpha - 1.0) * tf.math.log(x) + (beta - 1.0) * tf.math.log1p(-x) - _lbeta(alpha, beta)
        )
        return tf.reduce_sum(log_density, axis=-1)

    def entropy(self, params: Params) -> tf.Tensor:
        alpha, beta = self._params(params)
        total = alpha + beta
        entropy = (
            _lbeta(alpha, beta)
            - (alpha - 1.0) * tf.math.digamma(alpha)
            - (beta - 1.0) * tf.math.digamma(beta)
            + (total - 2.0) * tf.math.digamma(total)
        )
        return tf.reduce_sum(entropy, axis=-1)

    def mode(self, params: Params) -> tf.Tensor:
        """The mode ``(alpha - 1) / (alpha + beta - 2)`` per joint.

        Outside ``alpha, beta > 1`` (which the head only reaches where softplus underflows)
        the density peaks at a bound: 0 if ``alpha <= 1 < beta``, 1 if ``beta <= 1 < alpha``;
        when both are ``<= 1`` the smaller concentration's bound is returned, and 0.5 for
        ``alpha == beta`` (the uniform density, or two equal peaks).

        Args:
            params: ``alpha [..., A]`` and ``beta [..., A]``.
        """
        alpha, beta = self._params(params)
        unimodal = (alpha > 1.0) & (beta > 1.0)
        denominator = tf.where(unimodal, alpha + beta - 2.0, tf.ones_like(alpha))
        interior = (alpha - 1.0) / denominator
        zero, one = tf.zeros_like(alpha), tf.ones_like(alpha)
        half = 0.5 * one
        if_both_low = tf.where(alpha < beta, zero, tf.where(alpha > beta, one, half))
        at_bound = tf.where(beta > 1.0, zero, tf.where(alpha > 1.0, one, if_both_low))
        return tf.where(unimodal, interior, at_bound)


class GaussianDistribution(Distribution):
    """Independent Gaussian per joint with a state-independent, trainable log std.

    Head: ``Dense`` for the mean and a ``StateIndependentLogStd`` layer for ``log_std``.
    Actions are unbounded; transceivers clip them to the actuator range.

    Args:
        action_dim: Number of joints.
        initial_log_std: Initial log standard deviation of every joint.
    """

    name = "gaussian"
    param_names = ("mean", "log_std")
    action_dtype = tf.float32

    def __init__(self, action_dim: int, initial_log_std: float = DEFAULT_INITIAL_LOG_STD) -> None:
        super().__init__(action_dim)
        self.initial_log_std = _checked_log_std(initial_log_std)

    @property
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"mean": self.action_shape, "log_std": self.action_shape}

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "initial_log_std": self.initial_log_std}

    def build_head(self, features: Any, name_prefix: str = "") -> dict[str, Any]:
        mean = _policy_dense(self.action_dim, f"{name_prefix}mean")(features)
        log_std = StateIndependentLogStd(self.initial_log_std, name=f"{name_prefix}log_std")(mean)
        return {"mean": mean, "log_std": log_std}

    def sample(self, params: Params, seed: Seed) -> tf.Tensor:
        mean, log_std = self._params(params)
        noise = tf.random.stateless_normal(tf.shape(mean), _stateless_seed(seed), dtype=mean.dtype)
        return mean + tf.exp(log_std) * noise

    def log_prob(self, params: Params, actions: TensorLike) -> tf.Tensor:
        mean, log_std = self._params(params)
        z = (tf.cast(actions, mean.dtype) - mean) * tf.exp(-log_std)
        return tf.reduce_sum(-0.5 * tf.square(z) - log_std - 0.5 * _LOG_2PI, axis=-1)

    def entropy(self, params: Params) -> tf.Tensor:
        mean, log_std = self._params(params)
        log_std = log_std + tf.zeros_like(mean)
        return tf.reduce_sum(0.5 * _LOG_2PI_E + log_std, axis=-1)

    def mode(self, params: Params) -> tf.Tensor:
        mean, log_std = self._params(params)
        return mean + tf.zeros_like(log_std)


class MultiCategoricalDistribution(Distribution):
    """An independent categorical over ``n_bins`` bins per joint; actions are bin indices.

    Head: ``Dense(A * n_bins)`` reshaped to logits ``[..., A, n_bins]``. Transceivers map a
    bin index to its bin's centre in the actuator range.

    Args:
        action_dim: Number of joints.
        n_bins: Bins per joint (at least 2).
    """

    name = "multicategorical"
    param_names = ("logits",)
    action_dtype = tf.int32

    def __init__(self, action_dim: int, n_bins: int = DEFAULT_N_BINS) -> None:
        super().__init__(action_dim)
        if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 2:
            raise ValueError(
                f"[multicategorical] `n_bins` must be an int >= 2. Received: n_bins={n_bins!r}"
            )
        self.n_bins = n_bins

    @property
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"logits": (self.action_dim, self.n_bins)}

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "n_bins": self.n_bins}

    def build_head(self, features: Any, name_prefix: str = "") -> dict[str, Any]:
        flat = _policy_dense(self.action_dim * self.n_bins, f"{name_prefix}logits_dense")(features)
        inner = [-1 if size is None else size for size in features.shape[1:-1]]
        if inner.count(-1) > 1:
            raise ValueError(
                "[multicategorical] the head allows at most one unknown inner dimension. "
                f"Received: features.shape={features.shape}"
            )
        target = (*inner, self.action_dim, self.n_bins)
        return {"logits": keras.layers.Reshape(target, name=f"{name_prefix}logits")(flat)}

    def _log_softmax(self, params: Params) -> tf.Tensor:
        (logits,) = self._params(params)
        return tf.nn.log_softmax(logits, axis=-1)

    def sample(self, params: Params, seed: Seed) -> tf.Tensor:
        (logits,) = self._params(params)
        flat = tf.reshape(logits, (-1, self.n_bins))
        draws = tf.random.stateless_categorical(
            flat, 1, _stateless_seed(seed), dtype=self.action_dtype
        )
        return tf.reshape(draws, tf.shape(logits)[:-1])

    def log_prob(self, params: Params, actions: TensorLike) -> tf.Tensor:
        log_p = self._log_softmax(params)
        chosen = tf.one_hot(tf.cast(actions, tf.int32), self.n_bins, dtype=log_p.dtype)
        return tf.reduce_sum(chosen * log_p, axis=[-2, -1])

    def entropy(self, params: Params) -> tf.Tensor:
        log_p = self._log_softmax(params)
        return -tf.reduce_sum(tf.exp(log_p) * log_p, axis=[-2, -1])

    def mode(self, params: Params) -> tf.Tensor:
        (logits,) = self._params(params)
        return tf.argmax(logits, axis=-1, output_type=self.action_dtype)


DISTRIBUTIONS: dict[str, Callable[..., Distribution]] = {
    BetaDistribution.name: BetaDistribution,
    GaussianDistribution.name: GaussianDistribution,
    MultiCategoricalDistribution.name: MultiCategoricalDistribution,
}
"""Distribution classes by registry name."""


def get_distribution(name: str, action_dim: int, **kwargs: Any) -> Distribution:
    """Create a distribution by name.

    Args:
        name: ``"beta"``, ``"gaussian"`` or ``"multicategorical"``.
        action_dim: Number of action dimensions (joints).
        **kwargs: Distribution options: ``initial_log_std`` (gaussian), ``n_bins``
            (multicategorical).

    Raises:
        ValueError: If ``name`` is unknown, or an option is invalid.
        TypeError: If an option does not belong to the distribution.
    """
    if name not in DISTRIBUTIONS:
        raise ValueError(
            f"Unknown distribution; expected one of {sorted(DISTRIBUTIONS)}. "
            f"Received: name={name!r}"
        )
    return DISTRIBUTIONS[name](action_dim, **kwargs)
