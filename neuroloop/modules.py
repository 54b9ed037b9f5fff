"""Load user code that configs name: ``file.py``, ``file.py:name`` or ``module:name``.

One loader for engine classes, brain builders, task classes, function files and NRP-core
engine scripts. A file runs in a module of its own named ``neuroloop_file_<stem>_<hash>``
(the hash of its resolved path), with its folder on ``sys.path`` so it can import its
neighbours.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from neuroloop.errors import UserCodeError

PY_SUFFIX = ".py"


def load_file(path: str | Path) -> ModuleType:
    """Execute a Python file in a fresh module and return the module.

    Raises:
        ValueError: If the file does not exist or Python cannot load it.
        UserCodeError: If running the file raised (a syntax error, a failing import, ...).
    """
    path = Path(path).resolve()
    if not path.is_file() or path.suffix != PY_SUFFIX:
        raise ValueError(f"expected an existing .py file. Received: {path}")
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:12]
    module_name = f"neuroloop_file_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ValueError(f"expected a Python file. Received: {path}")
    directory = str(path.parent)
    if directory not in sys.path:
        sys.path.append(directory)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[module_name]
        raise UserCodeError(str(path), error) from error
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def split_spec(spec: str) -> tuple[str, str]:
    """``"target:name"`` -> ``(target, name)``; ``name`` is ``""`` when absent."""
    target, _, name = spec.rpartition(":") if ":" in spec else (spec, "", "")
    return target, name


def load_target(target: str, base: Path | None = None) -> ModuleType:
    """The module a spec's target names: a ``.py`` file (relative to ``base``) or a module.

    Raises:
        ValueError: If the file is missing or the module cannot be imported.
    """
    if target.endswith(PY_SUFFIX):
        path = Path(target)
        if not path.is_absolute() and base is not None:
            path = base / path
        return load_file(path)
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as error:
        raise ValueError(f"expected an importable module. Received: {error}") from None


def load_object(spec: str, base: Path | None = None) -> Any:
    """The object ``"file.py:name"`` or ``"module:name"`` names.

    Args:
        spec: ``target:name``; a relative file is resolved against ``base``.
        base: Folder of the config that named the spec (the working directory if ``None``).

    Raises:
        ValueError: If the spec has no ``:name``, its target cannot be loaded, or the
            target does not define ``name``.
    """
    target, name = split_spec(spec)
    if not target or not name.isidentifier():
        raise ValueError(f"expected 'path/to/file.py:name' or 'module:name'. Received: {spec!r}")
    module = load_target(target, base)
    if not hasattr(module, name):
        raise ValueError(f"expected {target} to define {name}. Received: no {name} in {target}")
    return getattr(module, name)


def import_extra(module: str, extra: str, context: str) -> ModuleType:
    """Import ``module``, which neuroloop's optional dependency group ``extra`` installs.

    Raises:
        ValueError: Naming the extra to install when ``module`` is missing.
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ValueError(
            f"{context}: expected the {module} package (pip install 'neuroloop[{extra}]'). "
            f"Received: it is not installed"
        ) from None
