"""``neuroloop surrogate collect | fit | control``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from neuroloop.errors import UsageError
from neuroloop.surrogate.config import SurrogateConfig, load_surrogate_config

if TYPE_CHECKING:
    from neuroloop.surrogate.armnet import ArmNet
    from neuroloop.surrogate.fit import FitReport


def add_command(commands: argparse._SubParsersAction) -> None:
    """Add ``surrogate`` and its subcommands to the ``neuroloop`` command."""
    surrogate = commands.add_parser(
        "surrogate", help="learn a body's twin (ArmNet) and a controller through it"
    )
    verbs = surrogate.add_subparsers(dest="verb", required=True)

    collect = verbs.add_parser("collect", help="drive the body with random smooth inputs")
    collect.add_argument("config", type=Path, help="surrogate config (YAML or JSON)")
    collect.add_argument("--out", type=Path, required=True, help="dataset file (.npz)")
    collect.add_argument("--sequences", type=_positive, help="overrides Collect.Sequences")
    collect.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE")
    collect.set_defaults(handler=_collect)

    fit = verbs.add_parser("fit", help="train ArmNet on a dataset; report held-out fit")
    fit.add_argument("config", type=Path, help="surrogate config (YAML or JSON)")
    fit.add_argument("--data", type=Path, required=True, help="dataset from collect (.npz)")
    fit.add_argument("--out", type=Path, required=True, help="folder for the trained ArmNet")
    fit.add_argument("--epochs", type=_positive, help="overrides Fit.Epochs")
    fit.add_argument("--units", type=_positive, help="overrides Fit.Units")
    fit.add_argument(
        "--resume",
        action="store_true",
        help="continue from the ArmNet in --out (with a fresh optimizer)",
    )
    fit.add_argument(
        "--evaluate",
        action="store_true",
        help="only report the held-out fit of the ArmNet in --out (no training)",
    )
    fit.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE")
    fit.set_defaults(handler=_fit)

    control = verbs.add_parser(
        "control",
        help="train a controller through a frozen ArmNet; evaluate it on the real body",
    )
    control.add_argument("config", type=Path, help="surrogate config with a Control section")
    control.add_argument("--armnet", type=Path, required=True, help="folder from fit")
    control.add_argument("--out", type=Path, required=True, help="folder for the controller")
    control.add_argument("--iterations", type=_positive, help="overrides Control.Iterations")
    control.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE")
    control.set_defaults(handler=_control)

    iterate = verbs.add_parser(
        "iterate",
        help="generations: collect with the controller -> fit ArmNet -> train the controller",
    )
    iterate.add_argument("config", type=Path, help="surrogate config with a Control section")
    iterate.add_argument("--generations", type=_positive, required=True, help="generations K")
    iterate.add_argument("--out", type=Path, required=True, help="folder for gen0 .. gen<K-1>")
    iterate.add_argument("--sequences", type=_positive, help="per generation (Collect.Sequences)")
    iterate.add_argument("--epochs", type=_positive, help="ArmNet epochs per generation")
    iterate.add_argument("--iterations", type=_positive, help="controller iterations per gen.")
    iterate.add_argument(
        "--noise", type=float, default=0.05, help="input noise while collecting (default 0.05)"
    )
    iterate.add_argument("--data", type=Path, help="generation 0's dataset (skips collect)")
    iterate.add_argument("--armnet", type=Path, help="generation 0's ArmNet (skips fit)")
    iterate.add_argument("--controller", type=Path, help="generation 0's controller")
    iterate.add_argument(
        "--resume", action="store_true", help="keep the generations complete in --out"
    )
    iterate.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE")
    iterate.set_defaults(handler=_iterate)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1. Received: {text}")
    return value


def _config(args: argparse.Namespace) -> SurrogateConfig:
    return load_surrogate_config(args.config, args.override)


def _collect(args: argparse.Namespace) -> int:
    from neuroloop.surrogate.data import collect

    config = _config(args)

    def progress(done: int, wanted: int) -> None:
        print(f"[surrogate collect] {done}/{wanted} sequences", file=sys.stderr)

    dataset = collect(config, args.sequences, progress)
    try:
        dataset.save(args.out)
    except OSError as error:
        raise UsageError(
            f"--out: expected a writable file. Received: {args.out} ({error})"
        ) from None
    inputs, states = dataset.inputs.shape, dataset.states.shape
    print(f"collected {inputs[0]} sequences of {inputs[1]} steps ({dataset.dt_s} s)")
    print(f"inputs {inputs}, states {states}: {', '.join(dataset.names)}")
    print(f"wrote {args.out}")
    return 0


def _fit(args: argparse.Namespace) -> int:
    from neuroloop.surrogate.armnet import ArmNet
    from neuroloop.surrogate.data import Dataset
    from neuroloop.surrogate.fit import evaluate, fit_armnet, split

    config = _config(args)
    dataset = Dataset.load(args.data)
    if dataset.names != config.names:
        raise UsageError(
            f"--data: expected the state variables of {args.config} ({list(config.names)}). "
            f"Received: {list(dataset.names)}"
        )
    initial = ArmNet.load(args.out) if args.resume or args.evaluate else None
    if args.evaluate:
        assert initial is not None
        _, held_out = split(dataset.states.shape[0], config.fit.held_out, config.fit.seed)
        _write_fit(args, config, initial, evaluate(initial, dataset, held_out, 0))
        return 0

    def progress(epoch: int, losses: dict[str, float]) -> None:
        shown = ", ".join(f"{key} {value:.5f}" for key, value in losses.items())
        print(f"[surrogate fit] epoch {epoch}: {shown}", file=sys.stderr, flush=True)

    net, report = fit_armnet(
        dataset,
        config.fit,
        epochs=args.epochs,
        units=args.units,
        checkpoint=args.out,
        initial=initial,
        progress=progress,
    )
    _write_fit(args, config, net, report)
    return 0


def _write_fit(
    args: argparse.Namespace, config: SurrogateConfig, net: ArmNet, report: FitReport
) -> None:
    from neuroloop.surrogate.data import body_description

    net.body = body_description(config)
    net.save(args.out, report.as_dict())
    (args.out / "report.json").write_text(json.dumps(report.as_dict(), indent=1))
    print(report.table())
    print(f"wrote {args.out}")


def _control(args: argparse.Namespace) -> int:
    import numpy as np

    from neuroloop.surrogate.armnet import ArmNet
    from neuroloop.surrogate.control import (
        control_task,
        evaluate_closed_loop,
        plot_paths,
        train_controller,
    )
    from neuroloop.surrogate.data import rest_state

    config = _config(args)
    armnet = ArmNet.load(args.armnet)
    if armnet.names != config.names:
        raise UsageError(
            f"--armnet: expected an ArmNet of the state variables of {args.config}. "
            f"Received: {list(armnet.names)}"
        )
    task = control_task(config)

    def progress(iteration: int, loss: float) -> None:
        print(f"[surrogate control] iteration {iteration}: loss {loss:.4f}", file=sys.stderr)

    controller, history = train_controller(
        config, armnet, task, rest_state(config), iterations=args.iterations, progress=progress
    )
    metrics, paths, goals = evaluate_closed_loop(config, armnet, controller, task)
    print(f"straight-line loss through ArmNet: {history[0]:.3f} -> {history[-1]:.3f} cm^2")
    print("closed loop on the body, per target:")
    print("target  endpoint error (cm)  max deviation (cm)  path ratio  time to target (s)")
    for k in range(len(goals)):
        print(
            f"{k:>6}  {100 * metrics.endpoint_error[k]:19.2f}  "
            f"{100 * metrics.max_deviation[k]:18.2f}  {metrics.path_ratio[k]:10.2f}  "
            f"{metrics.time_to_target[k]:17.2f}"
        )
    summary = metrics.summary()
    print(", ".join(f"{key} {value:.4g}" for key, value in summary.items()))
    report = {
        "loss_history": history,
        "summary": summary,
        "endpoint_error": metrics.endpoint_error.tolist(),
        "max_deviation": metrics.max_deviation.tolist(),
        "path_ratio": metrics.path_ratio.tolist(),
        "time_to_target": [None if np.isnan(t) else t for t in metrics.time_to_target.tolist()],
    }
    controller.save(args.out, report)
    plot_paths(paths, goals, args.out / "trajectories.png", "ControllerNet on the body")
    print(f"wrote {args.out}")
    return 0


def _iterate(args: argparse.Namespace) -> int:
    from neuroloop.surrogate.generations import IterateSettings, iterate, write_table

    config = _config(args)
    settings = IterateSettings(
        args.generations,
        args.sequences,
        args.epochs,
        args.iterations,
        args.noise,
        args.data,
        args.armnet,
        args.controller,
        args.resume,
    )

    def log(message: str) -> None:
        print(f"[surrogate iterate] {message}", file=sys.stderr, flush=True)

    generations = iterate(config, settings, args.out, log)
    print(write_table(args.out, config, generations))
    print(f"wrote {args.out}")
    return 0
