"""`neuroloop batch`: a sweep through a bounded pool, failures reported, re-runs skipped, SLURM."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from neuroloop.batch import (
    DONE_MARKER,
    EXIT_FILE,
    SUMMARY_FILE,
    Run,
    Sweep,
    collect,
    load_sweep,
    plan,
    write_slurm,
)
from neuroloop.config import load_config
from neuroloop.errors import ConfigError
from tests.processes import alive, engine_processes

ROOT = Path(__file__).resolve().parents[1]
PENDULUM = ROOT / "simulation_configs" / "pendulum_pd.json"
PENDULUM_RECIPE = ROOT / "experiments" / "pendulum.yaml"
SEEDS = (0, 1, 2, 3)
TIMEOUTS = (0.2, 0.4)
BROKEN = "EngineConfigs.EngineName:env.EngineExtraConfigs.EnvId"
"""Setting this to an unknown environment fails the run when the engine initializes."""
POOL = 2


def neuroloop_batch(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "neuroloop", "batch", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )


def write_sweep(path: Path) -> Path:
    """4 seeds x 2 timeouts, plus one run that fails."""
    path.write_text(
        "seeds: [0, 1, 2, 3]\n"
        "grid:\n"
        f"  SimulationTimeout: {list(TIMEOUTS)}\n"
        "include:\n"
        "  - seed: 3\n"
        f"    overrides: {{{BROKEN}: NoSuchEnv-v0}}\n"
    )
    return path


def test_sweep_runs_in_a_bounded_pool_reports_failure_and_skips_finished_runs(
    tmp_path: Path,
) -> None:
    sweep = write_sweep(tmp_path / "sweep.yaml")
    out = tmp_path / "batch"
    arguments = (PENDULUM, "--sweep", sweep, "--pool", str(POOL), "--out", out)
    started = time.monotonic()
    first = neuroloop_batch(*arguments, "--metric", "episode_return")
    first_s = time.monotonic() - started
    assert first.returncode == 1, first.stderr  # a run failed

    results = json.loads((out / SUMMARY_FILE).read_text())
    assert len(results) == len(SEEDS) * len(TIMEOUTS) + 1
    grid_runs, failing = results[:-1], results[-1]
    assert [(r["seed"], r["settings"]) for r in grid_runs] == [
        (seed, [f"SimulationTimeout={timeout}"]) for timeout in TIMEOUTS for seed in SEEDS
    ]
    for result in grid_runs:
        directory = Path(result["directory"])
        assert result["state"] == "ok" and result["error"] is None
        assert isinstance(result["metric"]["episode_return"], float)
        assert (directory / DONE_MARKER).is_file()
        assert "ended by     SimulationTimeout" in (directory / "stdout.log").read_text()
        assert (directory / "stderr.log").read_text() == ""
        # The resolved config is a valid config with the run's setting in it.
        resolved = load_config(directory / "config.json")
        assert resolved.timeout_ns == round(float(result["settings"][0].split("=")[1]) * 1e9)
    assert failing["state"] == "exit 2"
    assert failing["error"].startswith("neuroloop run: error: [env] EngineExtraConfigs.EnvId")
    assert "NoSuchEnv" in failing["error"]
    assert not (Path(failing["directory"]) / DONE_MARKER).exists()
    # The table names the failure with its error, and the totals.
    table = first.stdout.splitlines()
    failed_line = next(line for line in table if line.startswith(failing["run_id"]))
    assert "exit 2" in failed_line and "NoSuchEnv" in failed_line
    assert "9 runs: 8 ok (0 skipped, finished before), 1 failed" in first.stdout

    # Never more than POOL runs at a time.
    spans = [(r["started_s"], r["started_s"] + r["wall_s"]) for r in results]
    overlap = max(sum(start <= t < end for start, end in spans) for t, _ in spans)
    assert 1 <= overlap <= POOL

    # Running the same batch again runs only the failed run.
    logs = {r["run_id"]: (Path(r["directory"]) / "stdout.log").stat().st_mtime_ns for r in results}
    started = time.monotonic()
    second = neuroloop_batch(*arguments, "--metric", "episode_return")
    second_s = time.monotonic() - started
    assert second.returncode == 1
    skipped = re.findall(r"\[batch\] (\S+) skipped: finished before", second.stderr)
    assert sorted(skipped) == sorted(r["run_id"] for r in grid_runs)
    assert f"[batch] {failing['run_id']} exit 2: neuroloop run: error:" in second.stderr
    assert "9 runs: 8 ok (8 skipped, finished before), 1 failed" in second.stdout
    for result in grid_runs:
        assert (Path(result["directory"]) / "stdout.log").stat().st_mtime_ns == logs[
            result["run_id"]
        ]
    assert second_s < first_s / 2, (first_s, second_s)

    report = neuroloop_batch("--report", out)
    assert report.returncode == 1
    assert "9 runs: 8 ok (0 skipped, finished before), 1 failed" in report.stdout


def test_slurm_script_has_one_array_task_per_run(tmp_path: Path) -> None:
    sweep = Sweep(seeds=SEEDS, grid={"SimulationTimeout": list(TIMEOUTS)})
    runs = plan(PENDULUM, sweep, tmp_path, metric="episode_return")
    script, problems = write_slurm(runs, tmp_path, sbatch=["time=00:10:00"])
    assert problems == []
    text = script.read_text()
    assert f"#SBATCH --array=0-{len(SEEDS) * len(TIMEOUTS) - 1}" in text
    assert "#SBATCH --ntasks=1" in text and "#SBATCH --time=00:10:00" in text
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    commands = re.findall(r"^  (\d+)\) run=(\S+)\n     command=\((.*)\) ;;$", text, re.M)
    assert [int(index) for index, _, _ in commands] == list(range(len(runs)))
    for (_, directory, command), run in zip(commands, runs, strict=True):
        assert Path(directory) == run.directory
        assert shlex.split(command) == list(run.command)
        assert command.startswith(f"{sys.executable} -m neuroloop run {PENDULUM} --seed {run.seed}")

    # Run one task here as SLURM would, then again: the second time it is skipped.
    task = 5
    environment = {**os.environ, "SLURM_ARRAY_TASK_ID": str(task)}
    done = subprocess.run(["bash", str(script)], env=environment, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    result = collect(runs[task])
    assert result.ok and result.run.seed == SEEDS[task % len(SEEDS)]
    assert result.run.settings == (f"SimulationTimeout={TIMEOUTS[task // len(SEEDS)]}",)
    assert isinstance(result.metric["episode_return"], float)
    assert json.loads((runs[task].directory / EXIT_FILE).read_text())["wall_s"] > 0
    again = subprocess.run(["bash", str(script)], env=environment, capture_output=True, text=True)
    assert again.returncode == 0 and "finished before, skipped" in again.stdout
    assert not collect(runs[0]).ok and collect(runs[0]).state == "pending"
    outside = {**os.environ, "SLURM_ARRAY_TASK_ID": str(len(runs))}
    assert subprocess.run(["bash", str(script)], env=outside, capture_output=True).returncode == 2


def test_slurm_training_tasks_run_mpiexec_with_the_workers(tmp_path: Path) -> None:
    runs = plan(PENDULUM_RECIPE, Sweep(seeds=(0, 1)), tmp_path, workers=4)
    script, problems = write_slurm(runs, tmp_path)
    assert problems == []
    text = script.read_text()
    assert "#SBATCH --array=0-1" in text and "#SBATCH --ntasks=4" in text
    mpiexec = str(Path(sys.executable).parent / "mpiexec")
    for run in runs:
        command = [mpiexec, "-n", "4", sys.executable, "-m", "neuroloop", "train"]
        assert list(run.command[: len(command)]) == command
        assert f"--seed {run.seed} --run-dir {run.directory / 'train'}" in shlex.join(run.command)
        assert f"command=({shlex.join(run.command)}) ;;" in text
        # The resolved recipe has the run's seed.
        assert json.loads((run.directory / "recipe.json").read_text())["Seed"] == run.seed
    assert 'command+=(--resume "$run/train")' in text


def test_a_training_run_reports_the_recipe_metric_from_its_progress(tmp_path: Path) -> None:
    (run,) = plan(PENDULUM_RECIPE, Sweep(seeds=(2,)), tmp_path)
    run.train_dir.mkdir(parents=True)
    # What the training monitor appends each cycle (neuroloop.training.monitor).
    record = {"cycle": 3, "metric": -812.5, "metric_name": "mean_return", "mean_return": -812.5}
    (run.train_dir / "progress.jsonl").write_text(json.dumps(record) + "\n")
    (run.directory / EXIT_FILE).write_text('{"exit_status": 0, "started_s": 1.0, "wall_s": 2.5}')
    assert collect(run).metric == {"mean_return": -812.5, "cycle": 3}
    assert Run.from_json(run.to_json()) == run


def test_sweep_file_mistakes_name_the_file_and_key(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("seeds: [0]\ngird: {SimulationTimeout: [1, 2]}\n")
    with pytest.raises(ConfigError, match=r"sweep.yaml: gird: expected only the keys seeds"):
        load_sweep(sweep)
    sweep.write_text("seeds: [0, one]\n")
    with pytest.raises(ConfigError, match=r"sweep.yaml: seeds: expected a list of integers"):
        load_sweep(sweep)


def test_interrupting_a_batch_stops_its_runs_and_their_engines(tmp_path: Path) -> None:
    marker = f"batch-interrupt-{tmp_path.name}"
    batch = subprocess.Popen(
        [
            *(sys.executable, "-m", "neuroloop", "batch", str(PENDULUM)),
            *("--seeds", "0", "1", "--pool", "2", "--out", str(tmp_path / "batch")),
            *("-o", "SimulationTimeout=100000", "-o", f"SimulationDescription={marker}"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        runs = wait_for(lambda: processes_with(marker), count=2)
        engines = wait_for(
            lambda: [pid for run in runs for pid, _ in engine_processes(run)], count=2
        )
        batch.send_signal(signal.SIGINT)
        _, stderr = batch.communicate(timeout=60)
        assert batch.returncode == 130, stderr
        assert "neuroloop batch: interrupted" in stderr
        assert not any(alive(pid) for pid in [*runs, *engines])
    finally:
        batch.kill()


def processes_with(text: str) -> list[int]:
    """Live processes whose command line contains ``text`` (not this test's own)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                argv = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if text in argv and " batch " not in argv.replace("\0", " ") and alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def wait_for(find: Callable[[], list[int]], count: int, timeout_s: float = 60.0) -> list[int]:
    """Poll ``find()`` until it returns ``count`` pids."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = find()
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError(f"expected {count} processes within {timeout_s} s")
