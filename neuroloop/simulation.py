"""Simulation = config + launcher + engine clients + FTILoop: the object users script.

::

    with Simulation.from_config("simulation_configs/pendulum_pd.json") as sim:
        sim.step(100)
        print(sim.time_ns, sim.datapack("observation", "env"))
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

from neuroloop.client import EngineClient, EngineUnavailableError
from neuroloop.config import EngineConfig, SimulationConfig, load_config, seconds_to_ns
from neuroloop.datapack import DataPack, DataPackIdentifier, DataPackValue
from neuroloop.engine import Engine, load_engine_class
from neuroloop.errors import ConfigError, EngineCrashError, EngineError
from neuroloop.functions import FunctionKind, FunctionManager, LoadedFunction, load_functions
from neuroloop.graph import load_graph
from neuroloop.launcher import Launcher, ManagedProcess
from neuroloop.local import EngineLink, LocalEngine
from neuroloop.loop import DataPackProcessor, EventLoop, FTILoop, Recorder
from neuroloop.secret import SECRET_ENV, new_secret, read_secret_file
from neuroloop.tasks import build_task

SHUTDOWN_TIMEOUT_S = 5.0
"""How long each engine gets to answer the Shutdown call at the end of a simulation."""

LOOPBACK_ANY_PORT = "127.0.0.1:0"
"""Where an engine we start serves when Unix-domain sockets are not available."""
UNIX_PATH_MAX = 107
"""Longest Unix-domain socket path Linux takes (sun_path holds 108 bytes with the NUL)."""
SOCKET_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
"""Engine names used as they are in socket file names; others use the engine's index."""

CRASH_GRACE_S = 1.0
"""How long an unreachable engine's process gets to be seen exiting before the error stands."""
CRASH_POLL_S = 0.01


