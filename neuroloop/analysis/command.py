"""``neuroloop analyze``: from a trained run, weights or a recording to a report."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from neuroloop.errors import UsageError
from neuroloop.shipped import RECIPE, WEIGHTS, resolve
from neuroloop.training.checkpoint import CHECKPOINT_HELP, checkpoint_choice

RECORDING_FILE = "recording.npz"
"""Where ``analyze`` records the episodes it runs, inside the output folder."""


def add_command(commands: argparse._SubParsersAction) -> None:
    """Add ``analyze`` to the ``neuroloop`` command."""
    analyze = commands.add_parser(
        "analyze",
        help="analyse what a trained brain computes: RSA, decoding, PCA, SINDy, fixed points",
    )
    analyze.add_argument(
        "source",
        help="a training run directory, a .weights.h5 file (or shipped weights' name) with "
        "--recipe, or a recording written by neuroloop evaluate --record",
    )
    analyze.add_argument("--recipe", help="the recipe (file or shipped name) to run weights on")
    analyze.add_argument(
        "--episodes", type=int, default=50, help="episodes to record (run or weights; default 50)"
    )
    analyze.add_argument(
        "--checkpoint", default="best", type=checkpoint_choice, help=CHECKPOINT_HELP
    )
    analyze.add_argument(
        "-o", "--output", type=Path, required=True, help="folder for report.html and metrics.json"
    )
    analyze.set_defaults(handler=_analyze)


def _analyze(args: argparse.Namespace) -> int:
    try:
        from neuroloop.analysis.report import analyze_recording
    except ImportError as error:
        raise UsageError(
            f"analyze needs the analysis extra (pip install -e '.[analysis]'). Received: {error}"
        ) from None
    from neuroloop.recording import Recording

    recording_path = _recording(args)
    try:
        recording = Recording(recording_path)
    except ValueError as error:
        raise UsageError(str(error)) from None
    metrics = analyze_recording(recording, args.output)
    _summary(metrics)
    print(f"wrote {args.output / 'report.html'} and {args.output / 'metrics.json'}")
    return 0


def _recording(args: argparse.Namespace) -> Path:
    """The recording to analyse: the source itself, or episodes recorded from it now."""
    from neuroloop.training.evaluate import evaluate

    source = Path(args.source)
    if source.suffix == ".npz":
        if not source.is_file():
            raise UsageError(f"analyze {source}: expected an existing recording. Received: none")
        return source
    if args.episodes < 1:
        raise UsageError(f"--episodes: expected at least 1. Received: {args.episodes}")
    args.output.mkdir(parents=True, exist_ok=True)
    record = args.output / RECORDING_FILE
    if source.is_dir():
        evaluate(source, args.episodes, True, args.checkpoint, record=record)
    else:
        if args.recipe is None:
            raise UsageError(
                f"analyze {args.source}: expected --recipe RECIPE to run these weights on "
                "(e.g. --recipe reach)"
            )
        weights = resolve(WEIGHTS, args.source)
        evaluate(resolve(RECIPE, args.recipe), args.episodes, True, weights=weights, record=record)
    return record


def _summary(metrics: dict[str, Any]) -> None:
    """The headline findings, one line each."""
    info = metrics["recording"]
    print(f"recording    {info['episodes']} episodes, {info['rows']} steps")
    for variable in info["variables"]:
        scores = {layer: row[variable] for layer, row in metrics["decoding"].items()}
        best = max(scores, key=lambda layer: scores[layer]["score"])
        found = scores[best]
        print(
            f"decoding     {variable}: best {best} {found['metric']} {found['score']:.3f} "
            f"(chance {found['chance']:.2f})"
        )
    if "sindy" in metrics:
        sindy = metrics["sindy"]
        print(
            f"SINDy        {sindy['terms']} terms; held-out one-step R² {sindy['one_step_r2']:.3f}"
            f" (no-change baseline {sindy['persistence_r2']:.3f}), rollout R² "
            f"{sindy['rollout_r2']:.3f}"
        )
    if "fixed_points" in metrics:
        points = metrics["fixed_points"]["by_condition"]
        counts = ", ".join(
            f"{label}: {sum(p['stable'] for p in found)}/{len(found)} stable"
            for label, found in points.items()
        )
        print(f"fixed points {counts}")
