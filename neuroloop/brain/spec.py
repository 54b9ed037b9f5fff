"""Brain specs as configs write them: a name, ``file.py:builder`` or ``module:builder``.

Free of TensorFlow, so that configs and recipes can be resolved without it.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

FILE_SPEC_MARK = ".py:"


def absolute_spec(spec: str, base: Path) -> str:
    """``spec`` with a relative builder file made absolute against ``base``; else unchanged."""
    if FILE_SPEC_MARK not in spec:
        return spec
    file_name, _, builder = spec.rpartition(":")
    path = Path(file_name)
    return f"{path if path.is_absolute() else (base / path).resolve()}:{builder}"


ENTRY_POINT_GROUP = "neuroloop.brains"
"""Entry-point group of installed brain builders (``setup.cfg``)."""


def installed_brains() -> dict[str, EntryPoint]:
    """Installed brain builders by name (the entry points of ``ENTRY_POINT_GROUP``)."""
    return {point.name: point for point in entry_points(group=ENTRY_POINT_GROUP)}


def spec_problem(spec: str) -> str | None:
    """What is wrong with a brain spec that can be told without building it, or ``None``.

    A name must be an installed brain; a ``file.py:builder`` must name an existing file (an
    absolute one: see ``absolute_spec``). ``module:builder`` specs are checked when built.
    """
    if FILE_SPEC_MARK in spec:
        file_name, _, builder = spec.rpartition(":")
        if not Path(file_name).is_file():
            return f"no builder file {file_name}"
        if not builder.isidentifier():
            return f"{builder!r} is not a function name"
        return None
    if ":" in spec or spec in installed_brains():
        return None
    return f"no installed brain {spec!r} (installed: {sorted(installed_brains())})"
