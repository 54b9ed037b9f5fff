"""Training end to end on Pendulum-v1: train, evaluate, export, plot, resume, recipes."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from neuroloop.brain.weights import flatten
from neuroloop.errors import ConfigError
from neuroloop.plugins.engines.keras_brain import KerasBrainEngine
from neuroloop.training.checkpoint import TrainingState, load_checkpoint, save_checkpoint
from neuroloop.training.monitor import reconcile_progress
from neuroloop.training.recipe import load_recipe
from tests.processes import progress
from tests.processes import run_neuroloop as neuroloop

REPO = Path(__file__).resolve().parents[1]
PENDULUM = REPO / "experiments" / "pendulum.yaml"
TINY = ("-o", "Horizon=64", "-o", "PPO.Epochs=2", "-o", "PPO.Minibatches=2", "--quiet")


@pytest.fixture(scope="module")
def two_cycles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "two"
    result = neuroloop("train", PENDULUM, "--cycles", "2", "--run-dir", run_dir, *TINY)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return run_dir


def test_train_writes_monitor_checkpoints_and_tensorboard(two_cycles: Path) -> None:
    records = progress(two_cycles)
    assert [r["cycle"] for r in records] == [1, 2]
    assert [r["env_steps"] for r in records] == [64, 128]
    for key in (
        "policy_loss",
        "value_loss",
        "entropy",
        "approx_kl",
        "clip_fraction",
        "gather_s",
        "gather_cpu_s",
        "gather_cores",
        "optimize_s",
        "env_steps_per_s",
        "peak_memory_mib",
        "return_std",
    ):
        assert isinstance(records[-1][key], float), key
    # The orchestrator alone spends CPU time on every control step.
    for record in records:
        cpu, cores = record["gather_cpu_s"], record["gather_cores"]
        assert isinstance(cpu, float) and isinstance(cores, float) and cpu > 0 and cores > 0
    assert (two_cycles / "checkpoints" / "latest.npz").is_file()
    assert list((two_cycles / "tensorboard").iterdir())
    recipe = json.loads((two_cycles / "recipe.json").read_text())
    assert recipe["Horizon"] == 64 and recipe["Cycles"] == 2
    assert recipe["PPO"]["LearningRateSchedule"] == "constant"
    assert [r["learning_rate"] for r in records] == [recipe["PPO"]["LearningRate"]] * 2


def test_a_linear_schedule_anneals_the_learning_rate_to_zero_over_the_cycles(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "linear"
    linear = ("-o", "PPO.LearningRate=0.003", "-o", "PPO.LearningRateSchedule=linear")
    result = neuroloop("train", PENDULUM, "--cycles", "3", "--run-dir", run_dir, *linear, *TINY)
    assert result.returncode == 0, result.stderr
    # Pendulum's episodes last 200 steps: none ends in 3 cycles of 64.
    assert "nan" not in result.stdout
    assert "no episode ended in the last cycle" in result.stdout
    rates = [r["learning_rate"] for r in progress(run_dir)]
    assert rates == pytest.approx([0.003, 0.002, 0.001], rel=1e-12)
    # The optimizer took the annealed rate: its saved learning-rate variable is the last one.
    state = load_checkpoint(run_dir / "checkpoints" / "latest.npz")
    assert any(v.shape == () and np.isclose(v, 0.001) for v in state.optimizer)


def test_resumed_run_repeats_the_uninterrupted_cycle(two_cycles: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "resumed"
    first = neuroloop("train", PENDULUM, "--cycles", "1", "--run-dir", run_dir, *TINY)
    assert first.returncode == 0, first.stderr
    second = neuroloop("train", "--resume", run_dir, "--cycles", "2", "--quiet")
    assert second.returncode == 0, second.stderr
    uninterrupted, resumed = progress(two_cycles), progress(run_dir)
    assert [r["cycle"] for r in resumed] == [1, 2]
    for key in ("mean_return", "policy_loss", "value_loss", "entropy", "approx_kl"):
        assert resumed[1][key] == uninterrupted[1][key], key
    a = load_checkpoint(two_cycles / "checkpoints" / "latest.npz")
    b = load_checkpoint(run_dir / "checkpoints" / "latest.npz")
    for x, y in zip(a.weights + a.optimizer, b.weights + b.optimizer, strict=True):
        np.testing.assert_array_equal(x, y)


def test_plot_and_evaluate(two_cycles: Path, tmp_path: Path) -> None:
    png = tmp_path / "curves.png"
    plotted = neuroloop("plot", two_cycles, two_cycles, "--output", png)
    assert plotted.returncode == 0, plotted.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    evaluated = neuroloop(
        "evaluate",
        two_cycles,
        "--episodes",
        "1",
        "--deterministic",
        "--checkpoint",
        "latest",
        "--horizon",
        "210",
    )
    assert evaluated.returncode == 0, evaluated.stderr
    line = next(line for line in evaluated.stdout.splitlines() if line.startswith("return"))
    mean = float(line.split()[1])
    assert -2000 < mean < 0  # a Pendulum-v1 episode's return
    assert "95% CI, 1 episodes" in line


def test_exported_weights_load_into_a_brain_engine_unchanged(
    two_cycles: Path, tmp_path: Path
) -> None:
    output = tmp_path / "exported" / "pendulum.weights.h5"
    exported = neuroloop("export", two_cycles, "--checkpoint", "latest", "--output", output)
    assert exported.returncode == 0, exported.stderr
    recipe = load_recipe(two_cycles / "recipe.json")
    section = recipe.simulation_config().engine(recipe.brain_engine)
    brain = KerasBrainEngine(recipe.brain_engine)
    brain.initialize(
        {**section.section, "EngineExtraConfigs": {**section.extra, "Weights": str(output)}}
    )
    expected = flatten(load_checkpoint(two_cycles / "checkpoints" / "latest.npz").weights)
    np.testing.assert_array_equal(brain.get_datapack("weights"), expected)
    brain.shutdown()


def test_exported_weights_evaluate_like_their_run(two_cycles: Path, tmp_path: Path) -> None:
    output = tmp_path / "pendulum.weights.h5"
    exported = neuroloop("export", two_cycles, "--checkpoint", "latest", "--output", output)
    assert exported.returncode == 0, exported.stderr
    common = ("--episodes", "1", "--deterministic", "--horizon", "210")
    from_run = neuroloop("evaluate", two_cycles, "--checkpoint", "latest", *common)
    from_file = neuroloop("evaluate", PENDULUM, "--weights", output, *common)
    assert from_run.returncode == 0, from_run.stderr
    assert from_file.returncode == 0, from_file.stderr
    returns = [
        next(line for line in result.stdout.splitlines() if line.startswith("return"))
        for result in (from_run, from_file)
    ]
    assert returns[0] == returns[1]  # same weights, same seeds, the policy's mode


def test_export_names_a_bad_output_file(two_cycles: Path, tmp_path: Path) -> None:
    result = neuroloop("export", two_cycles, "--output", tmp_path / "brain.h5")
    assert result.returncode == 2
    assert "expected a file name ending in .weights.h5" in result.stderr
    assert not (tmp_path / "brain.h5").exists()


def test_evaluate_without_finished_episodes_says_so(two_cycles: Path) -> None:
    result = neuroloop("evaluate", two_cycles, "--episodes", "1", "--checkpoint", "latest")
    assert result.returncode == 2
    assert "no episode finished within 64 control steps" in result.stderr


def test_a_brain_without_input_normalization_trains(tmp_path: Path) -> None:
    run_dir = tmp_path / "plain"
    options = ("-o", 'BrainOptions={"normalize_inputs": false}')
    result = neuroloop("train", PENDULUM, "--cycles", "1", "--run-dir", run_dir, *options, *TINY)
    assert result.returncode == 0, result.stderr
    statistics = load_checkpoint(run_dir / "checkpoints" / "latest.npz").statistics
    assert set(statistics) == {"returns"}  # no observation statistics without the layers


@pytest.mark.parametrize(
    "name",
    [
        "pendulum",
        "reach",
        "reach_fast",
        "reach_cortical",
        "freereach",
        "manipulate_block",
        "manipulate_block_rotate_z",
        "manipulate_block_curriculum",
        "manipulate_block_vision",
    ],
)
def test_shipped_recipes_load_and_wire_their_simulation(name: str) -> None:
    recipe = load_recipe(REPO / "experiments" / f"{name}.yaml")
    config = recipe.simulation_config(seed_offset=3)
    brain = config.engine(recipe.brain_engine)
    assert brain.extra["Brain"] == recipe.brain
    assert brain.extra["Worlds"] == recipe.worlds
    assert brain.extra["Seed"] == recipe.seed + 3
    assert config.timeout_ns == 0


def test_bad_recipes_name_the_key(tmp_path: Path) -> None:
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("Simulation: ../nowhere.json\nPPO: {Epoch: 3}\n")
    with pytest.raises(ConfigError, match=r"PPO\.Epoch.*did you mean 'Epochs'"):
        load_recipe(recipe)
    recipe.write_text("Simulation: ../nowhere.json\n")
    with pytest.raises(ConfigError, match="Simulation: expected an existing simulation config"):
        load_recipe(recipe)
    result = neuroloop("train", recipe)
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_two_mpi_processes_train_in_step(tmp_path: Path) -> None:
    run_dir = tmp_path / "mpi"
    result = neuroloop(
        "train", PENDULUM, "--workers", "2", "--cycles", "2", "--run-dir", run_dir, *TINY
    )
    assert result.returncode == 0, result.stderr
    records = progress(run_dir)
    assert [r["processes"] for r in records] == [2, 2]
    assert [r["env_steps"] for r in records] == [128, 256]  # 64 steps x 2 processes per cycle
    assert [r["weight_drift"] for r in records] == [0.0, 0.0]  # identical weights on both ranks


@pytest.mark.slow
def test_pendulum_learns(tmp_path: Path) -> None:
    """About 36k environment steps of PPO lift Pendulum-v1's mean return by a clear margin."""
    run_dir = tmp_path / "learns"
    result = neuroloop(
        "train", PENDULUM, "--cycles", "35", "--run-dir", run_dir, "--quiet", timeout=1500
    )
    assert result.returncode == 0, result.stderr
    returns = [
        float(str(r["mean_return"])) for r in progress(run_dir) if r["mean_return"] is not None
    ]
    early, late = np.mean(returns[:3]), np.mean(returns[-3:])
    assert late > early + 300, (early, late)


