"""The PPO objective (Schulman et al. 2017) as one pure, differentiable TensorFlow function.

Terms in CleanRL's order (``cleanrl/ppo_continuous_action.py``): clipped surrogate policy
loss, value loss (optionally clipped), entropy bonus, then
``loss = pg_loss - entropy_coef * entropy + value_coef * v_loss``.

Every per-step input has one shape ``S`` (typically ``[batch, time]`` of a minibatch of TBPTT
chunks, or ``[T, B]``); ``mask`` (same shape) weights the steps: a step with mask 0
(padding past an episode's end, a final observation without a transition) contributes
exactly zero to every term and metric and receives zero gradient. Means are
``sum(mask * x) / sum(mask)`` (0 when the mask is all zero).
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import tensorflow as tf

DEFAULT_CLIP_EPSILON = 0.2
"""Clip range of the probability ratio: ``[1 - eps, 1 + eps]``."""
DEFAULT_VALUE_COEF = 0.5
"""Weight of the value loss in the total loss."""
DEFAULT_ENTROPY_COEF = 0.001
"""Weight of the entropy bonus (subtracted from the loss)."""
ADVANTAGE_EPSILON = 1e-8
"""Added to the advantages' standard deviation when normalizing them (CleanRL)."""

METRIC_NAMES = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction")
"""Keys of the metrics dict ``ppo_loss`` returns."""

_INPUT_NAMES = (
    "new_log_prob",
    "old_log_prob",
    "advantages",
    "new_values",
    "old_values",
    "returns",
    "entropy",
    "mask",
)


def _check_coefficient(name: str, value: float, *, positive: bool) -> None:
    """Raise ``ValueError`` unless ``value`` is positive (or non-negative)."""
    if value > 0 or (not positive and value == 0):
        return
    expected = "> 0" if positive else ">= 0"
    raise ValueError(f"ppo_loss: `{name}` must be {expected}. Received: {name}={value!r}")


