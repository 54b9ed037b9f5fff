"""Processes in tests: run the ``neuroloop`` command, and read the process table (which
engine processes a given orchestrator left behind)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parents[1]


def run_neuroloop(
    *args: str | Path, timeout: float = 300, cwd: Path = REPO
) -> subprocess.CompletedProcess[str]:
    """``python -m neuroloop ARGS`` from the checkout, its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "neuroloop", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


def last_json_line_with_egl(script: str, timeout: float = 120) -> Any:
    """Run ``python -c SCRIPT`` from the checkout with ``MUJOCO_GL=egl`` (MuJoCo picks its
    OpenGL backend when its rendering is first imported) and parse its last line as JSON."""
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env={**os.environ, "MUJOCO_GL": "egl"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def engine_processes(parent_pid: int) -> list[tuple[int, str]]:
    """Live engine servers started by ``parent_pid`` (they carry ``--parent-pid PARENT``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().split(") ")[-1].split()[0]
        except OSError:
            continue
        args = [a.decode(errors="replace") for a in argv if a]
        if state == "Z" or "engine" not in args or "--parent-pid" not in args:
            continue
        if args[args.index("--parent-pid") + 1] == str(parent_pid):
            found.append((int(entry.name), " ".join(args)))
    return found


def alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def engine_command(engine: str, name: str) -> list[str]:
    """``neuroloop engine`` serving ``engine`` (``MODULE:CLASS``) as ``name``, on a free
    loopback port, dying with this process."""
    return [
        sys.executable,
        "-m",
        "neuroloop",
        "engine",
        "--engine",
        engine,
        "--name",
        name,
        "--parent-pid",
        str(os.getpid()),
    ]


def progress(run_dir: Path) -> list[dict[str, Any]]:
    """A training run's ``progress.jsonl``, one record per cycle."""
    lines = (run_dir / "progress.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]
