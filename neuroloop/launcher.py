"""Start engine and external processes in their own process groups, and stop all of them.

Every process the launcher starts is in a new session (its own process group), so stopping
it stops its children too: SIGTERM to the group, a grace period, then SIGKILL. The launcher
is a context manager; leaving it on any path (normal end, exception, Ctrl-C) stops
everything it started.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import IO

from neuroloop.errors import EngineCrashError, EngineTimeoutError
from neuroloop.secret import SECRET_ENV as ENGINE_SECRET_ENV

STDERR_TAIL_LINES = 30
"""How many of an engine's last stderr lines an error message quotes."""

STOP_GRACE_S = 5.0
"""How long a process group gets between SIGTERM and SIGKILL."""

READY_PREFIX = "NEUROLOOP-ENGINE-READY"
"""First word of the line an engine server prints on stdout once it accepts calls."""

SINGLE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
}
"""Engine processes share two cores with the orchestrator: one thread each unless overridden."""

MPI_PREFIXES = ("PMI_", "PMIX_", "OMPI_", "HYDRA_", "MPI_LOCAL")
"""Environment of an MPI rank that its engine processes must not inherit: an engine that
started MPI with its rank's variables would try to join the rank's job and fail."""


def child_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without MPI rank variables or an engine secret, one thread
    each, plus ``env``."""
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(MPI_PREFIXES) and k != ENGINE_SECRET_ENV
    }
    return {**inherited, **SINGLE_THREAD_ENV, **(env or {})}


@dataclass
class ManagedProcess:
    """A process the launcher started, with the tail of its stderr and its announced address."""

    name: str
    popen: subprocess.Popen[str]
    stderr_tail: collections.deque[str] = field(
        default_factory=lambda: collections.deque(maxlen=STDERR_TAIL_LINES)
    )
    announced_address: str | None = None
    announced: threading.Event = field(default_factory=threading.Event)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def returncode(self) -> int | None:
        return self.popen.poll()

    def check_alive(self) -> None:
        """Raise ``EngineCrashError`` (engine, exit status, stderr tail) if the process exited."""
        status = self.popen.poll()
        if status is not None:
            raise EngineCrashError(self.describe_exit(status))

    def describe_exit(self, status: int) -> str:
        how = f"was killed by signal {-status}" if status < 0 else f"exited with status {status}"
        # Give the reader thread a moment to collect the last lines the process wrote.
        time.sleep(0.1)
        tail = "\n".join(f"    {line}" for line in self.stderr_tail)
        return f"engine {self.name!r} {how}" + (f"; last stderr lines:\n{tail}" if tail else "")


class Launcher:
    """Starts processes and guarantees they are stopped.

    Args:
        echo_stdout: Forward each process's stdout lines, prefixed with its name.
    """

    def __init__(self, echo_stdout: bool = True) -> None:
        self.echo_stdout = echo_stdout
        self.processes: list[ManagedProcess] = []

    def __enter__(self) -> Launcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop_all()

    def start(
        self,
        name: str,
        command: Sequence[str],
        env: Mapping[str, str] | None = None,
        guarded: bool = False,
    ) -> ManagedProcess:
        """Start ``command`` in its own process group with ``env`` added to our environment.

        Args:
            name: Names the process in messages.
            command: The program and its arguments.
            env: Variables added to our environment.
            guarded: Run it under ``neuroloop.guard``, which kills its group when this
                process is gone: for programs that do not watch their orchestrator.

        Raises:
            EngineCrashError: If the command cannot be executed at all.
        """
        if guarded:
            command = [sys.executable, "-m", "neuroloop.guard", str(os.getpid()), "--", *command]
        environment = child_environment(env)
        try:
            popen = subprocess.Popen(
                list(command),
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                bufsize=1,
                start_new_session=True,
            )
        except OSError as error:
            raise EngineCrashError(
                f"engine {name!r}: cannot start {command[0]!r}: {error.strerror}"
            ) from None
        process = ManagedProcess(name, popen)
        self.processes.append(process)
        assert popen.stdout is not None and popen.stderr is not None
        threading.Thread(
            target=self._read_stdout, args=(process, popen.stdout), daemon=True
        ).start()
        threading.Thread(
            target=self._read_stderr, args=(process, popen.stderr), daemon=True
        ).start()
        return process

    def wait_announced(self, process: ManagedProcess, timeout_s: float) -> str:
        """Wait for the engine server's ready line; return the address it bound.

        Raises:
            EngineCrashError: If the process exits first.
            EngineTimeoutError: If no ready line comes within ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        while not process.announced.wait(0.05):
            process.check_alive()
            if time.monotonic() > deadline:
                raise EngineTimeoutError(
                    f"engine {process.name!r} did not start serving within {timeout_s:g} s "
                    "(EngineLaunchTimeout)"
                )
        assert process.announced_address is not None
        return process.announced_address

    def stop_all(self, grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM every process group, wait up to ``grace_s``, then SIGKILL what is left."""
        for process in self.processes:
            signal_group(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for process in self.processes:
            try:
                process.popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for process in self.processes:
            # The group may hold children even when the leader is gone.
            signal_group(process.pid, signal.SIGKILL)
            try:
                process.popen.wait(grace_s)
            except subprocess.TimeoutExpired:
                print(
                    f"[launcher] process {process.pid} ({process.name}) survived SIGKILL",
                    file=sys.stderr,
                )
        self.processes.clear()

    def _read_stdout(self, process: ManagedProcess, stream: IO[str]) -> None:
        for line in stream:
            line = line.rstrip("\n")
            if not process.announced.is_set() and line.startswith(READY_PREFIX):
                fields = dict(part.split("=", 1) for part in line.split()[1:] if "=" in part)
                process.announced_address = fields.get("address")
                process.announced.set()
            elif self.echo_stdout:
                print(f"[{process.name}] {line}", flush=True)

    def _read_stderr(self, process: ManagedProcess, stream: IO[str]) -> None:
        for line in stream:
            process.stderr_tail.append(line.rstrip("\n"))


def signal_group(pid: int, signum: int) -> None:
    """Send ``signum`` to the process group led by ``pid``, if it still exists."""
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass
