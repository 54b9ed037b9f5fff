"""Errors neuroloop raises for user mistakes and engine failures.

Each message names its context (file and key, or engine and call) and says what was
expected and what was received, so the CLI can print it without a traceback.
"""

from __future__ import annotations

import traceback


class NeuroloopError(Exception):
    """Base class of every error the CLI reports as a one-line message."""


class ConfigError(NeuroloopError):
    """A simulation config or recipe is malformed, refers to a missing file, or is inconsistent.

    Args:
        file: The config file (or ``"<overrides>"``).
        path: JSON path of the offending key, e.g. ``EngineConfigs[0].EngineTimestep``.
        expected: What a valid value looks like.
        received: What was found.
    """

    def __init__(self, file: str, path: str, expected: str, received: str) -> None:
        self.file = file
        self.path = path
        self.expected = expected
        self.received = received
        where = f"{file}: {path}" if path else file
        super().__init__(f"{where}: expected {expected}. Received: {received}")


class EngineError(NeuroloopError):
    """An engine rejected a call or failed while serving it."""


class EngineTimeoutError(EngineError):
    """An engine did not answer a call within its ``EngineCommandTimeout``."""


class EngineCrashError(EngineError):
    """An engine process exited while the simulation needed it."""


class UserCodeError(NeuroloopError):
    """A user's Python file (functions, engine, brain builder, task) failed while loading.

    Args:
        path: The file.
        error: What it raised.
    """

    def __init__(self, path: str, error: BaseException) -> None:
        self.path = path
        line = getattr(error, "lineno", None)
        if line is None:
            frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == path]
            line = frames[-1].lineno if frames else None
        where = f"{path}, line {line}" if line is not None else path
        message = getattr(error, "msg", None) or str(error)
        super().__init__(f"{where}: loading it raised {type(error).__name__}: {message}")


class CollectiveError(NeuroloopError):
    """An error every MPI rank raises at the same point from figures they share, so no rank
    waits for another: ``Communicator.abort_on_error`` lets it end each rank normally.

    Args:
        message: The error.
        report: Print it (true on one rank only, so a job says it once).
    """

    def __init__(self, message: str, *, report: bool = True) -> None:
        self.report = report
        super().__init__(message)


class CollectiveInterrupt(KeyboardInterrupt):
    """An interrupt every MPI rank raises at the same point (one of them was asked to stop),
    so the job stops cleanly instead of aborting."""


class UsageError(NeuroloopError):
    """A command-line argument or user file is unusable (e.g. an engine class that is not one)."""


class OptionError(ValueError):
    """An option (or reward weight) of an object a config builds, such as a task, is invalid.

    Args:
        owner: What the option belongs to, e.g. the task's name.
        option: The option (``__init__`` argument).
        expected: What a valid value looks like.
        value: The value received.
        key: The entry of a mapping option (e.g. a reward term), if the error is in one.
    """

    def __init__(
        self, owner: str, option: str, expected: str, value: object, key: str | None = None
    ) -> None:
        self.option = option
        self.expected = expected
        self.value = value
        self.key = key
        received = repr(value) if key is not None else f"{option}={value!r}"
        super().__init__(f"[{owner}] {option}: expected {expected}. Received: {received}")
