"""Watch a brain act: a video of one world of a simulation, rendered offscreen.

``neuroloop render CONFIG_OR_RECIPE_OR_RUN -o out.mp4`` (and ``neuroloop evaluate ...
--video``) run the simulation as configured, with the physics engine's ``Camera`` set to
render only world ``--world`` from the body's default view (its Body file's ``View``; the
Shadow Hand's follows the palm), the task's goal drawn in. One picture is taken per control
step, so the video plays at simulated speed. ``.mp4`` is written by imageio's FFmpeg plugin
(imageio-ffmpeg ships the ffmpeg binary), ``.gif`` by its Pillow plugin.

Offscreen OpenGL: ``MUJOCO_GL`` if set, else EGL, else OSMesa, whichever first makes a
picture in a short probe process; when none does, a one-line error names both.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from neuroloop.config import SimulationConfig, load_config
from neuroloop.datapack import DataPackIdentifier
from neuroloop.errors import UsageError
from neuroloop.shipped import CONFIG, RECIPE, resolve

GL_BACKENDS = ("egl", "osmesa")
"""Offscreen OpenGL backends tried in order when ``MUJOCO_GL`` is not set."""

GL_PROBE = (
    "import mujoco\n"
    "model = mujoco.MjModel.from_xml_string('<mujoco><worldbody/></mujoco>')\n"
    "renderer = mujoco.Renderer(model, 8, 8)\n"
    "renderer.render()\n"
    "renderer.close()\n"
)
"""Makes one picture: exits 0 when the backend named by MUJOCO_GL works."""

GL_PROBE_TIMEOUT_S = 60.0
PHYSICS_TYPE = "mujoco"
BRAIN_TYPE = "keras_brain"
VIDEO_SUFFIXES = (".mp4", ".gif")
DEFAULT_SIZE = 256
"""Picture width and height (px) unless given."""
EPISODE_END = ("terminated", "truncated")
"""Preprocessed datapacks (of the physics engine) whose flags end a world's episode."""
RENDER_SEED = 0
"""Reset seed of a rendered run unless given: the same video every time."""


@dataclass(frozen=True)
class VideoRequest:
    """What to film."""

    output: Path
    """The video file: ``.mp4`` or ``.gif``."""
    episodes: int = 1
    """Episodes of the filmed world to show (the run stops after them)."""
    world: int = 0
    """The world filmed."""
    camera: str | None = None
    """A camera of the model; None: the body's default free view."""
    width: int = DEFAULT_SIZE
    """Picture width (px)."""
    height: int = DEFAULT_SIZE
    """Picture height (px)."""
    steps: int | None = None
    """Stop after this many control steps, even mid-episode."""
    seed: int = RENDER_SEED
    """Reset seed of every engine."""