class Simulation:
    """A running simulation: engines started, initialized and wired to the functions.

    Args:
        config: The loaded simulation config.
        recorder: Optional sink for every datapack exchanged.
        echo_engine_output: Forward engines' stdout lines, prefixed with the engine name.
        seed: Reset every engine with this seed at start, before the first datapacks are
            fetched (and recorded), so a seeded run is repeatable from its first datapack.
        local: Run engines in this process instead of launching them: ``True`` for every
            engine (each built from its ``EngineClass``), or a mapping from engine names to
            the Engine (or ``EngineLink``) objects that take their place.
    """

    def __init__(
        self,
        config: SimulationConfig,
        *,
        recorder: Recorder | None = None,
        echo_engine_output: bool = True,
        seed: int | None = None,
        local: bool | Mapping[str, Engine | EngineLink] = False,
    ) -> None:
        self.config = config
        self.local = local
        self.recorder = recorder
        self.seed = seed
        self.launcher = Launcher(echo_stdout=echo_engine_output)
        self.secret = new_secret()
        """This simulation's secret: every engine it starts obeys only calls carrying it."""
        self.clients: dict[str, EngineLink] = {}
        self.processes: dict[str, ManagedProcess] = {}
        self.datapack_names: dict[str, list[str]] = {}
        self.socket_directory: Path | None = None
        """The private directory (mode 0700) of the Unix sockets of the engines we start."""
        self._loop: FTILoop | None = None

    @classmethod
    def from_config(
        cls, path: str | Path, overrides: Sequence[str] = (), **kwargs: Any
    ) -> Simulation:
        """Load a JSON or YAML config (with ``-o`` style overrides) into a Simulation."""
        return cls(load_config(path, overrides), **kwargs)

    def __enter__(self) -> Simulation:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Load functions, start engines, wait until they serve, initialize them."""
        functions = self._load_functions()
        for process in self.config.external_processes:
            command = [*shlex.split(process.proc_cmd), *process.proc_start_params]
            self.launcher.start(process.name, command, dict(process.env_params), guarded=True)
        local = {e.name: self._local_link(e) for e in self.config.engines if self._is_local(e)}
        for engine in self.config.engines:
            if engine.launch_type == "BasicFork" and engine.name not in local:
                environment = {**dict(engine.env_params), SECRET_ENV: self.secret}
                self.processes[engine.name] = self.launcher.start(
                    engine.name,
                    self._engine_command(engine),
                    environment,
                    guarded=bool(engine.proc_cmd),
                )
        if self.config.loop == "EventLoop":
            settings = self.config.event_loop
            warn_ns = seconds_to_ns(settings["TimestepWarnThreshold"], "TimestepWarnThreshold")
            self._loop = EventLoop(functions, self.config.timestep_ns, warn_ns)
            self._restart()
            return
        with self._diagnosing():
            for engine in self.config.engines:
                self.clients[engine.name] = local.get(engine.name) or self._connect(engine)
            with ThreadPoolExecutor(len(self.clients)) as pool:
                names = pool.map(
                    lambda e: self.clients[e.name].initialize(e.section), self.config.engines
                )
                self.datapack_names = dict(zip(self.clients, names, strict=True))
            if self.seed is not None:
                self._reset_engines(self.seed)
        self._loop = FTILoop(
            [(self.clients[e.name], e.timestep_ns) for e in self.config.engines],
            functions,
            self.recorder,
        )
        self._restart()

    def reset(self, seed: int | None = None) -> None:
        """Reset every engine (with ``seed``) and start again at time 0."""
        loop = self.loop
        with self._diagnosing():
            loop.collect()
            self._reset_engines(seed)
        self._restart()

    def close(self) -> None:
        """Shut engines down, then stop every process the simulation started."""
        try:
            if self._loop is not None:
                self._loop.abandon()
            for client in self.clients.values():
                try:
                    client.shutdown(SHUTDOWN_TIMEOUT_S)
                except Exception as error:
                    print(f"[{client.name}] shutdown: {error}", file=sys.stderr)
                finally:
                    client.close()
            self.clients.clear()
        finally:
            self.launcher.stop_all()
            if self.socket_directory is not None:
                shutil.rmtree(self.socket_directory, ignore_errors=True)
                self.socket_directory = None

    # -- running ---------------------------------------------------------------------------

    @property
    def loop(self) -> FTILoop:
        if self._loop is None:
            raise RuntimeError("the simulation is not started: use it as a context manager")
        return self._loop

    @property
    def time_ns(self) -> int:
        return self.loop.time_ns

    @property
    def iteration(self) -> int:
        return self.loop.iteration

    @property
    def done(self) -> bool:
        """True once the status function or SimulationTimeout ended the simulation."""
        timeout = self.config.timeout_ns
        return self.loop.done or (timeout > 0 and self.loop.time_ns >= timeout)

    def step(self, n: int = 1) -> bool:
        """Advance by ``n`` SimulationTimesteps; return True if the simulation is done."""
        with self._diagnosing():
            stop = self.loop.time_ns + n * self.config.timestep_ns
            if self.config.timeout_ns > 0:
                stop = min(stop, self.config.timeout_ns)
            self.loop.run_until(stop)
        return self.done

    def run_loop(self, num_iterations: int = 1) -> tuple[bool, list[Any]]:
        """Run ``num_iterations`` SimulationTimesteps whatever the done flag says.

        NRP-core's ``run_loop``: returns the done flag of the last iteration and, when it is
        set, the trajectory, i.e. the data of what the status function returned since the
        trajectory was last handed over (a dict for each ``JsonRawData``); else ``[]``.
        """
        with self._diagnosing():
            self.loop.run_until(
                self.loop.time_ns + num_iterations * self.config.timestep_ns, until_done=False
            )
        done = self.loop.done
        return done, self._trajectory() if done else []

    def _trajectory(self) -> list[Any]:
        return [observation.data for observation in self.loop.take_trajectory()]

    def run_until_timeout(
        self, progress: Callable[[Simulation], None] | None = None
    ) -> tuple[bool, bool, list[Any]]:
        """Step until SimulationTimeout or the status function's done flag ends the run.

        NRP-core's ``run_until_timeout``: returns the done flag, whether SimulationTimeout
        was reached, and the trajectory (see ``run_loop``).

        Args:
            progress: Called after every SimulationTimestep (e.g. to print progress).
        """
        if self.config.timeout_ns <= 0 and self.functions_cannot_stop:
            key = "EventLoop.Timeout" if self.config.loop == "EventLoop" else "SimulationTimeout"
            raise ConfigError(
                str(self.config.path),
                key,
                "a timeout > 0 s or a StatusFunction, or the run would never end",
                f"{key}=0 and no StatusFunction",
            )
        while not self.step():
            if progress is not None:
                progress(self)
        if progress is not None:
            progress(self)
        timeout = self.config.timeout_ns
        return self.loop.done, 0 < timeout <= self.loop.time_ns, self._trajectory()

    @property
    def functions_cannot_stop(self) -> bool:
        return self.loop.functions.status is None

    def datapack(self, name: str, engine: str) -> DataPackValue:
        """The latest value of datapack ``name`` of ``engine``, fetched if no function reads it."""
        cached = self.loop.store.engine.get(DataPackIdentifier(name, engine))
        if cached is not None:
            return cached.data
        client = self._client(engine)
        with self._diagnosing():
            self.loop.collect(lambda slot: slot.engine is client)
            return client.get_datapacks([name])[name]

    def set_datapack(self, name: str, engine: str, value: DataPackValue) -> None:
        """Send ``value`` to ``engine`` with its next step."""
        self._client(engine)
        self.loop._post([DataPack(name, engine, value)])

    # -- internals -------------------------------------------------------------------------

    def _is_local(self, engine: EngineConfig) -> bool:
        return self.local is True or (isinstance(self.local, Mapping) and engine.name in self.local)

    def _local_link(self, engine: EngineConfig) -> EngineLink:
        given = self.local.get(engine.name) if isinstance(self.local, Mapping) else None
        if given is None:
            try:
                given = load_engine_class(engine.engine_class)(engine.name)
            except ValueError as error:
                raise ConfigError(
                    str(self.config.path),
                    f"EngineConfigs.EngineName:{engine.name}.EngineClass",
                    "an importable Engine class",
                    str(error),
                ) from None
        return LocalEngine(given) if isinstance(given, Engine) else given

    def _client(self, engine: str) -> EngineLink:
        client = self.clients.get(engine)
        if client is None:
            raise KeyError(f"no engine {engine!r}; the simulation has {', '.join(self.clients)}")
        return client

    def _restart(self) -> None:
        loop = self.loop
        with self._diagnosing():
            constants = loop.constants
            initial = {
                name: self.clients[name].get_datapacks(sorted({*requested, *constants[name]}))
                for name, requested in loop.requested.items()
            }
        loop.restart(initial)

    def _reset_engines(self, seed: int | None) -> None:
        """Reset every engine concurrently with ``seed``."""
        if not self.clients:
            return
        with ThreadPoolExecutor(len(self.clients)) as pool:
            list(pool.map(lambda client: client.reset(seed), self.clients.values()))

    def _load_functions(self) -> DataPackProcessor:
        config = self.config
        engines = [e.name for e in config.engines]
        loaded: list[LoadedFunction] = []
        modules: dict[Path, ModuleType] = {}
        if config.loop == "EventLoop" or config.processor == "cg":
            output_driven = config.event_loop["ExecutionMode"] == "OutputDriven"
            if config.loop == "FTILoop":
                output_driven = True  # NRP-core runs a graph in the FTILoop OutputDriven
            return load_graph(config.graph_files, engines, str(config.path), modules, output_driven)
        for index, entry in enumerate(config.functions):
            if entry.is_active:
                loaded += load_functions(
                    entry.name,
                    entry.file,
                    (FunctionKind.TRANSCEIVER, FunctionKind.PREPROCESSING),
                    engines,
                    str(config.path),
                    f"DataPackProcessingFunctions[{index}]",
                    modules,
                )
        status = None
        if config.status_function is not None and config.status_function.is_active:
            found = load_functions(
                config.status_function.name,
                config.status_function.file,
                (FunctionKind.STATUS,),
                engines,
                str(config.path),
                "StatusFunction",
                modules,
            )
            if len(found) > 1:
                raise ConfigError(
                    str(config.path),
                    "StatusFunction",
                    f"exactly one @StatusFunction in {config.status_function.file.name}",
                    f"{len(found)} status functions",
                )
            status = found[0]
        return FunctionManager(loaded, status, self._task([*loaded, *([status] if status else [])]))

    def _task(self, functions: list[LoadedFunction]) -> object | None:
        """The task of the config's ``Task`` section, built for the functions that read it."""
        config = self.config
        readers = [f for f in functions if f.function.task_keyword]
        if config.task is None:
            if readers:
                raise ConfigError(
                    str(config.path),
                    "Task",
                    f"a Task section: function {readers[0].label!r} in "
                    f"{readers[0].file.name} reads the simulation's task",
                    "no Task",
                )
            return None
        return build_task(config.task, str(config.path), config.directory)

    def _engine_command(self, engine: EngineConfig) -> list[str]:
        if engine.proc_cmd:
            if not engine.server_address:
                raise ConfigError(
                    str(self.config.path),
                    f"EngineConfigs.EngineName:{engine.name}.ServerAddress",
                    "the address the custom EngineProcCmd serves at",
                    "ServerAddress=''",
                )
            return [*shlex.split(engine.proc_cmd), *engine.proc_start_params]
        return [
            sys.executable,
            "-m",
            "neuroloop",
            "engine",
            "--engine",
            engine.engine_class,
            "--name",
            engine.name,
            "--address",
            engine.server_address or self._private_address(engine),
            "--fallback-port",
            "--parent-pid",
            str(os.getpid()),
            # Health turns NOT_SERVING once a call takes longer than we would wait for it
            # (no command timeout: the engine's own default).
            *(
                ()
                if engine.command_timeout_s is None
                else ("--stuck-after", f"{engine.command_timeout_s:g}")
            ),
            *engine.proc_start_params,
        ]

    def _private_address(self, engine: EngineConfig) -> str:
        """A Unix socket in this simulation's private directory, where the platform has them:
        only this user can reach it (the directory is 0700); else a free loopback port."""
        if not hasattr(socket, "AF_UNIX"):
            return LOOPBACK_ANY_PORT
        if self.socket_directory is None:
            try:
                self.socket_directory = Path(tempfile.mkdtemp(prefix="neuroloop-"))  # mode 0700
            except OSError:  # no writable temporary directory
                return LOOPBACK_ANY_PORT
        index = [e.name for e in self.config.engines].index(engine.name)
        name = engine.name if SOCKET_NAME.fullmatch(engine.name) else f"engine{index}"
        path = self.socket_directory / f"{name}.sock"
        return f"unix:{path}" if len(str(path)) <= UNIX_PATH_MAX else LOOPBACK_ANY_PORT

    def _connect(self, engine: EngineConfig) -> EngineClient:
        process = self.processes.get(engine.name)
        address = engine.server_address
        if process is not None and not engine.proc_cmd:
            address = self.launcher.wait_announced(process, engine.launch_timeout_s)
        client = EngineClient(
            engine.name, address, engine.command_timeout_s, self._engine_secret(engine)
        )
        client.wait_ready(engine.launch_timeout_s, process.check_alive if process else None)
        return client

    def _engine_secret(self, engine: EngineConfig) -> str | None:
        """The secret of an engine: ours if we started it, else its ``EngineSecretFile``'s."""
        if engine.name in self.processes:
            return self.secret
        if engine.secret_file is None:
            return None
        try:
            return read_secret_file(engine.secret_file)
        except ValueError as error:
            raise ConfigError(
                str(self.config.path),
                f"EngineConfigs.EngineName:{engine.name}.EngineSecretFile",
                "a readable file holding the engine's secret",
                str(error),
            ) from None

    @contextmanager
    def _diagnosing(self) -> Iterator[None]:
        """Turn an engine call failure into a crash report when an engine process has died.

        A killed engine's connection can break a moment before its exit is visible, so an
        unreachable engine gets up to CRASH_GRACE_S to be seen exiting.
        """
        try:
            yield
        except EngineError as error:
            grace_s = CRASH_GRACE_S if isinstance(error, EngineUnavailableError) else 0.0
            deadline = time.monotonic() + grace_s
            while True:
                for process in self.processes.values():
                    status = process.returncode()
                    if status is not None:
                        raise EngineCrashError(process.describe_exit(status)) from error
                if time.monotonic() >= deadline:
                    raise
                time.sleep(CRASH_POLL_S)
