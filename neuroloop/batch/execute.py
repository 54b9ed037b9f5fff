"""Run a batch locally: a bounded pool, each run once (DONE marker), interruptible."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from neuroloop.batch.plan import (
    DONE_MARKER,
    EXIT_FILE,
    STDERR_LOG,
    STDOUT_LOG,
    Run,
    prepare,
    write_json,
)
from neuroloop.batch.report import RunResult, collect
from neuroloop.errors import UsageError
from neuroloop.launcher import signal_group

POLL_S = 0.2
STOP_GRACE_S = 10.0
"""How long an interrupted run gets between SIGTERM and SIGKILL (it stops its engines)."""


def execute(run: Run, stop: threading.Event | None = None) -> RunResult:
    """Run one run unless it finished before; write its logs, exit status and marker.

    Args:
        run: The run.
        stop: When set, the run's process group gets SIGTERM (then SIGKILL after
            STOP_GRACE_S); ``neuroloop run`` and ``neuroloop train`` stop their engines.
    """
    if (run.directory / DONE_MARKER).is_file():
        return collect(run, skipped=True)
    try:
        prepare(run)
        (run.directory / EXIT_FILE).unlink(missing_ok=True)
        with (
            (run.directory / STDOUT_LOG).open("w") as stdout,
            (run.directory / STDERR_LOG).open("w") as stderr,
        ):
            started_s = time.time()
            started = time.monotonic()
            process = subprocess.Popen(
                run.resume_command(),
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
            status = _wait(process, stop)
            wall_s = time.monotonic() - started
    except OSError as error:
        return RunResult(run, None, None, None, {}, f"cannot start: {error}")
    ended = {"exit_status": status, "started_s": round(started_s, 3), "wall_s": round(wall_s, 3)}
    write_json(run.directory / EXIT_FILE, ended)
    if status == 0:
        (run.directory / DONE_MARKER).touch()
    return collect(run)


def _wait(process: subprocess.Popen[bytes], stop: threading.Event | None) -> int:
    """Wait for ``process``; on ``stop``, SIGTERM its group, then SIGKILL after a grace."""
    while stop is None or not stop.is_set():
        try:
            return process.wait(POLL_S)
        except subprocess.TimeoutExpired:
            continue
    signal_group(process.pid, signal.SIGTERM)
    try:
        return process.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        signal_group(process.pid, signal.SIGKILL)
        return process.wait()


def run_batch(
    runs: Sequence[Run],
    pool: int = 1,
    *,
    between: Callable[[], None] | None = None,
    progress: Callable[[RunResult], None] | None = None,
) -> list[RunResult]:
    """Run every run not finished before, at most ``pool`` at a time.

    Args:
        runs: The runs, e.g. from :func:`plan`.
        pool: How many runs at once.
        between: Called about every POLL_S seconds; if it raises (e.g. KeyboardInterrupt on
            Ctrl-C), the running runs are stopped, no new one starts, and it propagates.
        progress: Called with each run's result as it ends (or is skipped).

    Returns:
        One result per run, in the order of ``runs``; failed runs included.
    """
    if pool < 1:
        raise UsageError(f"--pool: expected at least 1. Received: {pool}")
    stop = threading.Event()
    with ThreadPoolExecutor(pool, thread_name_prefix="batch") as executor:
        futures = [executor.submit(execute, run, stop) for run in runs]
        pending: set[Future[RunResult]] = set(futures)
        try:
            while pending:
                done, pending = wait(pending, timeout=POLL_S, return_when=FIRST_COMPLETED)
                for future in done:
                    if progress is not None:
                        progress(future.result())
                if between is not None:
                    between()
        except BaseException:
            stop.set()
            for future in futures:
                future.cancel()
            raise
    return [future.result() for future in futures]