def test_a_recipe_naming_a_missing_brain_engine_says_so() -> None:
    recipe = load_recipe(PENDULUM, ["BrainEngine=brian"])
    with pytest.raises(ConfigError, match="BrainEngine: expected the name of a keras_brain"):
        recipe.simulation_config()


# -- damage, races and divergence --------------------------------------------------------------

DAMAGE = {
    "truncated": lambda data: data[: len(data) // 2],
    "empty": lambda data: b"",
    "garbage": lambda data: b"not a checkpoint\n" * 64,
}


def error_lines(stderr: str) -> list[str]:
    """The lines of ``stderr`` that are not TensorFlow's start-up chatter."""
    chatter = ("WARNING: All log messages", "I0000 ", "W0000 ", "E0000 ")
    return [line for line in stderr.splitlines() if not line.startswith(chatter)]


@pytest.fixture(scope="module")
def periodic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two cycles with a periodic checkpoint every cycle (cycle_00001, cycle_00002)."""
    run_dir = tmp_path_factory.mktemp("runs") / "periodic"
    every = ("-o", 'Checkpoint={"Every": 1}')
    result = neuroloop("train", PENDULUM, "--cycles", "2", "--run-dir", run_dir, *every, *TINY)
    assert result.returncode == 0, result.stderr
    return run_dir


def copy_run(run_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / run_dir.name
    shutil.copytree(run_dir, copy)
    return copy


def damage(path: Path, kind: str) -> None:
    path.write_bytes(DAMAGE[kind](path.read_bytes()))


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_a_damaged_latest_checkpoint_resumes_from_the_newest_readable(
    kind: str, periodic: Path, tmp_path: Path
) -> None:
    run_dir = copy_run(periodic, tmp_path)
    damage(run_dir / "checkpoints" / "latest.npz", kind)
    result = neuroloop("train", "--resume", run_dir, "--cycles", "3", "--quiet")
    assert result.returncode == 0, result.stderr
    warning = next(line for line in result.stderr.splitlines() if "is damaged" in line)
    assert warning.startswith("neuroloop train: checkpoints/latest.npz is damaged (")
    assert warning.endswith("; resuming from checkpoints/cycle_00002.npz")
    assert [r["cycle"] for r in progress(run_dir)] == [1, 2, 3]
    assert load_checkpoint(run_dir / "checkpoints" / "latest.npz").cycle == 3


def test_falling_back_to_an_older_checkpoint_repeats_the_later_cycles(
    periodic: Path, tmp_path: Path
) -> None:
    run_dir = copy_run(periodic, tmp_path)
    for name in ("latest.npz", "cycle_00002.npz"):  # no best.npz: no episode ended yet
        damage(run_dir / "checkpoints" / name, "truncated")
    partial = run_dir / "checkpoints" / "tmpk1ll3d.tmp.npz"  # a kill in mid-write
    partial.write_bytes(b"PK\x03\x04")
    result = neuroloop("train", "--resume", run_dir, "--cycles", "2", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "resuming from checkpoints/cycle_00001.npz" in result.stderr
    assert not partial.exists()
    # Cycle 2's line is dropped with its checkpoint, and the cycle repeated exactly.
    repeated, original = progress(run_dir), progress(periodic)
    assert [r["cycle"] for r in repeated] == [1, 2]
    for key in ("env_steps", "policy_loss", "value_loss", "entropy", "approx_kl"):
        assert repeated[1][key] == original[1][key], key


def test_no_readable_checkpoint_is_one_line_for_train_export_and_evaluate(
    periodic: Path, tmp_path: Path
) -> None:
    run_dir = copy_run(periodic, tmp_path)
    for path in (run_dir / "checkpoints").iterdir():
        damage(path, "empty")
    results = [
        neuroloop("train", "--resume", run_dir, "--cycles", "3", "--quiet"),
        neuroloop(
            "export", run_dir, "--checkpoint", "latest", "--output", tmp_path / "b.weights.h5"
        ),
        neuroloop("evaluate", run_dir, "--episodes", "1", "--checkpoint", "latest"),
    ]
    for result in results:
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        [line] = [line for line in error_lines(result.stderr) if "error" in line]
        assert "EOFError" in line, line
    assert "expected a readable checkpoint" in results[0].stderr
    for result in results[1:]:
        assert "latest.npz is damaged (EOFError: No data left in file)" in result.stderr


def test_a_cycle_number_picks_that_periodic_checkpoint(periodic: Path, tmp_path: Path) -> None:
    from neuroloop.training.export import load_brain

    output = tmp_path / "cycle1.weights.h5"
    exported = neuroloop("export", periodic, "--checkpoint", "1", "--output", output)
    assert exported.returncode == 0, exported.stderr
    got = load_brain(output).brain.joint.get_weights()
    cycles = [load_checkpoint(periodic / "checkpoints" / f"cycle_0000{n}.npz") for n in (1, 2)]
    assert not all(np.array_equal(a, b) for a, b in zip(*(c.weights for c in cycles), strict=True))
    for a, b in zip(got, cycles[0].weights, strict=True):
        np.testing.assert_array_equal(a, b)
    missing = neuroloop("evaluate", periodic, "--checkpoint", "3", "--episodes", "1")
    assert missing.returncode == 2
    assert "checkpoints/cycle_00003.npz (it has 2 periodic checkpoints, cycle_00001.npz to " in (
        missing.stderr
    )
    typo = neuroloop("evaluate", periodic.parent / "peroidic")
    assert typo.returncode == 2
    assert "peroidic: expected a training run directory, a recipe file or a shipped" in (
        typo.stderr
    )
    bad = neuroloop("evaluate", periodic, "--checkpoint", "first")
    assert bad.returncode == 2
    assert "expected best, latest or a cycle number. Received: 'first'" in bad.stderr


def test_a_progress_line_lost_to_a_kill_is_rebuilt_from_the_checkpoint(
    periodic: Path, tmp_path: Path
) -> None:
    run_dir = copy_run(periodic, tmp_path)
    lines = (run_dir / "progress.jsonl").read_text().splitlines(keepends=True)
    (run_dir / "progress.jsonl").write_text("".join(lines[:-1]))  # killed before cycle 2's line
    result = neuroloop("train", "--resume", run_dir, "--cycles", "3", "--quiet")
    assert result.returncode == 0, result.stderr
    records = progress(run_dir)
    assert [r["cycle"] for r in records] == [1, 2, 3]
    assert records[:2] == progress(periodic)


def test_resuming_with_an_edited_recipe_names_the_key(periodic: Path, tmp_path: Path) -> None:
    run_dir = copy_run(periodic, tmp_path)
    recipe = json.loads((run_dir / "recipe.json").read_text())
    recipe["BrainOptions"] = {"normalize_inputs": False}
    (run_dir / "recipe.json").write_text(json.dumps(recipe))
    result = neuroloop("train", "--resume", run_dir, "--cycles", "3", "--quiet")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    [line] = [line for line in error_lines(result.stderr) if "error" in line]
    assert "BrainOptions of recipe.json differs from the checkpoint's" in line
    assert [r["cycle"] for r in progress(run_dir)] == [1, 2]


def test_a_diverging_run_stops_before_writing_non_finite_weights(tmp_path: Path) -> None:
    run_dir = tmp_path / "diverging"
    rate = ("-o", "PPO.LearningRate=1e30")
    result = neuroloop("train", PENDULUM, "--cycles", "2", "--run-dir", run_dir, *rate, *TINY)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    [line] = [line for line in error_lines(result.stderr) if "error" in line]
    assert "cycle 1: policy_loss is nan after optimizing" in line
    assert not (run_dir / "checkpoints").exists()
    assert not (run_dir / "progress.jsonl").exists()


def test_an_mpi_run_resumes_only_with_its_process_count_or_an_explicit_one(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "mpi"
    first = neuroloop(
        "train", PENDULUM, "--workers", "2", "--cycles", "1", "--run-dir", run_dir, *TINY
    )
    assert first.returncode == 0, first.stderr
    refused = neuroloop("train", "--resume", run_dir, "--cycles", "2", "--quiet")
    assert refused.returncode == 2
    [line] = [line for line in error_lines(refused.stderr) if "error" in line]
    assert "trained with 2 process(es), this start has 1; continue it with --workers 2" in line
    resumed = neuroloop("train", "--resume", run_dir, "--workers", "2", "--cycles", "2", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert [r["processes"] for r in progress(run_dir)] == [2, 2]


def test_a_diverging_mpi_run_stops_every_rank_with_the_error(tmp_path: Path) -> None:
    run_dir = tmp_path / "diverging"
    rate = ("-o", "PPO.LearningRate=1e30", "--workers", "2")
    result = neuroloop("train", PENDULUM, "--cycles", "2", "--run-dir", run_dir, *rate, *TINY)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "MPI_Abort" not in result.stderr
    [line] = [line for line in error_lines(result.stderr) if "error" in line]  # rank 0's
    assert "cycle 1: policy_loss is nan after optimizing" in line
    assert not (run_dir / "checkpoints").exists()


def test_a_checkpoint_keeps_its_progress_record_and_process_count(tmp_path: Path) -> None:
    record = {"cycle": 3, "mean_return": float("nan"), "policy_loss": 0.25}
    state = TrainingState(3, 192, -1.0, [np.ones((2, 2))], [np.zeros(1)], processes=4)
    state.progress = record
    save_checkpoint(tmp_path / "latest.npz", state)
    assert [p.name for p in tmp_path.iterdir()] == ["latest.npz"]  # no temporary file left
    loaded = load_checkpoint(tmp_path / "latest.npz")
    assert (loaded.cycle, loaded.processes) == (3, 4)
    assert loaded.progress is not None and loaded.progress["policy_loss"] == 0.25


def test_reconciled_progress_holds_each_cycle_once(tmp_path: Path) -> None:
    lines = ['{"cycle": 1}', '{"cycle": 2}', '{"cycle": 3}', '{"cycle": 4, "lo']  # cut by a kill
    (tmp_path / "progress.jsonl").write_text("\n".join(lines))
    reconcile_progress(tmp_path, 2, {"cycle": 2, "x": 1.0})
    assert progress(tmp_path) == [{"cycle": 1}, {"cycle": 2}]
    reconcile_progress(tmp_path, 3, {"cycle": 3, "loss": float("nan")})
    assert progress(tmp_path) == [{"cycle": 1}, {"cycle": 2}, {"cycle": 3, "loss": None}]


def tensorboard_scalars(run_dir: Path) -> dict[tuple[int, str], float]:
    """Every scalar in the run's TensorBoard event files, by (step, tag)."""
    import tensorflow as tf

    found = {}
    for events in sorted((run_dir / "tensorboard").glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(events)):
            for value in event.summary.value:
                found[(event.step, value.tag)] = float(tf.make_ndarray(value.tensor))
    return found


def test_a_rebuilt_progress_line_reaches_tensorboard_too(tmp_path: Path) -> None:
    (tmp_path / "progress.jsonl").write_text('{"cycle": 1, "mean_return": 1.0}\n')
    reconcile_progress(tmp_path, 1, {"cycle": 1, "mean_return": 1.0})  # nothing to rebuild
    assert not (tmp_path / "tensorboard").exists()
    lost = {"cycle": 2, "mean_return": 2.5, "losses": {"policy": -0.125}, "metric": None}
    reconcile_progress(tmp_path, 2, lost)
    assert progress(tmp_path)[-1] == lost
    rebuilt = {(2, "cycle"): 2.0, (2, "mean_return"): 2.5, (2, "losses/policy"): -0.125}
    assert tensorboard_scalars(tmp_path) == rebuilt  # as Monitor.log writes it


def test_ctrl_c_stops_every_mpi_process_together_after_a_cycle(tmp_path: Path) -> None:
    """SIGINT to mpiexec reaches both ranks; they agree to stop after the same cycle, so the
    job ends 130 with its checkpoint and progress in step, not with MPI_Abort."""
    run_dir = tmp_path / "interrupted"
    train = subprocess.Popen(
        [sys.executable, "-m", "neuroloop", "train", str(PENDULUM), "--workers", "2",
         "--cycles", "1000", "--run-dir", str(run_dir), *TINY],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / "progress.jsonl").is_file() or len(progress(run_dir)) < 2:
            assert time.monotonic() < deadline and train.poll() is None
            time.sleep(0.2)
        train.send_signal(signal.SIGINT)  # train re-ran itself as mpiexec: this is mpiexec
        _, stderr = train.communicate(timeout=120)
        assert train.returncode == 130, stderr
        assert "interrupted" in stderr
        assert "[mpi] rank" not in stderr and "Traceback" not in stderr
        cycles = [record["cycle"] for record in progress(run_dir)]
        assert cycles == list(range(1, len(cycles) + 1))
        assert load_checkpoint(run_dir / "checkpoints" / "latest.npz").cycle == cycles[-1]
    finally:
        train.kill()
