"""Run a command so that it dies with its orchestrator: ``python -m neuroloop.guard PID -- CMD``.

Engines that neuroloop serves watch their orchestrator themselves (``--parent-pid``); a
custom ``EngineProcCmd`` or an ``ExternalProcesses`` entry is any program, so the launcher
starts it under this guard. The guard runs the command in its own process group (which the
launcher started), and when the orchestrator ``PID`` is gone (even SIGKILLed), kills the whole
group, command and guard. Otherwise it waits for the command and exits as it did.
SIGINT and SIGTERM reach the command through its group, so the guard ignores them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

POLL_S = 0.1
"""How often the guard checks that the orchestrator is alive."""
USAGE = "usage: python -m neuroloop.guard ORCHESTRATOR_PID -- COMMAND [ARG ...]"


def main(argv: list[str]) -> int:
    """Run the command of ``argv`` (``PID -- COMMAND ...``); return its exit status."""
    if len(argv) < 3 or argv[1] != "--" or not argv[0].isdigit():
        print(USAGE, file=sys.stderr)
        return 2
    orchestrator, command = int(argv[0]), argv[2:]
    try:
        child = subprocess.Popen(command)
    except OSError as error:
        print(f"[guard] cannot start {command[0]!r}: {error.strerror}", file=sys.stderr)
        return 127
    # After the start: an ignored signal would be ignored by the command too.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    while child.poll() is None:
        if os.getppid() != orchestrator:
            os.killpg(os.getpgrp(), signal.SIGKILL)
        time.sleep(POLL_S)
    if child.returncode < 0:  # killed by a signal: end the same way, so the status is the same
        signal.signal(-child.returncode, signal.SIG_DFL)
        os.kill(os.getpid(), -child.returncode)
    return child.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
