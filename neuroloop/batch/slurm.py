"""A SLURM job-array script with one task per run, writing what a local run writes."""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from pathlib import Path

from neuroloop.batch.plan import (
    DONE_MARKER,
    EXIT_FILE,
    LATEST_CHECKPOINT,
    STDERR_LOG,
    STDOUT_LOG,
    TRAIN_DIR,
    TRAINING,
    Run,
    prepare,
)

SLURM_SCRIPT = "batch.sbatch"


def write_slurm(
    runs: Sequence[Run], out_dir: str | Path, sbatch: Sequence[str] = ()
) -> tuple[Path, list[str]]:
    """Write a SLURM job-array script with one task per run, and every run's directory.

    Task ``i`` runs ``runs[i]``, writing the files a local run writes (a finished task exits
    at once when the array is submitted again). A training run with workers asks for that
    many tasks and runs its ``mpiexec`` line.

    Args:
        runs: The runs (all of one kind and worker count, as :func:`plan` makes them).
        out_dir: The batch's directory; the script is ``out_dir/batch.sbatch``.
        sbatch: More ``#SBATCH`` options, ``KEY=VALUE`` or ``KEY`` (``time=02:00:00``).

    Returns:
        The script's path, and the config errors of runs that will fail.

    Raises:
        ValueError: If ``runs`` is empty.
    """
    if not runs:
        raise ValueError("write_slurm: expected at least one run. Received: runs=[]")
    directory = Path(out_dir).resolve()
    problems = [f"{run.run_id}: {problem}" for run in runs if (problem := prepare(run))]
    first = runs[0]
    logs = directory / "slurm"
    logs.mkdir(parents=True, exist_ok=True)
    options = [
        f"--job-name=neuroloop-{first.target.stem}",
        f"--array=0-{len(runs) - 1}",
        f"--ntasks={first.workers}",
        f"--output={logs}/%A_%a.out",
        *(f"--{option.lstrip('-')}" for option in sbatch),
    ]
    lines = [
        "#!/bin/bash",
        f"# neuroloop batch: {len(runs)} {first.kind} runs of {first.target}",
        f"# Submit: sbatch {directory / SLURM_SCRIPT}",
        f"# Results, once the tasks ended: neuroloop batch --report {directory}",
        *(f"#SBATCH {option}" for option in options),
        "set -u",
        f"cd {shlex.quote(os.getcwd())}",
        'case "${SLURM_ARRAY_TASK_ID:?submit this script with sbatch}" in',
    ]
    for index, run in enumerate(runs):
        lines += [
            f"  {index}) run={shlex.quote(str(run.directory))}",
            f"     command=({shlex.join(run.command)}) ;;",
        ]
    lines += [
        f'  *) echo "no task $SLURM_ARRAY_TASK_ID in this array (0-{len(runs) - 1})" >&2; '
        "exit 2 ;;",
        "esac",
        f'if [ -e "$run/{DONE_MARKER}" ]; then echo "$run: finished before, skipped"; exit 0; fi',
    ]
    if first.kind == TRAINING:
        lines.append(
            f'if [ -e "$run/{TRAIN_DIR}/{LATEST_CHECKPOINT}" ]; then '
            f'command+=(--resume "$run/{TRAIN_DIR}"); fi'
        )
    lines += [
        f'rm -f "$run/{EXIT_FILE}"',
        "started=$(date +%s%N)",
        f'"${{command[@]}}" < /dev/null > "$run/{STDOUT_LOG}" 2> "$run/{STDERR_LOG}"',
        "status=$?",
        "ms=$(( ($(date +%s%N) - started) / 1000000 )) start_ms=$(( started / 1000000 ))",
        'printf \'{"exit_status": %d, "started_s": %d.%03d, "wall_s": %d.%03d}\\n\' '
        '"$status" $((start_ms / 1000)) $((start_ms % 1000)) $((ms / 1000)) $((ms % 1000)) '
        f'> "$run/{EXIT_FILE}"',
        f'if [ "$status" -eq 0 ]; then touch "$run/{DONE_MARKER}"; fi',
        'exit "$status"',
    ]
    script = directory / SLURM_SCRIPT
    script.write_text("\n".join(lines) + "\n", encoding="utf-8")
    script.chmod(0o755)
    return script, problems
