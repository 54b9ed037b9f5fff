"""The CPU seconds gathering counts: another process's time, read from /proc."""

from __future__ import annotations

import math
import subprocess
import sys
import time

from neuroloop.training.gather import process_cpu_seconds

BUSY_S = 0.3
"""CPU seconds the child burns before it reports and sleeps."""

CHILD = f"""
import sys, time
started = time.process_time()
while time.process_time() - started < {BUSY_S}:
    pass
print("busy done", flush=True)
time.sleep(30)
"""


def test_a_busy_child_counts_its_cpu_time_and_a_sleeping_one_none() -> None:
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "busy done\n"
        busy = process_cpu_seconds(child.pid)
        elapsed = time.perf_counter() - started
        # The busy loop's own CPU time, plus the interpreter's start-up; never more than the
        # wall time it had (one thread).
        assert BUSY_S - 0.02 <= busy <= elapsed + 0.02
        time.sleep(0.3)
        assert process_cpu_seconds(child.pid) - busy < 0.05  # asleep: no more CPU time
    finally:
        child.terminate()
        child.wait(10)
    assert math.isnan(process_cpu_seconds(child.pid))  # reaped: nothing to read
