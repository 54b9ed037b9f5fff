"""``neuroloop batch``: its arguments and what it does with them."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from neuroloop.batch.execute import run_batch
from neuroloop.batch.plan import RUNS, plan
from neuroloop.batch.report import (
    RunResult,
    collect,
    format_summary,
    load_batch,
    write_batch,
    write_summary,
)
from neuroloop.batch.slurm import write_slurm
from neuroloop.batch.sweep import Sweep, load_sweep, parse_grid
from neuroloop.errors import UsageError

EXIT_RUNS_FAILED = 1
"""``neuroloop batch`` exit status when a run failed (2 is a usage error, 130 Ctrl-C)."""


def add_command(commands: argparse._SubParsersAction, between: Callable[[], None]) -> None:
    """Add ``neuroloop batch`` to the ``neuroloop`` command.

    Args:
        commands: The ``neuroloop`` command's subparsers.
        between: Called while runs are under way; raises to stop them (Ctrl-C, SIGTERM).
    """
    batch = commands.add_parser(
        "batch",
        help="run a sweep (seeds x a grid of -o overrides) of simulations or training runs",
        description="Run many simulations or training runs locally with a bounded process "
        "pool, or write a SLURM job-array script. Exit status 1 if a run failed.",
    )
    batch.add_argument("target", nargs="?", help="simulation config or training recipe")
    batch.add_argument("--seeds", type=int, nargs="+", metavar="SEED", help="seeds (default 0)")
    batch.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="PATH=[V,...]",
        help="an override and its values, e.g. 'SimulationTimeout=[5, 10]'; repeat for more",
    )
    batch.add_argument("--sweep", type=Path, help="sweep file (seeds, grid, overrides, include)")
    batch.add_argument(
        "-o",
        "--override",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override for every run",
    )
    batch.add_argument("--metric", help="status or progress key to report (default: all/recipe)")
    batch.add_argument("--workers", type=int, default=1, help="MPI ranks per training run")
    batch.add_argument("--pool", type=int, default=1, help="runs at once (default 1)")
    batch.add_argument("--out", type=Path, help="batch directory (default runs/batch_NAME)")
    batch.add_argument("--slurm", type=Path, metavar="OUT_DIR", help="write a SLURM array job")
    batch.add_argument(
        "--sbatch",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="#SBATCH option for --slurm, e.g. time=02:00:00 (repeat for more)",
    )
    batch.add_argument("--report", type=Path, metavar="OUT_DIR", help="summarise a batch")
    batch.set_defaults(handler=lambda args: _batch(args, between))


def _batch(args: argparse.Namespace, between: Callable[[], None]) -> int:
    if args.report is not None:
        if args.target is not None:
            raise UsageError("--report: expected no config or recipe with it")
        results = [collect(run) for run in load_batch(args.report)]
        print(format_summary(results))
        write_summary(results, args.report)
        return 0 if all(result.ok for result in results) else EXIT_RUNS_FAILED
    if args.target is None:
        raise UsageError("batch: expected a simulation config or training recipe, or --report")
    if args.slurm is not None and args.out is not None:
        raise UsageError("--slurm: OUT_DIR is the batch directory; expected no --out with it")
    if args.sbatch and args.slurm is None:
        raise UsageError(f"--sbatch: expected --slurm OUT_DIR with it. Received: {args.sbatch}")
    sweep = load_sweep(args.sweep) if args.sweep is not None else Sweep()
    sweep = Sweep(
        seeds=tuple(args.seeds) if args.seeds else sweep.seeds,
        grid={**sweep.grid, **parse_grid(args.grid)},
        overrides=(*sweep.overrides, *args.override),
        include=sweep.include,
    )
    out = args.slurm or args.out or Path(RUNS) / f"batch_{Path(args.target).stem}"
    runs = plan(args.target, sweep, out, workers=args.workers, metric=args.metric)
    write_batch(runs, out)
    if args.slurm is not None:
        script, problems = write_slurm(runs, args.slurm, args.sbatch)
        for problem in problems:
            print(f"[batch] warning: {problem}", file=sys.stderr)
        print(f"wrote {script}: {len(runs)} tasks (sbatch {script})")
        return 0

    def report(result: RunResult) -> None:
        if result.skipped:
            detail = ": finished before"
        elif result.ok:
            detail = f" in {result.wall_s:.1f} s"
        else:
            detail = f": {result.error}"
        print(f"[batch] {result.run.run_id} {result.state}{detail}", file=sys.stderr, flush=True)

    print(f"[batch] {len(runs)} runs, {args.pool} at a time, in {out}", file=sys.stderr)
    try:
        results = run_batch(runs, args.pool, between=between, progress=report)
    except KeyboardInterrupt:
        print(format_summary([collect(run) for run in runs]))
        raise
    print(format_summary(results))
    print(f"summary: {write_summary(results, out)}")
    return 0 if all(result.ok for result in results) else EXIT_RUNS_FAILED
