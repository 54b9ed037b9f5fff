"""One control step of a brain: the joint model on one time step, then the action.

The brain engine (``keras_brain``, inside a compiled ``tf.function``) and
``neuroloop.brain.trained.TrainedBrain`` (eagerly, in the user's process) both act through
``act``, so a brain stepped in a script computes what the engine computes.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from neuroloop.brain.contract import Brain

ACTION = "action"
LOG_PROB = "log_prob"
VALUE = "value"


def act(
    brain: Brain,
    inputs: Mapping[str, Any],
    state: Mapping[str, Any],
    *,
    deterministic: bool,
    generator: Any,
    model: Any = None,
    extra: Collection[str] = (),
    timed: Collection[str] = (),
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Act once for a batch of worlds.

    Args:
        brain: The brain (its distribution, state names and input selection).
        inputs: Each modality the joint model reads, ``[B, *shape]`` float32 (no time axis).
        state: The recurrent state, ``[B, size]`` per state name.
        deterministic: Take the policy's mode instead of sampling.
        generator: The ``tf.random.Generator`` samples are drawn from.
        model: The model to call, the joint model by default (or one sharing its weights
            with more outputs).
        extra: Further outputs of ``model`` to return as they are.
        timed: Those of ``extra`` that have a time axis, returned without it.

    Returns:
        ``(outputs, next state)``: outputs hold ``action``, ``log_prob``, ``value`` (all
        ``[B, ...]``), the distribution's parameters and ``extra``, as tensors.
    """
    import tensorflow as tf

    values: dict[str, Any] = {name: tf.expand_dims(tensor, 1) for name, tensor in inputs.items()}
    values.update(state)
    model = brain.joint if model is None else model
    out = model(brain.select_inputs(brain.joint, values), training=False)
    distribution = brain.distribution
    params = {key: out[key][:, 0] for key in distribution.param_names}
    if deterministic:
        action = distribution.mode(params)
    else:
        action = distribution.sample(params, generator)
    outputs = {
        ACTION: action,
        LOG_PROB: distribution.log_prob(params, action),
        VALUE: out[VALUE][:, 0, 0],
        **params,
        **{name: out[name][:, 0] if name in timed else out[name] for name in extra},
    }
    return outputs, {name: out[name] for name in brain.state_names}
