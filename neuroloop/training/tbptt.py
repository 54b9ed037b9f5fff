"""Truncated backpropagation through time: gathered sequences cut into chunks of one episode.

The gatherer hands over, time-major, ``L`` observation-aligned steps of ``B`` worlds
(usually ``L = T + 1``): ``episode_start [L, B]``, per-step arrays ``[L, B, ...]``
(modalities, actions, old log-probabilities, values, advantages, returns, and the step
``mask``) and the recurrent state carried into each step, ``states[name] [L, B, units]``.

``make_chunks`` cuts each world's sequence into chunks that never cross an episode start: a
chunk starts at step 0, at every episode start, and every ``chunk_len`` steps within an
episode. Chunks are zero-padded to ``chunk_len`` and batch-major, as Keras's recurrent
layers take them (picked out of the time-major arrays by index, no transpose). Rule 8's
rollout layout ``(batch, n_chunks, chunk_len, ...)`` is stored flattened as
``[N, chunk_len, ...]``,
``N = sum over worlds of that world's n_chunks`` (episode boundaries make ``n_chunks``
differ between worlds), ordered by world, then time; ``Chunks.world`` and ``Chunks.start``
say where each chunk came from. Each chunk's ``initial_state`` is the recorded state at its
first step (zeros at an episode start), so a recurrent model run on the chunk from that
state reproduces the gathered pass; minibatches are drawn by whole chunks (CleanRL
``ppo_atari_lstm.py``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import tensorflow as tf

    from neuroloop.brain.contract import Brain

DEFAULT_CHUNK_LEN = 16
"""Steps per TBPTT chunk."""
MASK = "mask"
"""Key of the step mask among ``make_chunks``'s arrays (1 where a transition exists)."""
MASK_DTYPE = np.float32
"""dtype of ``Chunks.mask``."""
MODEL_NAMES = ("policy", "value", "joint")
"""Models of a ``Brain`` that ``forward_chunks`` can run."""
_TIME_MAJOR_RANK = 2


@dataclass(frozen=True)
class Chunks:
    """Gathered sequences cut into ``N`` chunks of ``chunk_len`` steps (see module docstring).

    Padding (steps past a chunk's ``length``) is zero in every array and in ``mask``.
    """

    arrays: dict[str, np.ndarray]
    """Per-step arrays ``[N, chunk_len, ...]`` by name (the step mask is in ``mask``)."""
    mask: np.ndarray
    """``[N, chunk_len]`` float32: the step mask, 0 on padding."""
    initial_state: dict[str, np.ndarray]
    """Recurrent state at each chunk's first step ``[N, units]`` by state name."""
    world: np.ndarray
    """``[N]`` int: the world (batch row) each chunk came from."""
    start: np.ndarray
    """``[N]`` int: the step index (in ``[0, L)``) of each chunk's first step."""
    length: np.ndarray
    """``[N]`` int: real (unpadded) steps of each chunk, in ``[1, chunk_len]``."""

    @property
    def n_chunks(self) -> int:
        """Number of chunks ``N``."""
        return int(self.world.shape[0])

    @property
    def chunk_len(self) -> int:
        """Steps per chunk."""
        return int(self.mask.shape[1])

    def select(self, indices: Any) -> Chunks:
        """The chunks at ``indices`` (e.g. a minibatch), in that order.

        Args:
            indices: ``[n]`` integer chunk indices.
        """
        index = np.asarray(indices, dtype=np.int64)
        return Chunks(
            arrays={name: array[index] for name, array in self.arrays.items()},
            mask=self.mask[index],
            initial_state={name: state[index] for name, state in self.initial_state.items()},
            world=self.world[index],
            start=self.start[index],
            length=self.length[index],
        )

    def unchunk(self, x: Any, n_steps: int, n_worlds: int | None = None) -> np.ndarray:
        """Scatter per-chunk values back to the gathered layout (inverse of ``make_chunks``).

        Args:
            x: ``[N, chunk_len, ...]`` values of these chunks (e.g. a model's outputs).
            n_steps: Steps ``L`` per world of the gathered sequences.
            n_worlds: Worlds ``B``; ``max(world) + 1`` when ``None``.

        Returns:
            ``[L, B, ...]`` (time-major, as gathered); steps no chunk covers are 0.

        Raises:
            ValueError: If ``x`` does not start with ``[N, chunk_len]``.
        """
        array = np.asarray(x)
        if array.shape[:2] != self.mask.shape:
            raise ValueError(
                f"Chunks.unchunk: expected values of shape [{self.n_chunks}, "
                f"{self.chunk_len}, ...]. Received: shape={array.shape}"
            )
        worlds = int(self.world.max()) + 1 if n_worlds is None else n_worlds
        out = np.zeros((n_steps, worlds, *array.shape[2:]), array.dtype)
        valid = np.arange(self.chunk_len)[np.newaxis, :] < self.length[:, np.newaxis]
        rows = np.broadcast_to(self.world[:, np.newaxis], valid.shape)[valid]
        steps = (self.start[:, np.newaxis] + np.arange(self.chunk_len))[valid]
        out[steps, rows] = array[valid]
        return out


