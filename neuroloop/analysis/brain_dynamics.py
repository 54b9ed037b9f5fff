"""A recorded brain, rebuilt, as a recurrent update for the fixed-point finder."""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np
import tensorflow as tf

from neuroloop.analysis.fixed_points import Update
from neuroloop.brain.contract import Brain
from neuroloop.brain.loading import build_brain
from neuroloop.brain.weights import assign_flat_weights
from neuroloop.recording import Recording


def brain_from_recording(recording: Recording) -> Brain:
    """The brain that made ``recording``, with its weights (``meta/brain``, ``meta/weights``).

    Raises:
        ValueError: If the recording lacks them.
    """
    settings, weights = recording.meta("brain"), recording.meta("weights")
    if settings is None or weights is None:
        raise ValueError(
            f"{recording.path}: expected meta/brain and meta/weights (neuroloop evaluate "
            "--record writes them). Received: none"
        )
    meta = json.loads(str(settings))
    brain = build_brain(
        meta["Brain"],
        input_shapes={name: tuple(shape) for name, shape in meta["InputShapes"].items()},
        action_dim=int(meta["ActionDim"]),
        distribution=meta["Distribution"],
        distribution_options=meta.get("DistributionOptions") or {},
        **(meta.get("BrainOptions") or {}),
    )
    assign_flat_weights(brain.joint, weights)
    return brain


def policy_update(brain: Brain, held: Mapping[str, np.ndarray]) -> Update:
    """The policy's recurrent update at held inputs, on its concatenated state.

    Args:
        brain: A recurrent brain.
        held: One value per modality the policy reads (``[*shape]``, no batch axis).

    Returns:
        ``F``: ``[B, n]`` float64 -> ``[B, n]``, the state after one step, where the state is
        the policy's state tensors (``brain.policy_state_names``) side by side.
    """
    names = brain.policy_state_names
    sizes = [brain.policy_state_sizes[name] for name in names]
    inputs = {
        name: tf.constant(np.asarray(held[name], dtype=np.float32)[None, None])
        for name in brain.policy_modalities
    }

    def update(state: tf.Tensor) -> tf.Tensor:
        batch = tf.shape(state)[0]
        parts = tf.split(tf.cast(state, tf.float32), sizes, axis=1)
        values = {name: tf.repeat(tensor, batch, axis=0) for name, tensor in inputs.items()}
        values.update(zip(names, parts, strict=True))
        out = brain.policy(brain.select_inputs(brain.policy, values), training=False)
        return tf.cast(tf.concat([out[name] for name in names], axis=1), tf.float64)

    return update
