"""The ``neuroloop`` command: ``run`` a simulation config, serve an ``engine``.

User errors (bad config, failing engine) print one clear message and exit non-zero,
without a traceback. SIGTERM and Ctrl-C stop every engine the command started.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any

from neuroloop.errors import CollectiveError, NeuroloopError, UsageError
from neuroloop.shipped import CONFIG, KINDS, resolve, shipped, shipped_root

if TYPE_CHECKING:
    from neuroloop.recording import DataPackRecorder
    from neuroloop.simulation import Simulation

EXIT_USER_ERROR = 2
EXIT_SIGNALLED = 128
"""A run stopped by signal N exits with 128 + N: 130 for SIGINT (Ctrl-C), 143 for SIGTERM."""
INTERRUPT_GRACE_S = 3.0
"""After the first SIGINT or SIGTERM, the run stops at its next loop step; if it is still
busy after this long (starting engines, a slow step, a blocking function), it stops at once."""
TRAIN_INTERRUPT_GRACE_S = 300.0
"""The same for ``neuroloop train``, which stops after its cycle: long enough to finish and
checkpoint a cycle (a second signal still stops it at once)."""
PROGRESS_INTERVAL_S = 1.0
QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "0"}
"""Set unless ``--verbose``: TensorFlow's C++ INFO lines off, and its oneDNN custom operations
off, which also ends their absl start-up notice (they reorder floating-point sums, so off is
also the run-to-run reproducible choice). A value already in the environment is kept."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.verbose:
        # Inherited by every engine process this command starts.
        for key, value in QUIET_ENV.items():
            os.environ.setdefault(key, value)
    INTERRUPTS.install(TRAIN_INTERRUPT_GRACE_S if args.command == "train" else INTERRUPT_GRACE_S)
    try:
        status: int = args.handler(args)
        return status
    except NeuroloopError as error:
        if not isinstance(error, CollectiveError) or error.report:
            print(f"neuroloop {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"neuroloop {args.command}: interrupted; all engines stopped", file=sys.stderr)
        return EXIT_SIGNALLED + INTERRUPTS.signum


class _Interrupts:
    """SIGINT and SIGTERM: the first stops the run at the next loop step, a second at once,
    and so does the first if the run has not stopped ``INTERRUPT_GRACE_S`` later.

    Stopping between steps (``check``) never abandons a gRPC call halfway, so the engines
    get their Shutdown call; either way every context manager unwinds and every engine
    process is stopped.
    """

    def __init__(self) -> None:
        self.requested = False
        self.signum = int(signal.SIGINT)
        self.grace_s = INTERRUPT_GRACE_S

    def install(self, grace_s: float) -> None:
        """Handle SIGINT and SIGTERM; stop at once ``grace_s`` after the first."""
        self.grace_s = grace_s
        # Explicitly for SIGINT too: a shell that starts us in the background ignores it.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._handle)
        signal.signal(signal.SIGALRM, self._grace_over)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.signum = signum
        signal.setitimer(signal.ITIMER_REAL, self.grace_s)

    def _grace_over(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt

    def check(self) -> None:
        """Raise KeyboardInterrupt if a stop was asked for."""
        if self.requested:
            raise KeyboardInterrupt


INTERRUPTS = _Interrupts()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neuroloop",
        description="Close the loop between a simulated body and a neural-network brain.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run a simulation config (JSON or YAML)")
    run.add_argument("config", help="simulation config file, or a shipped one's name")
    run.add_argument(
        "-o",
        "--override",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override a config value, e.g. -o EngineConfigs.EngineName:env.EngineTimestep=0.1",
    )
    run.add_argument("--steps", type=positive, help="run this many SimulationTimesteps, then stop")
    run.add_argument("--seed", type=seed, help="reset every engine with this seed before running")
    run.add_argument("--record", metavar="FILE", help="write every datapack to FILE (.jsonl/.npz)")
    run.add_argument(
        "--keep",
        action="append",
        default=[],
        metavar="ENGINE:NAME[,NAME]",
        help="also fetch (and so record) these datapacks of ENGINE with every step, though no "
        "function reads them, e.g. --keep brain:value,policy_state_h",
    )
    run.add_argument("--quiet", action="store_true", help="no progress line")
    run.set_defaults(handler=_run)

    engine = commands.add_parser("engine", help="serve one engine over gRPC")
    engine.add_argument(
        "--engine", required=True, help="MODULE:CLASS, FILE.py:CLASS or FILE.py (one Engine)"
    )
    engine.add_argument("--name", required=True, help="the engine's name (EngineName)")
    engine.add_argument(
        "--address",
        default="127.0.0.1:0",
        help="host:port (port 0 = any free port) or unix:/path; default 127.0.0.1:0",
    )
    engine.add_argument(
        "--fallback-port",
        action="store_true",
        help="bind a free port on the same host if the address's port is taken",
    )
    engine.add_argument("--parent-pid", type=int, help="exit when this process is gone")
    engine.add_argument(
        "--secret-file",
        metavar="PATH",
        help="refuse every call (but health checks) without the secret this file holds; "
        "default: the NEUROLOOP_ENGINE_SECRET environment variable, else no secret",
    )
    engine.add_argument(
        "--insecure",
        action="store_true",
        help="allow a non-loopback --address without a secret (any client that reaches it "
        "can drive the engine)",
    )
    engine.add_argument(
        "--max-timestep",
        type=float,
        default=None,
        metavar="SECONDS",
        help="refuse a step asking for more simulated time than this; default 60",
    )
    engine.add_argument(
        "--stuck-after",
        type=float,
        default=None,
        metavar="SECONDS",
        help="health checks answer NOT_SERVING while one call (a step) has held the engine "
        "for longer than this; default 30 (a simulation passes its EngineCommandTimeout)",
    )
    engine.set_defaults(handler=_engine)

    listing = commands.add_parser(
        "list", help="list the simulation configs, recipes and weights that ship"
    )
    listing.set_defaults(handler=_list)

    from neuroloop.training.commands import add_commands

    add_commands(commands, INTERRUPTS.check)

    from neuroloop.batch import add_command as add_batch_command

    add_batch_command(commands, INTERRUPTS.check)

    from neuroloop.surrogate.commands import add_command as add_surrogate_command

    add_surrogate_command(commands)

    from neuroloop.render import add_command as add_render_command

    add_render_command(commands, INTERRUPTS.check)
    from neuroloop.analysis.command import add_command as add_analyze_command

    add_analyze_command(commands)
    from neuroloop.pretrain.command import add_command as add_pretrain_command

    add_pretrain_command(commands)

    for command in commands.choices.values():
        command.add_argument(
            "--verbose",
            action="store_true",
            help="keep TensorFlow's start-up and INFO messages (silenced by default)",
        )
    return parser


MAX_SEED = 2**32 - 1
"""The largest seed every engine's generator takes (numpy's legacy seeding is 32-bit)."""


def positive(text: str) -> int:
    """An argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1. Received: {text}")
    return value


def seed(text: str) -> int:
    """An argparse type: an integer seed in [0, MAX_SEED]."""
    value = int(text)
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(
            f"expected an integer in [0, {MAX_SEED}]. Received: {text}"
        )
    return value


def _engine(args: argparse.Namespace) -> int:
    from neuroloop.engine import load_engine_class
    from neuroloop.launcher import SINGLE_THREAD_ENV
    from neuroloop.secret import is_local_address, read_secret_file, take_env_secret
    from neuroloop.server import (
        DEFAULT_MAX_TIMESTEP_S,
        DEFAULT_STUCK_AFTER_S,
        serve,
        watch_parent,
    )

    secret = take_env_secret()
    if args.secret_file is not None:
        try:
            secret = read_secret_file(args.secret_file)
        except ValueError as error:
            raise UsageError(
                f"--secret-file: expected a file holding the engine secret. Received: {error}"
            ) from None
    if secret is None and not args.insecure and not is_local_address(args.address):
        raise UsageError(
            f"refusing to serve {args.address} without a secret: any client that reaches it "
            "could drive the engine; give --secret-file PATH, or --insecure"
        )
    max_timestep_s = DEFAULT_MAX_TIMESTEP_S if args.max_timestep is None else args.max_timestep
    if not max_timestep_s > 0:
        raise UsageError(f"expected --max-timestep > 0 s. Received: {args.max_timestep}")
    stuck_after_s = DEFAULT_STUCK_AFTER_S if args.stuck_after is None else args.stuck_after
    if not stuck_after_s > 0:
        raise UsageError(f"expected --stuck-after > 0 s. Received: {args.stuck_after}")
    for key, value in SINGLE_THREAD_ENV.items():
        os.environ.setdefault(key, value)
    if args.parent_pid is not None:  # before loading the engine, which may take long or hang
        watch_parent(args.parent_pid)
    try:
        engine_class = load_engine_class(args.engine)
    except ValueError as error:
        raise UsageError(str(error)) from None
    serve(
        engine_class(args.name),
        args.address,
        fallback_port=args.fallback_port,
        secret=secret,
        max_timestep_s=max_timestep_s,
        stuck_after_s=stuck_after_s,
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    root = shipped_root()
    for kind in KINDS:
        print(f"{kind.plural} ({root / kind.folder}):")
        for name in shipped(kind):
            print(f"  {name}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from neuroloop.recording import DataPackRecorder
    from neuroloop.simulation import Simulation

    recorder = None
    if args.record:
        try:
            recorder = DataPackRecorder(args.record)
        except ValueError as error:
            raise UsageError(str(error)) from None
        except OSError as error:
            raise UsageError(
                f"--record: expected a file that can be written. Received: {args.record} "
                f"({error.strerror})"
            ) from None
    progress = _Progress(quiet=args.quiet)
    started = time.perf_counter()
    try:
        config = resolve(CONFIG, args.config)
        with Simulation.from_config(
            config, args.override, recorder=recorder, seed=args.seed
        ) as sim:
            _keep(sim, args.keep)
            INTERRUPTS.check()
            progress.begin()
            if args.steps is not None:
                for _ in range(args.steps):
                    if sim.step():
                        break
                    progress(sim)
            else:
                sim.run_until_timeout(progress)
            progress.end()
            _summary(sim, time.perf_counter() - started, progress, recorder)
    finally:
        if recorder is not None:
            recorder.close()
    return 0


def _keep(sim: Simulation, specs: Sequence[str]) -> None:
    """Have the loop fetch the ``--keep ENGINE:NAME[,NAME]`` datapacks with every step."""
    for spec in specs:
        engine, _, listed = spec.partition(":")
        names = [name for name in listed.split(",") if name]
        offered = sim.datapack_names.get(engine)
        unknown = [name for name in names if offered is not None and name not in offered]
        if offered is None or not names or unknown:
            raise UsageError(
                f"--keep {spec}: expected ENGINE:NAME[,NAME] with an engine of the config "
                f"({', '.join(sim.datapack_names)}) and names of its datapacks"
                + (f" ({', '.join(offered)})" if offered else "")
            )
        sim.loop.request(engine, names)


class _Progress:
    """Prints simulated time and loop rate at most once per second."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.started = time.perf_counter()
        self.last = 0.0
        self.seconds = 0.0

    def begin(self) -> None:
        self.started = time.perf_counter()
        self.last = self.started

    def __call__(self, sim: Simulation) -> None:
        INTERRUPTS.check()
        now = time.perf_counter()
        self.seconds = now - self.started
        if self.quiet or now - self.last < PROGRESS_INTERVAL_S:
            return
        self.last = now
        timeout = sim.config.timeout_ns
        of = f" / {timeout / 1e9:.2f}" if timeout else ""
        rate = sim.iteration / max(self.seconds, 1e-9)
        line = f"[neuroloop] t = {sim.time_ns / 1e9:.2f}{of} s   {rate:,.0f} steps/s"
        print(f"\r{line}" if self.tty else line, end="" if self.tty else "\n", file=sys.stderr)

    def end(self) -> None:
        self.seconds = time.perf_counter() - self.started
        if self.tty and not self.quiet:
            print(file=sys.stderr)


def status_lines(status: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(key, value)`` of each status entry but ``done``, floats to 6 significant digits.

    The keys stay as the status function names them: ``neuroloop batch`` reads them back.
    """
    return [
        (key, f"{value:.6g}" if isinstance(value, float) else str(value))
        for key, value in status.items()
        if key != "done"
    ]


def _summary(
    sim: Simulation, wall_s: float, progress: _Progress, recorder: DataPackRecorder | None
) -> None:
    simulated_s = sim.time_ns / 1e9
    loop_s = max(progress.seconds, 1e-9)
    print(f"simulation   {sim.config.name}")
    print(f"simulated    {simulated_s:.3f} s in {sim.iteration} loop steps")
    print(f"wall time    {wall_s:.2f} s ({loop_s:.2f} s in the loop)")
    print(
        f"speed        {sim.iteration / loop_s:,.0f} steps/s, {simulated_s / loop_s:.2f}x real time"
    )
    ended = "status function" if sim.loop.done else "SimulationTimeout" if sim.done else "--steps"
    print(f"ended by     {ended}")
    for label, value in status_lines(sim.loop.functions.last_status):
        print(f"{label:<12} {value}" if len(label) < 12 else f"{label} {value}")
    if recorder is not None:
        print(f"recorded     {recorder.count} datapacks to {recorder.path}")
