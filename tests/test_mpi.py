"""neuroloop.training.mpi: the identity in one process, real collectives under ``mpiexec -n 2``.

The two-rank tests run tests/fixtures/mpi_ranks.py with the ``mpiexec`` that the ``mpich``
wheel installs next to this Python, and recompute every answer here from the inputs each
rank saved.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from neuroloop.training.mpi import SingleProcess
from tests.fixtures import mpi_ranks
from tests.processes import FIXTURES

MPIEXEC = Path(sys.executable).parent / "mpiexec"
"""The Hydra ``mpiexec`` of the mpich wheel, which matches the libmpi mpi4py loads."""

MPIEXEC_TIMEOUT_S = 120.0
"""Upper bound on one ``mpiexec`` run; a hang fails the test instead of blocking the suite."""

RANKS = 2
"""Ranks of every ``mpiexec`` run."""

WEIGHT_TOLERANCE = 1e-6
"""Two-rank training against the single-process reference (oneDNN may reorder sums)."""

STATS_TOLERANCE = 1e-12
"""Merged statistics against single-pass statistics over the union of the data."""

SHARED_MEMORY = Path("/dev/shm")
"""Where MPICH keeps its intra-node segments (``mpich_shm_*``, about 2 MB per job)."""


def mpiexec_command(outdir: Path, mode: str) -> list[str]:
    """``mpiexec -n 2 python tests/fixtures/mpi_ranks.py OUTDIR MODE``, all ranks local.

    Hydra needs no flags on a plain machine; ``-launcher fork -hosts localhost`` keeps both
    ranks on this node inside a SLURM allocation too, where ``OUTDIR`` may be node-local.
    """
    return [
        str(MPIEXEC),
        "-launcher",
        "fork",
        "-hosts",
        "localhost",
        "-n",
        str(RANKS),
        sys.executable,
        str(FIXTURES / "mpi_ranks.py"),
        str(outdir),
        mode,
    ]


def run_mpiexec(outdir: Path, mode: str, timeout_s: float = MPIEXEC_TIMEOUT_S) -> tuple[int, str]:
    """Run the fixture under ``mpiexec``; its exit status and a report naming the command.

    On timeout ``mpiexec`` gets SIGTERM, which Hydra forwards to the ranks (they run in
    sessions of their own, so killing a process group would not reach them).
    """
    command = mpiexec_command(outdir, mode)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout_s)
    finally:
        if process.poll() is None:
            process.terminate()
            process.communicate(timeout=30)
    report = (
        f"command: {' '.join(command)}\nexit status: {process.returncode}\n"
        f"stdout:\n{stdout}\nstderr:\n{stderr}"
    )
    return process.returncode, report


def mpich_segments() -> set[Path]:
    """MPICH's shared-memory segments that exist now."""
    return set(SHARED_MEMORY.glob("mpich_shm_*"))


def mapped(segments: set[Path]) -> set[Path]:
    """Those of ``segments`` that a live process still has mapped."""
    found = set()
    for maps in Path("/proc").glob("[0-9]*/maps"):
        try:
            text = maps.read_text()
        except OSError:
            continue
        found |= {s for s in segments if str(s) in text}
    return found


def remove_when_unmapped(segments: set[Path], timeout_s: float = 10.0) -> None:
    """Unlink ``segments`` once the (dying) ranks have unmapped them; never a live job's."""
    if not segments:
        return
    deadline = time.monotonic() + timeout_s
    while (busy := mapped(segments)) and time.monotonic() < deadline:
        time.sleep(0.1)
    for segment in segments - busy:
        segment.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, np.ndarray]]:
    """What rank 0 and rank 1 saved from one ``mpiexec -n 2 ... collectives`` run."""
    outdir = tmp_path_factory.mktemp("mpi")
    status, report = run_mpiexec(outdir, "collectives")
    assert status == 0, report
    saved = []
    for rank in range(RANKS):
        with np.load(outdir / f"rank{rank}.npz") as npz:
            saved.append(dict(npz))
    return saved


# --- one process -----------------------------------------------------------------------------


