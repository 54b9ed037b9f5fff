"""``neuroloop train``, ``neuroloop evaluate``, ``neuroloop export`` and ``neuroloop plot``."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neuroloop.errors import UsageError
from neuroloop.shipped import RECIPE, WEIGHTS, resolve, shipped
from neuroloop.training.checkpoint import CHECKPOINT_HELP, checkpoint_choice

if TYPE_CHECKING:
    from neuroloop.training.checkpoint import TrainingState
    from neuroloop.training.recipe import Recipe
    from neuroloop.training.trainer import Trainer

RUNS = Path("runs")
MPI_RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")
"""Set by mpiexec in every process it starts (MPICH/Hydra, Open MPI, PMIx)."""
BRAIN_KEYS = (
    "Simulation",
    "SimulationOverrides",
    "BrainEngine",
    "Brain",
    "BrainOptions",
    "Distribution",
    "DistributionOptions",
)
"""Recipe keys that shape the brain: a resumed run must keep its checkpoint's values."""


def add_commands(
    commands: argparse._SubParsersAction,
    between_cycles: Callable[[], None],
) -> None:
    """Add train, evaluate, export and plot to the ``neuroloop`` command.

    Args:
        commands: The ``neuroloop`` command's subparsers.
        between_cycles: Called after every training cycle (raises to stop the run cleanly).
    """
    train = commands.add_parser("train", help="train a brain with PPO from a recipe (YAML)")
    train.add_argument("recipe", nargs="?", help="training recipe file, or a shipped one's name")
    train.add_argument("--workers", type=int, help="gathering processes (MPI ranks, default 1)")
    train.add_argument("--cycles", type=int, help="gather-optimize cycles (overrides Cycles)")
    train.add_argument("--seed", type=int, help="run seed (overrides Seed)")
    train.add_argument(
        "-o",
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe value, e.g. -o PPO.LearningRate=0.001",
    )
    train.add_argument(
        "--run-dir", type=Path, help="where to write the run (default runs/NAME_TIME)"
    )
    train.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue a run")
    train.add_argument("--quiet", action="store_true", help="no progress lines")
    train.set_defaults(handler=lambda args: _train(args, between_cycles))

    evaluate = commands.add_parser("evaluate", help="evaluate a trained run's brain")
    evaluate.add_argument(
        "source",
        help="a training run directory, or a recipe (file or shipped name): with --weights "
        "those weights, else the brain its training starts from (InitialWeights, or untrained)",
    )
    evaluate.add_argument(
        "--weights",
        help="a .weights.h5 file (neuroloop export) or shipped weights' name to evaluate on the "
        "recipe's task",
    )
    evaluate.add_argument("--episodes", type=int, default=100, help="episodes to evaluate")
    evaluate.add_argument("--deterministic", action="store_true", help="act on the policy's mode")
    evaluate.add_argument(
        "--checkpoint", default="best", type=checkpoint_choice, help=CHECKPOINT_HELP
    )
    evaluate.add_argument("--horizon", type=int, help="control steps per gathering")
    evaluate.add_argument(
        "--video",
        type=Path,
        metavar="FILE",
        help="also film one episode of world 0 with the same brain into FILE (.mp4 or .gif)",
    )
    evaluate.add_argument(
        "--record",
        type=Path,
        metavar="FILE.npz",
        help="record every step (inputs, actions, rewards, recurrent state, every layer's "
        "activations, body state, task conditions) for neuroloop analyze",
    )
    evaluate.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override the simulation config for the evaluation, e.g. --set "
        "Task.Options.SuccessRotation=0.1",
    )
    evaluate.add_argument(
        "--json",
        type=Path,
        metavar="FILE",
        help="also write the results (means, intervals, every episode's values, count "
        "distributions) to FILE as JSON",
    )
    evaluate.set_defaults(handler=_evaluate)

    export = commands.add_parser(
        "export", help="write a run's brain to a .weights.h5 file for EngineExtraConfigs.Weights"
    )
    export.add_argument("run_dir", type=Path, help="a training run directory")
    export.add_argument("--output", type=Path, required=True, help="the .weights.h5 file")
    export.add_argument(
        "--checkpoint", default="best", type=checkpoint_choice, help=CHECKPOINT_HELP
    )
    export.set_defaults(handler=_export)

    plot = commands.add_parser("plot", help="plot learning curves of runs into a PNG")
    plot.add_argument(
        "run_dirs",
        type=Path,
        nargs="+",
        help="training run directories, batch directories (neuroloop batch) or folders of "
        "runs; runs whose recipes differ only in Seed are drawn as their mean and 95%% interval",
    )
    plot.add_argument("--output", type=Path, default=Path("learning_curves.png"))
    plot.add_argument(
        "--evaluations",
        type=Path,
        nargs="+",
        default=[],
        metavar="FILE.json",
        help="results of neuroloop evaluate RUN --checkpoint CYCLE --json FILE, drawn on the "
        "metric's panel at their checkpoints' environment steps",
    )
    plot.set_defaults(handler=_plot)


