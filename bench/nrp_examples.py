"""Run every simulation config of NRP-core's examples with ``neuroloop run``, unchanged.

Run from the repository root::

    .venv/bin/python bench/nrp_examples.py [NRP_CORE] [--timeout S] [--steps N] [--only TEXT]

``NRP_CORE`` is an NRP-core checkout (a folder with ``examples/``) or its git directory,
e.g. the mirror the ``fetch`` tool makes of ``github:vvorobjov/nrp-core`` (the default,
``DEFAULT_NRP_CORE``). Its ``examples/`` folder is copied to a temporary folder first (from a
git directory: the files of ``HEAD``, skipping any whose content the mirror does not hold),
so runs never write into the checkout and nothing of NRP-core lands in this repository.

A simulation config is a JSON or YAML file under ``examples/`` whose top level has
``SimulationName`` or ``EngineConfigs`` (NRP-core 1.4.1 has 53). Each runs as
``python -m neuroloop run CONFIG --quiet`` from the config's own folder, so its relative
paths work, under a wall-clock ``--timeout`` (and with ``--steps N`` if given, to bound
configs without a SimulationTimeout). The table says for each config:

- ``ran``: exit 0, with how the run ended (status function, SimulationTimeout, --steps);
- ``unsupported``: exit 2 with one line naming an unsupported engine type or feature;
- ``error``: any other exit, with the first line of the error output;
- ``timeout``: still running after ``--timeout`` seconds (the process group is killed).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

DEFAULT_NRP_CORE = Path("/work/.mirror/vvorobjov+nrp-core/repo")
"""Where the ``fetch`` tool puts its mirror of github:vvorobjov/nrp-core (a git directory)."""

CONFIG_KEYS = ("SimulationName", "EngineConfigs")
"""A file is a simulation config if its top level has one of these keys."""

UNSUPPORTED_MARK = "not supported by neuroloop"


@dataclass(frozen=True)
class Outcome:
    """How one config's run ended."""

    config: str
    """The config's path under ``examples/``."""
    result: str
    """``ran``, ``unsupported``, ``error`` or ``timeout``."""
    detail: str
    """How it ended, or the first line of its error output."""
    seconds: float


def export_examples(source: Path, target: Path) -> Path:
    """Copy ``source``'s ``examples/`` into ``target``; return the copy's ``examples`` folder."""
    if (source / "examples").is_dir():
        shutil.copytree(source / "examples", target / "examples")
        return target / "examples"
    listing = subprocess.run(
        ["git", f"--git-dir={source}", "ls-tree", "-r", "-z", "HEAD", "examples"],
        capture_output=True,
        check=True,
    ).stdout
    for entry in filter(None, listing.split(b"\0")):
        meta, _, name = entry.partition(b"\t")
        _, kind, blob = meta.split()
        if kind != b"blob":
            continue
        content = subprocess.run(
            ["git", f"--git-dir={source}", "cat-file", "blob", blob.decode()],
            capture_output=True,
        )
        if content.returncode != 0:
            continue  # a large file the mirror does not hold
        path = target / os.fsdecode(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.stdout)
    return target / "examples"


def simulation_configs(examples: Path) -> list[Path]:
    """Every JSON or YAML file under ``examples`` whose top level is a simulation config."""
    found = []
    for path in sorted(examples.rglob("*")):
        if path.suffix.lower() not in (".json", ".yaml", ".yml") or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
            document = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError):
            continue
        if isinstance(document, dict) and any(key in document for key in CONFIG_KEYS):
            found.append(path)
    return found


def run_config(config: Path, examples: Path, timeout_s: float, steps: int | None) -> Outcome:
    """Run one config from its folder and classify how it ended."""
    command = [sys.executable, "-m", "neuroloop", "run", config.name, "--quiet"]
    if steps is not None:
        command += ["--steps", str(steps)]
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        cwd=config.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    name = str(config.relative_to(examples))
    try:
        stdout, stderr = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)
        process.communicate()
        return Outcome(name, "timeout", f"still running after {timeout_s:g} s", timeout_s)
    seconds = time.perf_counter() - started
    if process.returncode == 0:
        ended = [line for line in stdout.splitlines() if line.startswith("ended by")]
        how = ended[0].removeprefix("ended by").strip() if ended else "exit 0"
        return Outcome(name, "ran", f"ended by {how}", seconds)
    lines = [line for line in stderr.splitlines() if line.strip()]
    first = lines[0] if lines else f"exit {process.returncode}, no error output"
    unsupported = process.returncode == 2 and len(lines) == 1 and UNSUPPORTED_MARK in first
    result = "unsupported" if unsupported else "error"
    detail = first if len(lines) <= 1 else f"{first} (+{len(lines) - 1} more lines)"
    return Outcome(name, result, f"exit {process.returncode}: {detail}", seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("nrp_core", nargs="?", type=Path, default=DEFAULT_NRP_CORE)
    parser.add_argument("--timeout", type=float, default=120.0, help="wall-clock s per config")
    parser.add_argument("--steps", type=int, default=None, help="pass --steps N to each run")
    parser.add_argument("--only", default="", help="run only configs whose path contains this")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nrp_examples_") as folder:
        examples = export_examples(args.nrp_core, Path(folder))
        configs = [c for c in simulation_configs(examples) if args.only in str(c)]
        print(f"{len(configs)} simulation configs under {args.nrp_core}/examples\n")
        print("| config | result | detail |\n| --- | --- | --- |")
        outcomes = []
        for config in configs:
            outcome = run_config(config, examples, args.timeout, args.steps)
            outcomes.append(outcome)
            print(f"| {outcome.config} | {outcome.result} | {outcome.detail} |", flush=True)
    counts = collections.Counter(outcome.result for outcome in outcomes)
    total_s = sum(outcome.seconds for outcome in outcomes)
    summary = ", ".join(f"{counts[k]} {k}" for k in ("ran", "unsupported", "error", "timeout"))
    print(f"\n{len(outcomes)} configs: {summary} ({total_s:.0f} s of runs)")


if __name__ == "__main__":
    main()