def _chunk_starts(episode_start: np.ndarray, chunk_len: int) -> np.ndarray:
    """``[L, B]`` bool: steps that begin a chunk.

    Args:
        episode_start: ``[L, B]`` bool.
        chunk_len: Steps per chunk.
    """
    steps = np.arange(episode_start.shape[0])[:, np.newaxis]
    # The step each one's episode (or the gathered sequence, at step 0) began at.
    anchors = np.where(episode_start, steps, 0)
    anchors = np.maximum.accumulate(anchors, axis=0)
    starts: np.ndarray = (steps - anchors) % chunk_len == 0
    return starts


def make_chunks(
    episode_start: Any,
    arrays: Mapping[str, Any],
    states: Mapping[str, Any],
    chunk_len: int = DEFAULT_CHUNK_LEN,
) -> Chunks:
    """Cut gathered sequences into zero-padded chunks that never cross an episode start.

    Args:
        episode_start: ``[L, B]`` bool: step ``t`` is the first observation of an episode.
        arrays: Per-step arrays ``[L, B, ...]`` by name. An array named ``"mask"``
            (``[L, B]``, 1 where a transition exists) is multiplied into ``Chunks.mask``
            instead of being chunked as an array.
        states: Recurrent state carried into each step ``[L, B, units]`` by state name
            (empty for a feed-forward brain); zeroed where a chunk starts an episode.
        chunk_len: Steps per chunk, a positive int.

    Returns:
        ``Chunks`` with arrays ``[N, chunk_len, ...]``, ``mask [N, chunk_len]`` and
        ``initial_state[name] [N, units]``.

    Raises:
        ValueError: If ``chunk_len`` is not a positive int or a shape does not match
            ``episode_start``.
    """
    if isinstance(chunk_len, bool) or not isinstance(chunk_len, int) or chunk_len < 1:
        raise ValueError(
            f"make_chunks: `chunk_len` must be a positive int. Received: chunk_len={chunk_len!r}"
        )
    starts_at = np.asarray(episode_start, dtype=bool)
    if starts_at.ndim != _TIME_MAJOR_RANK:
        raise ValueError(
            "make_chunks: expected episode_start of shape [L, B] (time-major). "
            f"Received: shape={starts_at.shape}"
        )
    n_steps, n_worlds = starts_at.shape
    checked: dict[str, np.ndarray] = {}
    for kind, mapping in (("arrays", arrays), ("states", states)):
        for name, value in mapping.items():
            array = np.asarray(value)
            if array.shape[:2] != (n_steps, n_worlds) or (kind == "states" and array.ndim != 3):
                expected = "[L, B, units]" if kind == "states" else "[L, B, ...]"
                raise ValueError(
                    f"make_chunks: {kind}[{name!r}] must be {expected} with "
                    f"[L, B] = {[n_steps, n_worlds]} (episode_start's shape). "
                    f"Received: shape={array.shape}"
                )
            checked[f"{kind}/{name}"] = array

    chunk_start = _chunk_starts(starts_at, chunk_len)
    start, world = np.nonzero(chunk_start)
    by_world = np.lexsort((start, world))  # by world, then time
    start, world = start[by_world], world[by_world]
    same_world_next = np.append(world[1:] == world[:-1], False)
    length = np.where(same_world_next, np.append(start[1:], n_steps), n_steps) - start

    offsets = np.arange(chunk_len)
    valid = offsets[np.newaxis, :] < length[:, np.newaxis]
    steps = np.where(valid, start[:, np.newaxis] + offsets, 0)
    rows = world[:, np.newaxis]

    def gather(array: np.ndarray) -> np.ndarray:
        picked = array[steps, rows]  # [N, chunk_len, ...] out of [L, B, ...]
        padding = valid.reshape(*valid.shape, *([1] * (picked.ndim - valid.ndim)))
        return np.where(padding, picked, np.zeros((), picked.dtype))

    mask = valid.astype(MASK_DTYPE)
    chunked: dict[str, np.ndarray] = {}
    for name in arrays:
        array = checked[f"arrays/{name}"]
        if name == MASK:
            mask = mask * gather(array).astype(MASK_DTYPE)
        else:
            chunked[name] = gather(array)
    at_episode_start = starts_at[start, world][:, np.newaxis]
    initial_state = {}
    for name in states:
        recorded = checked[f"states/{name}"][start, world]
        initial_state[name] = np.where(at_episode_start, np.zeros((), recorded.dtype), recorded)
    return Chunks(
        arrays=chunked,
        mask=mask,
        initial_state=initial_state,
        world=world,
        start=start,
        length=length,
    )