def under_mpiexec() -> bool:
    return any(name in os.environ for name in MPI_RANK_VARIABLES)


def _train(args: argparse.Namespace, between_cycles: Callable[[], None]) -> int:
    workers = 1 if args.workers is None else args.workers
    if workers < 1:
        raise UsageError(f"--workers: expected at least 1. Received: {workers}")
    if workers > 1 and not under_mpiexec():
        return _relaunch_under_mpiexec(workers)
    from neuroloop.training.checkpoint import CHECKPOINTS, checkpoint_files, remove_partial_writes
    from neuroloop.training.monitor import reconcile_progress
    from neuroloop.training.mpi import get_communicator
    from neuroloop.training.recipe import load_recipe
    from neuroloop.training.trainer import RECIPE_FILE, Trainer

    if args.resume is not None:
        recipe_path = args.resume / RECIPE_FILE
        if not recipe_path.is_file():
            raise UsageError(f"--resume {args.resume}: expected a run directory with {RECIPE_FILE}")
        if not checkpoint_files(args.resume / CHECKPOINTS):
            # Killed before its first checkpoint: nothing to continue, so start it afresh.
            args.resume, args.run_dir = None, args.resume
    elif args.recipe is None:
        raise UsageError("train: expected a recipe file or --resume RUN_DIR")
    else:
        recipe_path = resolve(RECIPE, args.recipe)
    overrides = list(args.override)
    if args.cycles is not None:
        overrides.append(f"Cycles={args.cycles}")
    if args.seed is not None:
        overrides.append(f"Seed={args.seed}")
    recipe = load_recipe(recipe_path, overrides)
    comm = get_communicator()
    run_dir = args.resume or args.run_dir
    if run_dir is None:
        run_dir = RUNS / f"{recipe.name}_{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = Path(comm.broadcast_json(str(run_dir)))
    start = None
    if args.resume is not None:
        start = _resume_from(run_dir, recipe.document, args.workers, comm.size, comm.is_root)
        if start.cycle >= recipe.cycles:
            if comm.is_root:
                print(
                    f"neuroloop train: {run_dir} is already finished ({start.cycle} of "
                    f"{recipe.cycles} cycles); nothing to do (pass --cycles N to train further)",
                    file=sys.stderr,
                )
            return 0
        if comm.is_root:
            reconcile_progress(run_dir, start.cycle, start.progress)
            remove_partial_writes(run_dir / CHECKPOINTS)
    trainer = Trainer(recipe, run_dir, start=start, quiet=args.quiet)
    if comm.is_root:
        print(
            f"neuroloop train: {recipe.name} -> {run_dir} ({comm.size} process(es)), "
            f"brain {recipe.brain}",
            file=sys.stderr,
        )
        if recipe.config_brain is not None and recipe.config_brain != recipe.brain:
            print(
                f"neuroloop train: the recipe's brain {recipe.brain} replaces the simulation "
                f"config's {recipe.config_brain}",
                file=sys.stderr,
            )
        _print_start(recipe, trainer, start is not None)
    records = trainer.train(between_cycles=between_cycles)
    if comm.is_root and records:
        last = records[-1]
        if last["episodes"]:
            figures = [f"mean return {last['mean_return']:.4g}"]
            if recipe.metric != "mean_return":
                figures.append(f"{recipe.metric} {last['metric']:.4g}")
            ended = f"episodes ending in the last cycle: {', '.join(figures)}"
        else:
            ended = "no episode ended in the last cycle (a longer Horizon would end some)"
        print(
            f"trained {last['cycle']} cycles ({last['env_steps']:,} env steps) into {run_dir}; "
            f"{ended}"
        )
    return 0


def _print_start(recipe: Recipe, trainer: Trainer, resumed: bool) -> None:
    """Where the brain's weights come from, and its parameters per module."""
    from neuroloop.brain.trained import parameter_summary

    if resumed:
        origin = "the run's checkpoint"
    elif recipe.initial_weights is not None:
        origin = f"InitialWeights {recipe.initial_weights}"
    else:
        origin = "fresh weights (seeded)"
    print(f"neuroloop train: the brain starts from {origin}", file=sys.stderr)
    if recipe.config_weights is not None and recipe.initial_weights is None and not resumed:
        print(
            f"neuroloop train: the simulation config's Weights {recipe.config_weights} are not "
            "used for training; to start from them, set InitialWeights in the recipe",
            file=sys.stderr,
        )
    print(f"neuroloop train: brain {recipe.brain}, parameters per module:", file=sys.stderr)
    for line in parameter_summary(trainer.brain):
        print(line, file=sys.stderr)