def masked_mean(x: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """``sum(mask * x) / sum(mask)``, 0 for an all-zero mask; masked-out ``x`` never leaks.

    Steps with ``mask == 0`` are selected away (``tf.where``) before weighting, so even a
    non-finite value there contributes 0 and gets zero gradient.

    Args:
        x: Values of shape ``S``.
        mask: Non-negative weights of shape ``S``, same dtype as ``x``.

    Returns:
        A scalar.
    """
    weighted = tf.where(mask > 0, x * mask, tf.zeros_like(x))
    return tf.math.divide_no_nan(tf.reduce_sum(weighted), tf.reduce_sum(mask))


def normalize_advantages_masked(advantages: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """``(A - mean) / (std + 1e-8)`` over the unmasked steps, with CleanRL's unbiased std.

    Args:
        advantages: ``S``.
        mask: ``S`` weights (0 or 1), same dtype.

    Returns:
        Normalized advantages ``S`` (masked steps are 0).
    """
    count = tf.reduce_sum(mask)
    mean = masked_mean(advantages, mask)
    centred = tf.where(mask > 0, advantages - mean, tf.zeros_like(advantages))
    variance = tf.math.divide_no_nan(tf.reduce_sum(mask * tf.square(centred)), count - 1.0)
    return centred / (tf.sqrt(variance) + ADVANTAGE_EPSILON)


def ppo_loss(
    new_log_prob: Any,
    old_log_prob: Any,
    advantages: Any,
    new_values: Any,
    old_values: Any,
    returns: Any,
    entropy: Any,
    mask: Any,
    *,
    clip_epsilon: float = DEFAULT_CLIP_EPSILON,
    value_clip: float | None = None,
    value_coef: float = DEFAULT_VALUE_COEF,
    entropy_coef: float = DEFAULT_ENTROPY_COEF,
    normalize_advantages: bool = True,
) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """The clipped-surrogate PPO loss with value loss and entropy bonus, masked.

    With ``ratio = exp(new_log_prob - old_log_prob)``::

        pg_loss = mean(max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps)))
        v_loss  = 0.5 * mean((new_values - returns)^2)                        # or, clipped:
        v_loss  = 0.5 * mean(max((new_values - returns)^2,
                                 (old_values + clip(new_values - old_values, -c, c) - returns)^2))
        loss    = pg_loss - entropy_coef * mean(entropy) + value_coef * v_loss

    All means are masked. Gradients flow through ``new_log_prob``, ``new_values`` and
    ``entropy``; the other inputs are data.

    Args:
        new_log_prob: ``S`` log-probabilities of the taken actions under the current policy.
        old_log_prob: ``S`` log-probabilities recorded when gathering.
        advantages: ``S`` advantages (e.g. from ``compute_gae``).
        new_values: ``S`` current value estimates.
        old_values: ``S`` value estimates recorded when gathering.
        returns: ``S`` value targets.
        entropy: ``S`` policy entropy per step.
        mask: ``S`` step weights, 1 for a real transition and 0 for padding.
        clip_epsilon: Clip range ``eps`` of the ratio, > 0.
        value_clip: Clip range ``c`` of the value update (CleanRL's ``clip_vloss`` uses the
            ratio's ``eps``); ``None`` for the unclipped value loss.
        value_coef: Weight of the value loss, >= 0.
        entropy_coef: Weight of the entropy bonus, >= 0.
        normalize_advantages: Normalize advantages to zero mean and unit (unbiased) std over
            the unmasked steps first, as CleanRL does per minibatch.

    Returns:
        ``(loss, metrics)``: the scalar loss and scalar metrics ``policy_loss``,
        ``value_loss``, ``entropy``, ``approx_kl`` (CleanRL's ``mean((ratio - 1) - log
        ratio)``) and ``clip_fraction`` (share of steps with ``|ratio - 1| > eps``); the
        metrics carry no gradient.

    Raises:
        ValueError: If a coefficient is out of range or the inputs' static shapes differ.
    """
    _check_coefficient("clip_epsilon", clip_epsilon, positive=True)
    if value_clip is not None:
        _check_coefficient("value_clip", value_clip, positive=True)
    _check_coefficient("value_coef", value_coef, positive=False)
    _check_coefficient("entropy_coef", entropy_coef, positive=False)

    new_log_prob = tf.convert_to_tensor(new_log_prob)
    if not new_log_prob.dtype.is_floating:
        new_log_prob = tf.cast(new_log_prob, tf.float32)
    dtype = new_log_prob.dtype
    tensors = {
        name: tf.cast(tf.convert_to_tensor(value), dtype)
        for name, value in zip(
            _INPUT_NAMES[1:],
            (old_log_prob, advantages, new_values, old_values, returns, entropy, mask),
            strict=True,
        )
    }
    shapes = {"new_log_prob": new_log_prob.shape} | {
        name: tensor.shape for name, tensor in tensors.items()
    }
    if any(not shape.is_compatible_with(new_log_prob.shape) for shape in shapes.values()):
        received = ", ".join(f"{name}.shape={shape}" for name, shape in shapes.items())
        raise ValueError(f"ppo_loss: expected inputs of one shape. Received: {received}")
    step_mask = tensors["mask"]
    adv = tensors["advantages"]
    if normalize_advantages:
        adv = normalize_advantages_masked(adv, step_mask)

    # Masked steps may hold padding: select them away before exp so nothing overflows.
    log_ratio = tf.where(
        step_mask > 0, new_log_prob - tensors["old_log_prob"], tf.zeros_like(new_log_prob)
    )
    ratio = tf.exp(log_ratio)

    pg_loss1 = -adv * ratio
    pg_loss2 = -adv * tf.clip_by_value(ratio, 1.0 - clip_epsilon, 1.0 + clip_epsilon)
    pg_loss = masked_mean(tf.maximum(pg_loss1, pg_loss2), step_mask)

    new_values = tensors["new_values"]
    v_loss_unclipped = tf.square(new_values - tensors["returns"])
    if value_clip is None:
        v_loss = 0.5 * masked_mean(v_loss_unclipped, step_mask)
    else:
        old_values = tensors["old_values"]
        v_clipped = old_values + tf.clip_by_value(new_values - old_values, -value_clip, value_clip)
        v_loss_clipped = tf.square(v_clipped - tensors["returns"])
        v_loss = 0.5 * masked_mean(tf.maximum(v_loss_unclipped, v_loss_clipped), step_mask)

    entropy_loss = masked_mean(tensors["entropy"], step_mask)
    loss = pg_loss - entropy_coef * entropy_loss + value_coef * v_loss

    approx_kl = masked_mean((ratio - 1.0) - log_ratio, step_mask)
    clipped = tf.cast(tf.abs(ratio - 1.0) > clip_epsilon, dtype)
    metrics = {
        "policy_loss": pg_loss,
        "value_loss": v_loss,
        "entropy": entropy_loss,
        "approx_kl": approx_kl,
        "clip_fraction": masked_mean(clipped, step_mask),
    }
    return loss, {name: tf.stop_gradient(value) for name, value in metrics.items()}
