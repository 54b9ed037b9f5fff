"""Batch launch: many simulations or training runs from one file and a sweep.

A sweep is seeds x a grid of ``-o`` overrides (every combination of the grid's values, each
with every seed), plus any extra runs it lists. The runs go through a bounded local process
pool, or into a SLURM job-array script::

    neuroloop batch simulation_configs/pendulum_pd.json --seeds 0 1 2 3 \\
        --grid 'SimulationTimeout=[5, 10]' --pool 2 --metric episode_return
    neuroloop batch experiments/reach.yaml --sweep sweep.yaml --workers 4 --slurm runs/reach_sweep

From Python::

    runs = plan("simulation_configs/pendulum_pd.json", Sweep(seeds=(0, 1), grid={...}), out)
    results = run_batch(runs, pool=2)
    print(format_summary(results))

A sweep file (YAML or JSON)::

    seeds: [0, 1, 2, 3]
    grid:                      # every combination of these values, with every seed
      SimulationTimeout: [5, 10]
    overrides: [SimulationTimestep=0.05]   # -o overrides for every run
    include:                   # extra runs outside the grid
      - seed: 7
        overrides: {SimulationTimeout: 20}

Every run has its own directory ``OUT/runs/RUN_ID`` (the run id is ``seed<S>-<hash of its
settings>``, so the same run keeps its directory when the sweep grows)::

    run.json      the run: seed, settings, the command that runs it
    config.json   the resolved simulation config (recipe.json for a training run)
    stdout.log    stderr.log
    exit.json     exit status, start time (Unix seconds) and wall time
    DONE          marker: the run exited 0; running the batch again skips it
    train/        a training run's directory (checkpoints, progress.jsonl); an unfinished
                  run with a checkpoint resumes from it

Local runs and SLURM tasks write the same files, so ``neuroloop batch --report OUT`` (or
:func:`collect`) summarises either. Simulations and engines need no port planning: every
engine binds a free port (or its configured Unix socket) and announces it.
"""

from neuroloop.batch.command import EXIT_RUNS_FAILED, add_command
from neuroloop.batch.execute import execute, run_batch
from neuroloop.batch.plan import (
    DONE_MARKER,
    EXIT_FILE,
    RUN_FILE,
    RUNS,
    SIMULATION,
    TRAINING,
    Run,
    detect_kind,
    plan,
    prepare,
    resolved_document,
)
from neuroloop.batch.report import (
    BATCH_FILE,
    SUMMARY_FILE,
    RunResult,
    collect,
    format_summary,
    load_batch,
    read_metric,
    summary_status,
    write_batch,
    write_summary,
)
from neuroloop.batch.slurm import SLURM_SCRIPT, write_slurm
from neuroloop.batch.sweep import Sweep, load_sweep, override, parse_grid

__all__ = [
    "BATCH_FILE",
    "DONE_MARKER",
    "EXIT_FILE",
    "EXIT_RUNS_FAILED",
    "RUNS",
    "RUN_FILE",
    "SIMULATION",
    "SLURM_SCRIPT",
    "SUMMARY_FILE",
    "TRAINING",
    "Run",
    "RunResult",
    "Sweep",
    "add_command",
    "collect",
    "detect_kind",
    "execute",
    "format_summary",
    "load_batch",
    "load_sweep",
    "override",
    "parse_grid",
    "plan",
    "prepare",
    "read_metric",
    "resolved_document",
    "run_batch",
    "summary_status",
    "write_batch",
    "write_slurm",
    "write_summary",
]
