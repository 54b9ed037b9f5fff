"""What runs left in their directories: results, the summary table, ``--report``."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neuroloop.batch.plan import (
    EXIT_FILE,
    RUN_FILE,
    RUNS,
    STDERR_LOG,
    STDOUT_LOG,
    TRAINING,
    Run,
    write_json,
)
from neuroloop.errors import UsageError
from neuroloop.training.monitor import PROGRESS

BATCH_FILE = "batch.json"
SUMMARY_FILE = "summary.json"
NOT_SHOWN = "-"


@dataclass(frozen=True)
class RunResult:
    """What a run left in its directory."""

    run: Run
    exit_status: int | None
    """The run's exit status (negative: killed by that signal); None: it has not ended."""
    started_s: float | None
    """When it started, in Unix seconds."""
    wall_s: float | None
    """Wall-clock seconds the run took."""
    metric: Mapping[str, Any]
    """The reported metric (``name: value``); every status entry when none was chosen."""
    error: str | None
    """Why it failed: the last line its process wrote to stderr (or why it did not start)."""
    skipped: bool = False
    """It had finished before, so this batch did not run it again."""

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    @property
    def state(self) -> str:
        """``ok``, ``skipped``, ``exit N``, ``signal N``, ``not started`` or ``pending``."""
        if self.exit_status is None:
            return "not started" if self.error else "pending"
        if self.exit_status == 0:
            return "skipped" if self.skipped else "ok"
        if self.exit_status < 0:
            return f"signal {-self.exit_status}"
        return f"exit {self.exit_status}"

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run.run_id,
            "seed": self.run.seed,
            "settings": list(self.run.settings),
            "state": self.state,
            "exit_status": self.exit_status,
            "started_s": self.started_s,
            "wall_s": self.wall_s,
            "metric": dict(self.metric),
            "error": self.error,
            "directory": str(self.run.directory),
        }


def collect(run: Run, skipped: bool = False) -> RunResult:
    """Read a run's result from its directory (written by a local run or a SLURM task)."""
    try:
        ended = json.loads((run.directory / EXIT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return RunResult(run, None, None, None, {}, None)
    status = int(ended["exit_status"])
    error = None
    if status != 0:
        error = _last_line(run.directory / STDERR_LOG) or f"{_describe_status(status)}, no stderr"
    return RunResult(
        run, status, ended["started_s"], ended["wall_s"], read_metric(run), error, skipped
    )


def read_metric(run: Run) -> dict[str, Any]:
    """The metric a run reported: from ``neuroloop run``'s summary, or training progress."""
    if run.kind == TRAINING:
        try:
            record = json.loads(_read_lines(run.train_dir / PROGRESS)[-1])
        except (IndexError, ValueError):  # no cycle finished, or the last line was cut
            return {}
        if run.metric is None:
            return {
                record.get("metric_name", "metric"): record.get("metric"),
                "cycle": record["cycle"],
            }
        return {run.metric: record.get(run.metric), "cycle": record["cycle"]}
    status = summary_status(_read_lines(run.directory / STDOUT_LOG))
    if run.metric is None:
        return status
    return {run.metric: status.get(run.metric)}


def summary_status(lines: Sequence[str]) -> dict[str, Any]:
    """What the status function reported, from the summary ``neuroloop run`` prints.

    The entries are the ``KEY VALUE`` lines after ``ended by``; numbers become numbers.
    """
    status: dict[str, Any] = {}
    ended = False
    for line in lines:
        if line.startswith("ended by"):
            ended = True
        elif ended and line.strip():
            key, _, value = line.strip().partition(" ")
            status[key] = _number_or_text(value.strip())
    return status


def _number_or_text(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []


def _last_line(path: Path) -> str | None:
    lines = [line.strip() for line in _read_lines(path) if line.strip()]
    return lines[-1] if lines else None


def _describe_status(status: int) -> str:
    return f"killed by signal {-status}" if status < 0 else f"exit status {status}"


def format_summary(results: Sequence[RunResult]) -> str:
    """A table: run, seed, settings, metric, wall time, state and error, then the totals."""
    header = ("run", "seed", "settings", "metric", "wall s", "state", "error")
    rows = [header] + [
        (
            result.run.run_id,
            str(result.run.seed),
            " ".join(result.run.settings) or NOT_SHOWN,
            _format_metric(result.metric),
            f"{result.wall_s:.1f}" if result.wall_s is not None else NOT_SHOWN,
            result.state,
            result.error or "",
        )
        for result in results
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(header) - 1)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
        + "  "
        + row[-1]
        for row in rows
    ]
    ok = sum(result.ok for result in results)
    skipped = sum(result.ok and result.skipped for result in results)
    pending = sum(result.state == "pending" for result in results)
    failed = len(results) - ok - pending
    totals = f"{len(results)} runs: {ok} ok ({skipped} skipped, finished before), {failed} failed"
    return "\n".join(
        [*(line.rstrip() for line in lines), totals + (f", {pending} pending" if pending else "")]
    )


def _format_metric(metric: Mapping[str, Any]) -> str:
    shown = [f"{key}={_format_value(value)}" for key, value in metric.items()]
    return " ".join(shown) or NOT_SHOWN


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return NOT_SHOWN if value is None else str(value)


def write_batch(runs: Sequence[Run], out_dir: str | Path) -> None:
    """Record the batch's runs in ``out_dir/batch.json`` (what ``--report`` reads)."""
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    write_json(directory / BATCH_FILE, {"runs": [run.run_id for run in runs]})


def write_summary(results: Sequence[RunResult], out_dir: str | Path) -> Path:
    """Write every result as JSON to ``out_dir/summary.json``."""
    path = Path(out_dir) / SUMMARY_FILE
    write_json(path, [result.to_json() for result in results])
    return path


def load_batch(out_dir: str | Path) -> list[Run]:
    """The runs of the batch last planned in ``out_dir``.

    Raises:
        UsageError: If ``out_dir`` holds no batch.
    """
    directory = Path(out_dir)
    try:
        ids = json.loads((directory / BATCH_FILE).read_text(encoding="utf-8"))["runs"]
        return [
            Run.from_json(json.loads((directory / RUNS / run_id / RUN_FILE).read_text()))
            for run_id in ids
        ]
    except (OSError, ValueError, KeyError) as error:
        raise UsageError(
            f"--report: expected a batch directory written by neuroloop batch. "
            f"Received: {directory} ({error})"
        ) from None
