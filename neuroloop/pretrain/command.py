"""``neuroloop pretrain vision RECIPE_OR_CONFIG -o OUT``: pose pretraining of the visual module.

The config (or the recipe's config) says everything: its physics engine's ``Camera`` makes
the frames, its task names the frame generator (``neuroloop.pretrain.frames``), and its
brain engine (``Brain``, ``BrainOptions``, ``InputShapes``, ...) is the brain whose visual
module is trained. OUT receives the frames (``pose_frames.npz``), the brain's weights with
their architecture file (``visual.weights.h5``, ``visual.brain.json``) and the report
(``pose_report.json``). ``neuroloop pretrain frames SOURCE -o FILE.npz`` only makes the
frames; ``vision`` runs it in a child process (TensorFlow and an EGL context in one process
crash it) unless given ``--data``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from neuroloop.config import EngineConfig, SimulationConfig, load_config
from neuroloop.errors import UsageError
from neuroloop.shipped import CONFIG, RECIPE, resolve

if TYPE_CHECKING:
    from neuroloop.pretrain.frames import PoseFrames

BRAIN_TYPE = "keras_brain"
DEFAULT_FRAMES = 3000
DEFAULT_EPOCHS = 30
DATASET_NAME = "pose_frames.npz"
"""The frames made, in OUT (train again on them with ``--data``)."""


def add_command(commands: argparse._SubParsersAction) -> None:
    """Add ``pretrain`` and its subcommands to the ``neuroloop`` command."""
    pretrain = commands.add_parser("pretrain", help="pretrain a brain module on a task of its own")
    kinds = pretrain.add_subparsers(dest="kind", required=True)
    vision = kinds.add_parser(
        "vision",
        help="train the visual module to regress the object's pose from rendered frames",
    )
    _source_arguments(vision, "folder for the frames, the weights and the report")
    vision.add_argument("--epochs", type=_positive, default=DEFAULT_EPOCHS, help="training epochs")
    vision.add_argument("--batch-size", type=_positive, default=32, help="frames per step")
    vision.add_argument("--learning-rate", type=float, default=1e-3, help="Adam's step size")
    vision.add_argument("--held-out", type=float, default=0.2, help="fraction of frames tested")
    vision.add_argument("--module", default="visual", help="the brain module to pretrain")
    vision.add_argument(
        "--data", type=Path, help="train on this pose frames file instead of making frames"
    )
    vision.set_defaults(handler=_vision)

    frames = kinds.add_parser(
        "frames", help="only make the pose-labelled frames (a .npz file for --data)"
    )
    _source_arguments(frames, "the frames file (.npz)")
    frames.set_defaults(handler=_frames)


def _source_arguments(parser: argparse.ArgumentParser, out: str) -> None:
    parser.add_argument("source", help="simulation config or recipe (file or shipped name)")
    parser.add_argument("-o", "--out", type=Path, required=True, help=out)
    parser.add_argument("--frames", type=_positive, default=DEFAULT_FRAMES, help="frames to make")
    parser.add_argument("--seed", type=int, default=0, help="seeds the frames, split and weights")
    parser.add_argument("--generator", help="frame generator module:function (default: the task's)")
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override a key of the config (or of the recipe)",
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1. Received: {text}")
    return value


def load_source(source: str, overrides: list[str]) -> SimulationConfig:
    """The simulation config ``source`` names, or that of the recipe it names."""
    path = Path(source)
    if path.is_file():
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        is_recipe = isinstance(document, dict) and "EngineConfigs" not in document
    else:
        is_recipe = source not in _shipped_configs()
    if not is_recipe:
        return load_config(resolve(CONFIG, source), overrides)
    from neuroloop.training.recipe import load_recipe

    return load_recipe(resolve(RECIPE, source), overrides).simulation_config()


def brain_engine(config: SimulationConfig) -> EngineConfig:
    """The config's one brain engine, which must have a ``vision`` input.

    Raises:
        UsageError: If there is not exactly one, or it has no ``vision`` input.
    """
    brains = [engine for engine in config.engines if engine.type == BRAIN_TYPE]
    if len(brains) != 1:
        raise UsageError(
            f"{config.path}: expected one {BRAIN_TYPE} engine whose brain to pretrain. "
            f"Received: {[engine.name for engine in brains]}"
        )
    shapes = brains[0].section["EngineExtraConfigs"].get("InputShapes") or {}
    if "vision" not in shapes:
        raise UsageError(
            f"{config.path}: EngineConfigs.EngineName:{brains[0].name}.EngineExtraConfigs."
            f"InputShapes: expected a 'vision' input. Received: {sorted(shapes)}"
        )
    return brains[0]


def _shipped_configs() -> set[str]:
    from neuroloop.shipped import shipped

    return set(shipped(CONFIG))


def _vision(args: argparse.Namespace) -> int:
    if not 0.0 < args.held_out < 1.0:
        raise UsageError(f"--held-out: expected a fraction in (0, 1). Received: {args.held_out}")
    config = load_source(args.source, args.override)
    brain_extra = brain_engine(config).section["EngineExtraConfigs"]
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"-o: expected a folder that can be written. Received: {error}") from None
    if args.data is not None:
        from neuroloop.pretrain.frames import PoseFrames

        data = PoseFrames.load(args.data)
        print(f"[pretrain] {len(data)} frames from {args.data}", file=sys.stderr)
    else:
        data = _make_frames(args, args.out / DATASET_NAME)
    from neuroloop.brain.trained import Architecture  # TensorFlow: never in the rendering child

    settings = dict(Architecture.from_engine(brain_extra).settings)
    try:
        brain = Architecture(settings).build()
    except ValueError as error:
        raise UsageError(f"{config.path}: the brain: {error}") from None

    from neuroloop.pretrain.vision import PoseTraining, report_lines, save_component, train_pose

    def progress(epoch: int, loss: float) -> None:
        print(
            f"[pretrain] epoch {epoch}/{args.epochs}: loss {loss:.4f}", file=sys.stderr, flush=True
        )

    training = PoseTraining(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        held_out=args.held_out,
        seed=args.seed,
        module=args.module,
    )
    try:
        report = train_pose(brain, data, training, progress)
    except ValueError as error:
        raise UsageError(f"{config.path}: {error}") from None
    report = {"source": str(config.path), "brain": settings["Brain"], **report}
    weights = save_component(brain, settings, report, args.out)
    print("\n".join(report_lines(report)))
    print(f"wrote {weights} (BrainOptions: {json.dumps({'visual_weights': str(weights)})})")
    return 0


def _frames(args: argparse.Namespace) -> int:
    from neuroloop.pretrain.frames import find_generator
    from neuroloop.render import choose_gl_backend

    config = load_source(args.source, args.override)
    brain_engine(config)
    backend = choose_gl_backend()  # before the generator's module imports MuJoCo
    generator = find_generator(config, args.generator)
    print(f"[pretrain] making {args.frames} frames ({backend})", file=sys.stderr, flush=True)

    def progress(done: int, wanted: int) -> None:
        print(f"[pretrain] {done}/{wanted} frames", file=sys.stderr, flush=True)

    data = generator(config, args.frames, args.seed, progress)
    try:
        data.save(args.out)
    except OSError as error:
        raise UsageError(f"-o: expected a file that can be written. Received: {error}") from None
    rate = len(data) / max(data.seconds, 1e-9)
    print(f"[pretrain] {rate:.2f} frames/s; wrote {args.out}", file=sys.stderr)
    return 0


def _make_frames(args: argparse.Namespace, path: Path) -> PoseFrames:
    """Run ``neuroloop pretrain frames`` in a child process that dies with this one.

    TensorFlow and an EGL context in one process crash it (whichever comes first), so the
    frames are rendered apart from the training.
    """
    import os
    import signal
    import subprocess

    from neuroloop.launcher import signal_group
    from neuroloop.pretrain.frames import PoseFrames

    command = [sys.executable, "-m", "neuroloop", "pretrain", "frames", args.source]
    command += ["-o", str(path), "--frames", str(args.frames), "--seed", str(args.seed)]
    command += [] if args.generator is None else ["--generator", args.generator]
    for override in args.override:
        command += ["--override", override]
    guard = [sys.executable, "-m", "neuroloop.guard", str(os.getpid()), "--"]
    child = subprocess.Popen([*guard, *command], start_new_session=True)
    try:
        status = child.wait()
    finally:
        if child.poll() is None:
            signal_group(child.pid, signal.SIGTERM)
            child.wait()
    if status != 0:
        raise UsageError(f"making the frames failed (exit {status}); see the messages above")
    return PoseFrames.load(path)
