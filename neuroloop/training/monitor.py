"""The training monitor: one JSON line per cycle, TensorBoard scalars, a progress line.

Every cycle appends one JSON object to ``RUN_DIR/progress.jsonl`` and writes its numeric
entries as TensorBoard scalars under ``RUN_DIR/tensorboard``. ``plot_runs`` draws the
learning curves of one or more runs into a PNG.
"""

from __future__ import annotations

import json
import math
import resource
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

PROGRESS = "progress.jsonl"
TENSORBOARD = "tensorboard"
KIB = 1024
CURVES = ("mean_return", "metric", "policy_loss", "value_loss", "entropy", "approx_kl")
"""Entries ``plot_runs`` draws, one panel each, when the runs have them."""


def peak_memory_mib() -> float:
    """Peak resident memory of this process and its finished children, in MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + children) / KIB


class Monitor:
    """Writes the per-cycle record of a run.

    Args:
        run_dir: The run's directory.
        total_cycles: Cycles the run will do (for the progress line).
        quiet: No progress line.
    """

    def __init__(self, run_dir: Path, total_cycles: int, quiet: bool = False) -> None:
        import tensorflow as tf

        self.path = run_dir / PROGRESS
        self.total_cycles = total_cycles
        self.quiet = quiet
        self._writer = tf.summary.create_file_writer(str(run_dir / TENSORBOARD))

    def log(self, record: Mapping[str, Any]) -> None:
        """Append ``record`` (which must hold ``cycle``) and print the progress line."""
        with self.path.open("a", encoding="utf-8") as stream:
            stream.write(json.dumps(_strict(record), allow_nan=False) + "\n")
        _write_scalars(self._writer, record)
        if not self.quiet:
            print(_progress_line(record, self.total_cycles), file=sys.stderr, flush=True)


def _write_scalars(writer: Any, record: Mapping[str, Any]) -> None:
    """Write the numeric entries of ``record`` as TensorBoard scalars at its cycle."""
    import tensorflow as tf

    with writer.as_default(step=int(record["cycle"])):
        for key, value in _scalars(record):
            tf.summary.scalar(key, value)
    writer.flush()


def _strict(value: Any) -> Any:
    """``value`` with non-finite floats as None, so the line is strict JSON."""
    if isinstance(value, Mapping):
        return {key: _strict(item) for key, item in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _scalars(record: Mapping[str, Any], prefix: str = "") -> list[tuple[str, float]]:
    found = []
    for key, value in record.items():
        if isinstance(value, Mapping):
            found += _scalars(value, f"{prefix}{key}/")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            if math.isfinite(value):
                found.append((f"{prefix}{key}", float(value)))
    return found


def _progress_line(record: Mapping[str, Any], total: int) -> str:
    cycle = int(record["cycle"])
    width = 20
    done = round(width * cycle / max(total, 1))
    bar = "#" * done + "." * (width - done)
    parts = [f"[{bar}] cycle {cycle}/{total}"]
    for key, label, fmt in (
        ("env_steps", "steps", ",d"),
        ("mean_return", "return", ".3f"),
        ("metric", "metric", ".3f"),
        ("env_steps_per_s", "steps/s", ",.0f"),
    ):
        value = record.get(key)
        if isinstance(value, int | float) and math.isfinite(value):
            parts.append(f"{label} {value:{fmt}}")
    return "  ".join(parts)


def read_progress(run_dir: Path) -> list[dict[str, Any]]:
    """The per-cycle records of a run."""
    path = run_dir / PROGRESS
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: expected a training run with {PROGRESS}")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def reconcile_progress(run_dir: Path, cycle: int, record: Mapping[str, Any] | None) -> None:
    """Make ``progress.jsonl`` hold exactly cycles 1..``cycle`` of the checkpoint resumed from.

    The trainer writes a cycle's checkpoint, then its line: a kill between the two loses the
    line, which ``record`` (the checkpoint's copy) restores, in TensorBoard too; lines of
    later cycles (a run resumed from an older checkpoint because the newer ones were
    damaged) are dropped, as that run repeats those cycles. The file is replaced atomically.

    Args:
        run_dir: The run's directory.
        cycle: The checkpoint's last cycle.
        record: That cycle's progress record, if the checkpoint holds one.
    """
    path = run_dir / PROGRESS
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    kept: dict[int, str] = {}
    for line in lines:
        try:
            logged = int(json.loads(line)["cycle"])
        except json.JSONDecodeError:
            continue  # empty, or cut by a kill in mid-write
        if logged <= cycle:
            kept.setdefault(logged, line)
    if cycle not in kept and record is not None and cycle > 0:
        kept[cycle] = json.dumps(_strict(record), allow_nan=False)
        import tensorflow as tf

        writer = tf.summary.create_file_writer(str(run_dir / TENSORBOARD))
        _write_scalars(writer, record)
        writer.close()
    reconciled = [kept[c] for c in sorted(kept)]
    if reconciled != lines:
        temporary = path.with_suffix(".jsonl.tmp")
        temporary.write_text("".join(line + "\n" for line in reconciled), encoding="utf-8")
        temporary.replace(path)


def plot_runs(run_dirs: Sequence[Path], output: Path) -> Path:
    """Draw the learning curves of ``run_dirs`` (overlaid) into the PNG ``output``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {run.name: read_progress(run) for run in run_dirs}
    keys = [k for k in CURVES if any(k in record for rs in runs.values() for record in rs)]
    figure, axes = plt.subplots(len(keys), 1, figsize=(7, 2.4 * len(keys)), squeeze=False)
    for axis, key in zip(axes[:, 0], keys, strict=True):
        for name, records in runs.items():
            points = [(r["env_steps"], r[key]) for r in records if _finite(r.get(key))]
            if points:
                axis.plot(*zip(*points, strict=True), label=name)
        axis.set_ylabel(key)
        axis.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("environment steps")
    axes[0, 0].legend(loc="best")
    figure.tight_layout()
    figure.savefig(output, dpi=100)
    plt.close(figure)
    return output


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)