def test_importing_needs_no_mpi4py_and_a_plain_run_is_single_process() -> None:
    script = (
        "import sys\n"
        "import neuroloop.training.mpi as mpi\n"
        "print('imported mpi4py:', 'mpi4py' in sys.modules)\n"
        "comm = mpi.get_communicator()\n"
        "print('with mpi4py:', type(comm).__name__, comm.rank, comm.size, comm.is_root)\n"
        "for name in [m for m in sys.modules if m.startswith('mpi4py')]:\n"
        "    del sys.modules[name]\n"
        "sys.modules['mpi4py'] = None\n"
        "comm = mpi.get_communicator()\n"
        "print('without mpi4py:', type(comm).__name__, comm.rank, comm.size, comm.is_root)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.splitlines() == [
        "imported mpi4py: False",
        "with mpi4py: SingleProcess 0 1 True",
        "without mpi4py: SingleProcess 0 1 True",
    ], result.stderr


def test_an_mpiexec_of_another_mpi_is_an_error_not_n_lone_runs() -> None:
    script = "import neuroloop.training.mpi as mpi\nmpi.get_communicator()\n"
    env = {**os.environ, "OMPI_COMM_WORLD_SIZE": "2"}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode != 0
    assert "OMPI_COMM_WORLD_SIZE=2" in result.stderr
    assert "world of size 1" in result.stderr


def test_single_process_allreduce_mean_is_the_identity() -> None:
    comm = SingleProcess()
    arrays = [*mpi_ranks.gradients_of_rank(0), np.arange(3.0)]
    result = comm.allreduce_mean(arrays)
    assert len(result) == len(arrays)
    for before, after in zip(arrays, result, strict=True):
        assert after is before
    assert comm.allreduce_mean([]) == []


def test_single_process_merge_of_one_ranks_stats_is_itself() -> None:
    samples = mpi_ranks.samples_of_rank(1)
    mean, var = samples.mean(axis=0), samples.var(axis=0)
    count, merged_mean, merged_var = SingleProcess().merge_running_stats(len(samples), mean, var)
    assert count == len(samples)
    np.testing.assert_array_equal(merged_mean, mean)
    np.testing.assert_array_equal(merged_var, var)


def test_single_process_sum_broadcast_json_and_barrier_are_identities() -> None:
    comm = SingleProcess()
    assert (comm.rank, comm.size, comm.is_root) == (0, 1, True)
    np.testing.assert_array_equal(comm.allreduce_sum([1.5, -2.0]), [1.5, -2.0])
    assert comm.allreduce_sum(3).dtype == np.float64
    weights = np.linspace(-1.0, 1.0, 7, dtype=np.float32)
    received = comm.broadcast(weights)
    assert received.dtype == np.float32
    np.testing.assert_array_equal(received, weights)
    value = {"seeds": [1, 2]}
    assert comm.broadcast_json(value) is value
    comm.barrier()


def test_single_process_exceptions_propagate_through_abort_on_error() -> None:
    with pytest.raises(RuntimeError, match="propagates"), SingleProcess().abort_on_error():
        raise RuntimeError("propagates")


def test_bad_arguments_are_named_errors_with_one_process_too() -> None:
    comm = SingleProcess()
    with pytest.raises(TypeError, match=r"arrays\[1\]\.dtype=int64"):
        comm.allreduce_mean([np.zeros(2), np.zeros(2, dtype=np.int64)])
    with pytest.raises(ValueError, match="root=1"):
        comm.broadcast(np.zeros(2), root=1)
    with pytest.raises(ValueError, match=r"mean.shape=\(3,\), var.shape=\(2,\)"):
        comm.merge_running_stats(4, np.zeros(3), np.ones(2))


# --- two ranks under mpiexec -------------------------------------------------------------------


def test_allreduce_mean_is_the_mean_of_both_ranks(ranks: list[dict[str, np.ndarray]]) -> None:
    first, second = ranks
    for i, shape in enumerate(mpi_ranks.GRADIENT_SHAPES):
        expected = (first[f"grads_in_{i}"] + second[f"grads_in_{i}"]) / np.float32(2)
        assert expected.dtype == np.float32
        for saved in ranks:
            assert saved[f"grads_out_{i}"].shape == shape
            assert saved[f"grads_out_{i}"].dtype == np.float32
            np.testing.assert_array_equal(saved[f"grads_out_{i}"], expected)
    expected64 = (first["float64_in"] + second["float64_in"]) / 2
    for saved in ranks:
        np.testing.assert_array_equal(saved["float64_out"], expected64)


def test_allreduce_sum_adds_both_ranks(ranks: list[dict[str, np.ndarray]]) -> None:
    expected = ranks[0]["sums_in"] + ranks[1]["sums_in"]
    for saved in ranks:
        np.testing.assert_array_equal(saved["sums_out"], expected)