def _resume_from(
    run_dir: Path,
    document: Mapping[str, Any],
    workers: int | None,
    processes: int,
    is_root: bool,
) -> TrainingState:
    """The newest readable checkpoint of ``run_dir``, checked against the resumed recipe.

    Args:
        run_dir: The run being resumed.
        document: The recipe it resumes with (``recipe.json`` and the overrides).
        workers: ``--workers`` as given (``None``: not given).
        processes: Processes this resumption runs with.
        is_root: Print the warning about damaged checkpoints (rank 0 only).

    Raises:
        UsageError: If no checkpoint reads, the recipe changes a key that shapes the brain,
            or the process count differs from the run's without ``--workers``.
    """
    from neuroloop.training.checkpoint import CHECKPOINTS, newest_readable

    resumption = newest_readable(run_dir / CHECKPOINTS)
    state = resumption.state
    if resumption.damaged and is_root:
        damaged = "; ".join(
            f"{CHECKPOINTS}/{error.path.name} is damaged ({error.reason})"
            for error in resumption.damaged
        )
        print(
            f"neuroloop train: {damaged}; resuming from {CHECKPOINTS}/{resumption.path.name}",
            file=sys.stderr,
        )
    for key in BRAIN_KEYS:
        if key in state.recipe and state.recipe[key] != document.get(key):
            raise UsageError(
                f"--resume {run_dir}: {key} of recipe.json differs from the checkpoint's; a "
                f"resumed run keeps its brain. Expected: {key}={state.recipe[key]!r}. "
                f"Received: {key}={document.get(key)!r}"
            )
    if workers is None and processes != state.processes:
        raise UsageError(
            f"--resume {run_dir}: the run trained with {state.processes} process(es), this "
            f"start has {processes}; continue it with --workers {state.processes} (or pass "
            f"--workers {processes} to change the count)"
        )
    return state


def _relaunch_under_mpiexec(workers: int) -> int:
    mpiexec = shutil.which(
        "mpiexec", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    )
    if mpiexec is None:
        raise UsageError("--workers: expected mpiexec on PATH (pip install mpich). Received: none")
    command = [mpiexec, "-n", str(workers), sys.executable, "-m", "neuroloop", *sys.argv[1:]]
    os.execv(mpiexec, command)
    return 0  # not reached


def _evaluate(args: argparse.Namespace) -> int:
    from neuroloop.training.evaluate import evaluate

    source = Path(args.source)
    weights = None
    if args.weights is not None:
        source = resolve(RECIPE, args.source)
        weights = resolve(WEIGHTS, args.weights)
    elif not source.is_dir():  # a recipe alone: the brain its training starts from
        try:
            source = resolve(RECIPE, args.source)
        except UsageError:
            raise UsageError(
                f"evaluate {args.source}: expected a training run directory, a recipe file or "
                f"a shipped recipe's name {sorted(shipped(RECIPE))}. Received: no such "
                "directory, file or name"
            ) from None
    result = evaluate(
        source,
        args.episodes,
        args.deterministic,
        args.checkpoint,
        args.horizon,
        weights,
        record=args.record,
        overrides=args.set,
    )
    for line in result.lines():
        print(line)
    if args.json is not None:
        try:
            args.json.write_text(json.dumps(result.to_json(), indent=2) + "\n")
        except OSError as error:
            raise UsageError(
                f"--json: expected a file that can be written. Received: {args.json} "
                f"({error.strerror})"
            ) from None
        print(f"json         {args.json}")
    if args.record is not None:
        print(f"recorded     {args.record}")
    if args.video is not None:
        _film_one_episode(source, weights, args.video, args.deterministic)
    return 0


def _film_one_episode(source: Path, weights: Path | None, video: Path, deterministic: bool) -> None:
    """``evaluate --video``: one episode of world 0 with the evaluated brain."""
    from neuroloop.render import VideoRequest, film, video_config
    from neuroloop.training.evaluate import EVALUATION_SEED

    request = VideoRequest(output=video, seed=EVALUATION_SEED)
    config, flat = video_config(source, request, weights, {"Deterministic": deterministic})
    frames = film(config, request, flat)
    print(f"video        {video} ({frames} frames of one episode, world 0)")


def _export(args: argparse.Namespace) -> int:
    from neuroloop.training.export import export_weights

    output = export_weights(args.run_dir, args.output, args.checkpoint)
    which = f"cycle {args.checkpoint}" if args.checkpoint.isdigit() else args.checkpoint
    print(f"wrote {output} ({which} checkpoint of {args.run_dir})")
    return 0


def _plot(args: argparse.Namespace) -> int:
    from neuroloop.training.monitor import find_runs, group_runs, plot_runs, read_evaluations

    try:
        evaluations = read_evaluations(args.evaluations)
    except ValueError as error:
        raise UsageError(str(error)) from None
    try:
        output = plot_runs(args.run_dirs, args.output, evaluations)
        groups = group_runs(find_runs(args.run_dirs))
    except FileNotFoundError as error:
        raise UsageError(str(error)) from None
    print(f"wrote {output}:")
    for label, members in groups.items():
        print(f"  {label}: {len(members)} run(s)")
    return 0