def minibatches(
    chunks: Chunks, n_minibatches: int, rng: np.random.Generator
) -> Iterator[np.ndarray]:
    """Shuffle whole chunks (sequences) into ``n_minibatches`` index sets of near-equal size.

    Args:
        chunks: The chunks of one gather cycle.
        n_minibatches: Number of minibatches, in ``[1, chunks.n_chunks]``.
        rng: Source of the permutation.

    Yields:
        ``[n]`` int64 chunk indices; together a permutation of ``range(N)``.

    Raises:
        ValueError: If ``n_minibatches`` is out of range.
    """
    total = chunks.n_chunks
    if (
        isinstance(n_minibatches, bool)
        or not isinstance(n_minibatches, int)
        or not 1 <= n_minibatches <= total
    ):
        raise ValueError(
            f"minibatches: `n_minibatches` must be an int in [1, {total}] (the number of "
            f"chunks). Received: n_minibatches={n_minibatches!r}"
        )
    yield from np.array_split(rng.permutation(total).astype(np.int64), n_minibatches)


def forward_chunks(
    brain: Brain,
    model_name: str,
    chunks: Chunks,
    indices: Sequence[int] | np.ndarray | None = None,
) -> dict[str, tf.Tensor]:
    """Run one of the brain's models on chunks, each from its ``initial_state``.

    Differentiable: call it inside ``tf.GradientTape`` to train on a minibatch.

    Args:
        brain: The brain whose ``policy``, ``value`` or ``joint`` model to run.
        model_name: ``"policy"``, ``"value"`` or ``"joint"``.
        chunks: Chunks whose ``arrays`` hold the model's modality inputs
            ``[N, chunk_len, ...]`` and whose ``initial_state`` holds its state inputs.
        indices: ``[n]`` chunk indices (a minibatch); all chunks when ``None``.

    Returns:
        The model's outputs: per-step outputs ``[n, chunk_len, ...]`` (distribution
        parameters, ``value [n, chunk_len, 1]``) and final states ``[n, units]``; the latter
        include padding steps and are not the state at the chunk's last real step.

    Raises:
        ValueError: If ``model_name`` is unknown or the chunks lack one of the model's
            inputs.
    """
    if model_name not in MODEL_NAMES:
        raise ValueError(
            f"forward_chunks: `model_name` must be one of {list(MODEL_NAMES)}. "
            f"Received: model_name={model_name!r}"
        )
    model = getattr(brain, model_name)
    return dict(model(chunk_inputs(brain, model_name, chunks, indices)))


def chunk_inputs(
    brain: Brain,
    model_name: str,
    chunks: Chunks,
    indices: Sequence[int] | np.ndarray | None = None,
) -> dict[str, tf.Tensor]:
    """The inputs ``forward_chunks`` feeds one of the brain's models, as tensors.

    For callers that run the model themselves, e.g. inside a compiled training step.
    Arguments as for ``forward_chunks``.
    """
    model = getattr(brain, model_name)
    index = None if indices is None else np.asarray(indices, dtype=np.int64)
    values: dict[str, np.ndarray] = {}
    for tensor in model.inputs:
        name = tensor.name
        source = chunks.initial_state if name in chunks.initial_state else chunks.arrays
        if name not in source:
            continue  # select_inputs names what is missing
        array = source[name] if index is None else source[name][index]
        values[name] = array.astype(np.float32, copy=False)
    return dict(brain.select_inputs(model, values))
