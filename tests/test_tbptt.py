"""TBPTT chunks: known layout, state carried between chunks, padding gets no gradient."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import tensorflow as tf

from neuroloop.brain.contract import Brain
from neuroloop.brain.loading import build_brain
from neuroloop.training.losses import ppo_loss
from neuroloop.training.tbptt import Chunks, forward_chunks, make_chunks, minibatches

CHUNK_LEN = 4
N_STEPS = 10
# World 0: episodes start at steps 0 and 3. World 1: an episode runs in from the previous
# cycle (step 0 is no start) and a new one starts at step 9. Time-major: [step, world].
EPISODE_START = np.zeros((N_STEPS, 2), bool)
EPISODE_START[[0, 3], 0] = True
EPISODE_START[9, 1] = True
# (world, start, length) of every chunk, in order.
LAYOUT = [(0, 0, 3), (0, 3, 4), (0, 7, 3), (1, 0, 4), (1, 4, 4), (1, 8, 1), (1, 9, 1)]
UNITS = 3
INPUT_SHAPES: dict[str, tuple[int, ...]] = {"proprioception": (4,), "goal": (2,)}
ACTION_DIM = 2
TOLERANCE = 1e-5


def _known_chunks() -> tuple[Chunks, dict[str, np.ndarray], dict[str, np.ndarray]]:
    steps = np.arange(N_STEPS)
    arrays = {
        "tag": 100 * np.arange(2)[None, :] + steps[:, None] + 1,  # [L, 2], never 0
        "obs": np.arange(N_STEPS * 2 * 2, dtype=np.float32).reshape(N_STEPS, 2, 2) + 1,
        "mask": np.ones((N_STEPS, 2), np.float32),
    }
    arrays["mask"][2, 0] = 0.0  # a final observation: no transition leaves it
    states = {"policy_state_h": np.random.default_rng(0).normal(size=(N_STEPS, 2, UNITS)) + 5}
    return make_chunks(EPISODE_START, arrays, states, chunk_len=CHUNK_LEN), arrays, states


def test_chunk_layout_on_a_hand_built_episode_start() -> None:
    chunks, arrays, states = _known_chunks()
    assert chunks.n_chunks == len(LAYOUT) and chunks.chunk_len == CHUNK_LEN
    assert list(zip(chunks.world, chunks.start, chunks.length, strict=True)) == LAYOUT
    assert set(chunks.arrays) == {"tag", "obs"}
    assert chunks.arrays["obs"].shape == (len(LAYOUT), CHUNK_LEN, 2)
    for i, (world, start, length) in enumerate(LAYOUT):
        real = slice(start, start + length)
        np.testing.assert_array_equal(chunks.arrays["tag"][i, :length], arrays["tag"][real, world])
        np.testing.assert_array_equal(chunks.arrays["tag"][i, length:], 0)
        np.testing.assert_array_equal(chunks.arrays["obs"][i, length:], 0)
        np.testing.assert_array_equal(chunks.mask[i, length:], 0)
        np.testing.assert_array_equal(chunks.mask[i, :length], arrays["mask"][real, world])
        recorded = states["policy_state_h"][start, world]
        expected = np.zeros(UNITS) if EPISODE_START[start, world] else recorded
        np.testing.assert_array_equal(chunks.initial_state["policy_state_h"][i], expected)
    assert chunks.mask[0].tolist() == [1, 1, 0, 0]  # the step mask times the padding mask
    np.testing.assert_array_equal(chunks.unchunk(chunks.arrays["obs"], N_STEPS), arrays["obs"])


def test_minibatches_are_drawn_by_whole_chunks() -> None:
    chunks, _, _ = _known_chunks()
    batches = list(minibatches(chunks, 3, np.random.default_rng(1)))
    assert [len(batch) for batch in batches] == [3, 2, 2]
    assert sorted(np.concatenate(batches).tolist()) == list(range(chunks.n_chunks))
    selected = chunks.select(batches[0])
    np.testing.assert_array_equal(selected.arrays["tag"], chunks.arrays["tag"][batches[0]])
    np.testing.assert_array_equal(selected.world, chunks.world[batches[0]])
    with pytest.raises(ValueError, match=r"`n_minibatches` must be an int in \[1, 7\]"):
        next(minibatches(chunks, 8, np.random.default_rng(1)))


def test_invalid_chunk_inputs() -> None:
    with pytest.raises(ValueError, match="`chunk_len` must be a positive int"):
        make_chunks(EPISODE_START, {}, {}, chunk_len=0)
    with pytest.raises(ValueError, match=r"arrays\['obs'\] must be \[L, B, ...\]"):
        make_chunks(EPISODE_START, {"obs": np.zeros((N_STEPS - 1, 2))}, {})
    with pytest.raises(ValueError, match=r"states\['h'\] must be \[L, B, units\]"):
        make_chunks(EPISODE_START, {}, {"h": np.zeros((N_STEPS, 2))})


# ---------------------------------------------------------------- a real recurrent brain

SEQ_STEPS = 11
SEQ_STARTS = np.zeros((SEQ_STEPS, 2), bool)  # time-major
SEQ_STARTS[5, 0] = True
SEQ_STARTS[8, 1] = True


def _lstm() -> Brain:
    brain = build_brain(
        "lstm",
        input_shapes=INPUT_SHAPES,
        action_dim=ACTION_DIM,
        embedding_units=5,
        recurrent_units=UNITS,
    )
    brain.set_input_statistics({"proprioception": (np.full(4, 0.5), np.full(4, 2.0))})
    return brain


def _gather(brain: Brain) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any]]:
    """Step the brain through the sequences one step at a time, as the brain engine does.

    Returns:
        Observations ``[L, B, ...]``, the state carried into each step ``[L, B, units]``
        and the per-step outputs ``[L, B, ...]`` (time-major, as gathered).
    """
    rng = np.random.default_rng(2)
    observations = {
        name: rng.normal(size=(SEQ_STEPS, 2, *shape)).astype(np.float32)
        for name, shape in INPUT_SHAPES.items()
    }
    # Step 0 starts no episode: the state carried in from a previous cycle is not zero.
    state = {
        name: rng.normal(size=s.shape).astype(np.float32)
        for name, s in brain.initial_state(2).items()
    }
    recorded: dict[str, list[np.ndarray]] = {name: [] for name in state}
    outputs: dict[str, list[np.ndarray]] = {"alpha": [], "beta": [], "value": []}
    for t in range(SEQ_STEPS):
        state = brain.reset_state(state, SEQ_STARTS[t])
        for name, value in state.items():
            recorded[name].append(value)
        step = {name: array[t][:, np.newaxis] for name, array in observations.items()}
        out = brain.joint(brain.select_inputs(brain.joint, {**step, **state}))
        state = {name: out[name].numpy() for name in brain.state_names}
        for name, collected in outputs.items():
            collected.append(out[name].numpy()[:, 0])
    states = {name: np.stack(values) for name, values in recorded.items()}
    return (
        observations,
        states,
        {name: np.stack(values) for name, values in outputs.items()},
    )


def test_chunked_forward_equals_the_step_by_step_pass_across_an_episode_boundary() -> None:
    brain = _lstm()
    observations, states, stepped = _gather(brain)
    chunks = make_chunks(SEQ_STARTS, observations, states, chunk_len=CHUNK_LEN)
    assert chunks.start.tolist() == [0, 4, 5, 9, 0, 4, 8]  # worlds 0 and 1
    out = forward_chunks(brain, "joint", chunks)
    for name, expected in stepped.items():
        whole = chunks.unchunk(out[name].numpy(), SEQ_STEPS)
        np.testing.assert_allclose(whole, expected, atol=TOLERANCE, err_msg=name)

    # A minibatch of chunks gives the same numbers as the full pass.
    indices = np.array([5, 1, 3])
    policy = forward_chunks(brain, "policy", chunks, indices)
    np.testing.assert_allclose(policy["alpha"], out["alpha"].numpy()[indices], atol=TOLERANCE)
    assert set(policy) == {"alpha", "beta", *brain.policy_state_names}


def test_padded_steps_get_zero_gradient_through_ppo_loss() -> None:
    brain = _lstm()
    observations, states, _ = _gather(brain)
    rng = np.random.default_rng(3)
    shape = SEQ_STARTS.shape
    arrays = {
        **observations,
        "actions": rng.uniform(0.05, 0.95, size=(*shape, ACTION_DIM)).astype(np.float32),
        "old_log_prob": rng.normal(size=shape).astype(np.float32),
        "advantages": rng.normal(size=shape).astype(np.float32),
        "values": rng.normal(size=shape).astype(np.float32),
        "returns": rng.normal(size=shape).astype(np.float32),
    }
    chunks = make_chunks(SEQ_STARTS, arrays, states, chunk_len=CHUNK_LEN)
    padding = chunks.mask == 0
    assert padding.any()
    inputs = {name: tf.constant(chunks.arrays[name]) for name in INPUT_SHAPES}
    with tf.GradientTape() as tape:
        tape.watch(list(inputs.values()))
        out = brain.joint(brain.select_inputs(brain.joint, {**inputs, **chunks.initial_state}))
        distribution = brain.distribution
        loss, _ = ppo_loss(
            distribution.log_prob(out, chunks.arrays["actions"]),
            chunks.arrays["old_log_prob"],
            chunks.arrays["advantages"],
            out["value"][..., 0],
            chunks.arrays["values"],
            chunks.arrays["returns"],
            distribution.entropy(out),
            chunks.mask,
            value_clip=0.2,
        )
    gradients = tape.gradient(loss, inputs)
    for name, gradient in gradients.items():
        magnitude = np.abs(gradient.numpy()).sum(axis=-1)
        assert (magnitude[padding] == 0.0).all(), name
        assert (magnitude[~padding] > 0.0).all(), name


def test_forward_chunks_names_missing_inputs() -> None:
    brain = _lstm()
    chunks, _, _ = _known_chunks()
    with pytest.raises(ValueError, match="`model_name` must be one of"):
        forward_chunks(brain, "critic", chunks)
    with pytest.raises(ValueError, match=r"missing \[.*'goal'"):
        forward_chunks(brain, "policy", chunks)