def choose_gl_backend(environ: Mapping[str, str] | None = None) -> str:
    """The offscreen OpenGL backend to render with, set as ``MUJOCO_GL`` for engines.

    Raises:
        UsageError: If no backend makes a picture (naming each one tried and why).
    """
    env = dict(os.environ if environ is None else environ)
    given = env.get("MUJOCO_GL")
    candidates = (given,) if given else GL_BACKENDS
    failures = []
    for backend in candidates:
        try:
            done = subprocess.run(
                [sys.executable, "-c", GL_PROBE],
                env={**env, "MUJOCO_GL": backend},
                capture_output=True,
                text=True,
                timeout=GL_PROBE_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            failures.append(f"{backend}: no picture within {GL_PROBE_TIMEOUT_S:.0f} s")
            continue
        if done.returncode == 0:
            os.environ["MUJOCO_GL"] = backend
            return backend
        lines = done.stderr.strip().splitlines()
        failures.append(f"{backend}: {lines[-1] if lines else f'exit {done.returncode}'}")
    raise UsageError(
        "rendering needs an offscreen OpenGL backend: expected MUJOCO_GL=egl (EGL, e.g. "
        "Debian's libegl1 with Mesa) or MUJOCO_GL=osmesa (Debian's libosmesa6) to work. "
        f"Received: {'; '.join(failures)}"
    )


def video_config(
    source: str | Path,
    request: VideoRequest,
    weights: Path | None = None,
    brain_settings: Mapping[str, Any] | None = None,
) -> tuple[SimulationConfig, list[np.ndarray] | None]:
    """The simulation config to film (and the run checkpoint's weights to push, if any).

    Args:
        source: A simulation config or recipe (file or shipped name), or a training run
            directory (its best checkpoint acts).
        request: What to film.
        weights: A ``.weights.h5`` file for the brain (with its ``.brain.json``, the brain
            is rebuilt as it was trained).
        brain_settings: More brain engine settings (e.g. ``Deterministic``).

    Raises:
        UsageError: If the source is none of these, or has no single MuJoCo engine.
    """
    from neuroloop.training.evaluate import weights_architecture

    settings: dict[str, Any] = dict(brain_settings or {})
    if weights is not None:
        settings["Weights"] = str(weights.resolve())
        settings.update(weights_architecture(weights))
    flat = None
    path = Path(source)
    if path.is_dir() or _is_recipe(source):
        from neuroloop.training.evaluate import load_run
        from neuroloop.training.recipe import load_recipe

        if path.is_dir():
            recipe, state = load_run(path, "best", "render")
            flat = state.weights
        else:
            recipe = load_recipe(resolve(RECIPE, source))
        # Only the filmed world and those before it are simulated.
        recipe = replace(recipe, worlds=request.world + 1)
        camera = camera_overrides(load_config(recipe.simulation), request, check_world=False)
        recipe = replace(recipe, simulation_overrides=(*recipe.simulation_overrides, *camera))
        return recipe.simulation_config(brain_settings={"Deterministic": True, **settings}), flat
    config_path = resolve(CONFIG, source)
    plain = load_config(config_path)
    overrides = camera_overrides(plain, request, check_world=True)
    if settings:
        brains = [engine.name for engine in plain.engines if engine.type == BRAIN_TYPE]
        if len(brains) != 1:
            raise UsageError(
                f"{config_path}: expected one {BRAIN_TYPE} engine to give --weights. "
                f"Received: {brains}"
            )
        select = f"EngineConfigs.EngineName:{brains[0]}.EngineExtraConfigs"
        overrides += [f"{select}.{key}={json.dumps(value)}" for key, value in settings.items()]
    # No timeout: the episodes (or --steps) end the run.
    return load_config(config_path, [*overrides, "SimulationTimeout=0"]), flat


def _is_recipe(source: str | Path) -> bool:
    """Whether ``source`` names a recipe rather than a simulation config."""
    path = Path(source)
    if path.is_file():
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        return isinstance(document, Mapping) and "EngineConfigs" not in document
    try:
        resolve(CONFIG, source)
    except UsageError:
        return True
    return False


def physics_engine(config: SimulationConfig) -> str:
    """The name of the config's one MuJoCo engine.

    Raises:
        UsageError: If there is none or several.
    """
    names = [engine.name for engine in config.engines if engine.type == PHYSICS_TYPE]
    if len(names) != 1:
        raise UsageError(
            f"{config.path}: expected one {PHYSICS_TYPE} engine to film. Received: {names}"
        )
    return names[0]


def camera_overrides(
    config: SimulationConfig, request: VideoRequest, check_world: bool = True
) -> list[str]:
    """The override that films world ``request.world`` of ``config``'s MuJoCo engine."""
    physics = physics_engine(config)
    worlds = int(config.engine(physics).extra.get("Worlds", 1))
    if check_world and not 0 <= request.world < worlds:
        raise UsageError(
            f"--world: expected a world of {config.path.name} (0 to {worlds - 1}). "
            f"Received: {request.world}"
        )
    camera = {
        "Name": request.camera,
        "Width": request.width,
        "Height": request.height,
        "World": request.world,
    }
    return [f"EngineConfigs.EngineName:{physics}.EngineExtraConfigs.Camera={json.dumps(camera)}"]


def film(
    config: SimulationConfig,
    request: VideoRequest,
    weights: list[np.ndarray] | None = None,
    between_steps: Callable[[], None] | None = None,
) -> int:
    """Run ``config`` and write the video ``request.output``; return the frames written.

    Args:
        config: A config from ``video_config``.
        request: What to film.
        weights: Weights to push to the brain first (a run checkpoint's).
        between_steps: Called after each step (may raise to stop).

    Raises:
        UsageError: If no OpenGL backend works or the output cannot be written.
    """
    from neuroloop.brain.weights import flatten
    from neuroloop.simulation import Simulation

    suffix = request.output.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise UsageError(
            f"-o: expected a video file ending in {' or '.join(VIDEO_SUFFIXES)}. "
            f"Received: {request.output}"
        )
    choose_gl_backend()
    physics = physics_engine(config)
    fps = 1e9 / config.timestep_ns
    frames: list[np.ndarray] = []
    with Simulation(config, echo_engine_output=False, seed=request.seed) as simulation:
        if weights is not None:
            brains = [e.name for e in config.engines if e.type == BRAIN_TYPE]
            simulation.set_datapack("weights", brains[0], flatten(weights))
        simulation.loop.request(physics, ["camera"])
        ends = [DataPackIdentifier(name, physics) for name in EPISODE_END]
        finished = 0
        while finished < request.episodes:
            if request.steps is not None and len(frames) >= request.steps:
                break
            stopped = simulation.step()
            frames.append(np.asarray(simulation.datapack("camera", physics))[0])
            # The functions of a step see the physics before it; an end flagged in this step
            # is the previous frame's, and this step's reset already shows the next episode.
            if _episode_ended(simulation, ends, request.world):
                finished += 1
                if finished == request.episodes:
                    frames.pop()
            if between_steps is not None:
                between_steps()
            if stopped:
                break
    write_video(request.output, frames, fps)
    return len(frames)


def _episode_ended(simulation: Any, ends: Sequence[DataPackIdentifier], world: int) -> bool:
    for identifier in ends:
        datapack = simulation.loop.store.latest(identifier)
        if datapack is not None and datapack.data is not None:
            flags = np.asarray(datapack.data).reshape(-1)
            if world < flags.size and bool(flags[world]):
                return True
    return False


def write_video(output: Path, frames: Sequence[np.ndarray], fps: float) -> None:
    """Write ``frames`` (``[H, W, 3]`` ``uint8``) as an ``.mp4`` or ``.gif`` at ``fps``.

    Raises:
        UsageError: If there is no frame or the file cannot be written.
    """
    import imageio.v3 as iio

    if not frames:
        raise UsageError(f"{output}: no picture was taken (the run ended before its first step)")
    output.parent.mkdir(parents=True, exist_ok=True)
    stack = np.stack(frames)
    try:
        if output.suffix.lower() == ".gif":
            iio.imwrite(output, stack, extension=".gif", duration=1000.0 / fps, loop=0)
        else:
            iio.imwrite(output, stack, extension=".mp4", fps=fps, macro_block_size=1)
    except OSError as error:
        raise UsageError(f"{output}: cannot write the video ({error})") from None


def add_command(commands: Any, between_steps: Callable[[], None]) -> None:
    """Add ``render`` to the ``neuroloop`` command.

    Args:
        commands: The ``neuroloop`` command's subparsers.
        between_steps: Called after every step (raises to stop cleanly).
    """
    render = commands.add_parser(
        "render", help="write a video (.mp4 or .gif) of one world of a simulation"
    )
    render.add_argument(
        "source",
        help="a simulation config or training recipe (file or shipped name), or a training "
        "run directory (its best checkpoint acts)",
    )
    render.add_argument(
        "-o", "--output", type=Path, required=True, help="the video file (.mp4 or .gif)"
    )
    render.add_argument(
        "--weights", help="a .weights.h5 file (or shipped weights' name) for the brain"
    )
    render.add_argument("--episodes", type=int, default=1, help="episodes to film (default 1)")
    render.add_argument("--world", type=int, default=0, help="the world to film (default 0)")
    render.add_argument(
        "--camera", help="a camera of the MuJoCo model (default: the body's view, hand-centred)"
    )
    render.add_argument("--width", type=int, default=DEFAULT_SIZE, help="picture width (px)")
    render.add_argument("--height", type=int, default=DEFAULT_SIZE, help="picture height (px)")
    render.add_argument("--steps", type=int, help="stop after this many control steps")
    render.add_argument("--seed", type=int, default=RENDER_SEED, help="reset seed of the engines")
    render.set_defaults(handler=lambda args: _render(args, between_steps))


def _render(args: Any, between_steps: Callable[[], None]) -> int:
    from neuroloop.shipped import WEIGHTS

    for name in ("episodes", "width", "height", "steps"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name}: expected an integer >= 1. Received: {value}")
    if args.world < 0:
        raise UsageError(f"--world: expected an integer >= 0. Received: {args.world}")
    request = VideoRequest(
        output=args.output,
        episodes=args.episodes,
        world=args.world,
        camera=args.camera,
        width=args.width,
        height=args.height,
        steps=args.steps,
        seed=args.seed,
    )
    weights = None if args.weights is None else resolve(WEIGHTS, args.weights)
    config, flat = video_config(args.source, request, weights)
    frames = film(config, request, flat, between_steps)
    print(
        f"wrote {request.output}: {frames} frames of world {request.world} "
        f"(MUJOCO_GL={os.environ['MUJOCO_GL']})"
    )
    return 0