def test_broadcast_gives_every_rank_the_roots_values(ranks: list[dict[str, np.ndarray]]) -> None:
    first, second = ranks
    assert not np.array_equal(first["weights_in"], second["weights_in"])
    for saved in ranks:
        assert saved["weights_out"].dtype == np.float32
        np.testing.assert_array_equal(saved["weights_out"], first["weights_in"])
        np.testing.assert_array_equal(saved["from_root_1"], np.ones(3))
        assert json.loads(str(saved["json"])) == mpi_ranks.ROOT_JSON


def test_merged_stats_equal_single_pass_stats_over_both_ranks(
    ranks: list[dict[str, np.ndarray]],
) -> None:
    union = np.concatenate([saved["samples"] for saved in ranks])
    for saved in ranks:
        assert float(saved["merged"][0]) == len(union)
        np.testing.assert_allclose(
            saved["merged_mean"], union.mean(axis=0), rtol=0, atol=STATS_TOLERANCE
        )
        np.testing.assert_allclose(
            saved["merged_var"], union.var(axis=0), rtol=0, atol=STATS_TOLERANCE
        )


def test_two_rank_training_matches_single_process_mean_gradient(
    ranks: list[dict[str, np.ndarray]],
) -> None:
    import keras

    first, second = ranks
    assert not np.array_equal(first["own_initial"], second["own_initial"])
    np.testing.assert_array_equal(second["initial"], first["own_initial"])
    np.testing.assert_array_equal(first["final"], second["final"])
    assert not np.allclose(first["final"], first["initial"])

    model = mpi_ranks.build_model(seed=0)
    mpi_ranks.set_flat_weights(model, first["initial"])
    optimizer = keras.optimizers.Adam(learning_rate=mpi_ranks.LEARNING_RATE)
    shards = [mpi_ranks.shard_of_rank(rank) for rank in range(RANKS)]
    for step in range(mpi_ranks.STEPS):
        per_shard = [mpi_ranks.gradients(model, x[step], y[step]) for x, y in shards]
        mean = [(a + b) / np.float32(2) for a, b in zip(*per_shard, strict=True)]
        optimizer.apply_gradients(zip(mean, model.trainable_variables, strict=True))
    np.testing.assert_allclose(
        first["final"], mpi_ranks.flat_weights(model), rtol=0, atol=WEIGHT_TOLERANCE
    )


def test_episode_figures_count_every_ranks_finished_episodes_once(
    ranks: list[dict[str, np.ndarray]],
) -> None:
    # Known answer (see rollout_arrays_of_rank): both ranks finish world 0's first episode
    # (2 transitions); rank 1 also finishes world 1's (4 transitions). Rewards arrive on
    # the steps after an episode's start.
    returns = [saved["rollout_rewards"][1:3, 0].sum() for saved in ranks]
    returns.append(ranks[1]["rollout_rewards"][1:5, 1].sum())
    lengths = [2, 2, 4]
    steps = RANKS * (mpi_ranks.ROLLOUT_STEPS - 1) * mpi_ranks.ROLLOUT_WORLDS
    # The task metric of the same three episodes: 0.25 (rank 0), 0.75 and 1.0 (rank 1); the
    # stray 100 where no episode ends does not count.
    task_metric = (0.25 + 0.75 + 1.0) / 3
    for saved in ranks:
        for metric, expected_metric in (
            (mpi_ranks.TASK_METRIC, task_metric),
            ("mean_return", np.mean(returns)),
        ):
            figures = dict(zip(mpi_ranks.EPISODE_FIGURES, saved[f"episodes_{metric}"], strict=True))
            assert figures["episodes"] == len(returns)
            assert figures["steps"] == steps
            np.testing.assert_allclose(figures["mean_return"], np.mean(returns), atol=1e-12)
            assert figures["mean_length"] == np.mean(lengths)
            np.testing.assert_allclose(figures["metric"], expected_metric, atol=1e-12)


def test_an_exception_on_one_rank_ends_every_rank(tmp_path: Path) -> None:
    before = mpich_segments()
    status, report = run_mpiexec(tmp_path, "abort", timeout_s=60.0)
    remove_when_unmapped(mpich_segments() - before)  # MPI_Abort skips MPICH's own cleanup
    assert status != 0, report
    assert "[mpi] rank 1 of 2 failed" in report, report
    assert "deliberate failure on rank 1" in report, report
