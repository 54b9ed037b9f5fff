"""The task a simulation config's ``Task`` section builds.

``Task.Name`` is an installed task (an entry point of the group ``neuroloop.tasks``: the
shipped ``reach``, ``freereach``, ``manipulate_block``, ``center_out``) or
``path/to/file.py:TaskClass`` / ``module:TaskClass``. ``Task.Options`` are the class's
``__init__`` arguments in the config's CamelCase (``SuccessDistance`` ->
``success_distance``); ``Task.RewardWeights`` its ``reward_weights``.
"""

from __future__ import annotations

import inspect
import re
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

from neuroloop.config import TaskConfig
from neuroloop.errors import ConfigError, OptionError
from neuroloop.modules import load_object

ENTRY_POINT_GROUP = "neuroloop.tasks"
"""Entry-point group of installed task classes (``setup.cfg``)."""

TASK_VERBS = ("sample_goal", "reward", "success")
"""Methods every task class has (``neuroloop.plugins.experiments.base.Task``)."""

REWARD_WEIGHTS = "reward_weights"
"""The ``__init__`` argument ``Task.RewardWeights`` fills."""


def installed_tasks() -> dict[str, EntryPoint]:
    """Installed task classes by name (the entry points of ``ENTRY_POINT_GROUP``)."""
    return {point.name: point for point in entry_points(group=ENTRY_POINT_GROUP)}


def task_class(spec: str, base: Path | None = None) -> type:
    """The task class a registered name, ``file.py:Class`` or ``module:Class`` names.

    Args:
        spec: The name or spec; a relative file is resolved against ``base``.
        base: Folder of the config that named the spec.

    Raises:
        ValueError: If the spec names no task class.
    """
    if ":" not in spec:
        point = installed_tasks().get(spec)
        if point is None:
            raise ValueError(
                f"[tasks] expected one of {sorted(installed_tasks())}, 'path/to/file.py:Class' "
                f"or 'module:Class'. Received: {spec!r}"
            )
        found = point.load()
    else:
        found = load_object(spec, base)
    if not (isinstance(found, type) and all(hasattr(found, verb) for verb in TASK_VERBS)):
        raise ValueError(
            f"[tasks] {spec}: expected a subclass of Task (a class with "
            f"{', '.join(TASK_VERBS)}). Received: {found!r:.100}"
        )
    return found


def option_name(key: str) -> str:
    """The ``__init__`` argument a config key sets: ``SuccessDistance`` -> ``success_distance``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key).lower()


def accepted_options(cls: type) -> set[str]:
    """The options ``cls(...)`` accepts: its ``__init__`` arguments and, where an ``__init__``
    passes ``**options`` on, those of the ``__init__`` it inherits."""
    accepted: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        parameters = inspect.signature(vars(klass)["__init__"]).parameters.values()
        named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        accepted |= {p.name for p in parameters if p.kind in named} - {"self", REWARD_WEIGHTS}
        if all(p.kind is not inspect.Parameter.VAR_KEYWORD for p in parameters):
            break
    return accepted


def build_task(section: TaskConfig, config_file: str, base: Path) -> Any:
    """The task a config's ``Task`` section describes.

    Args:
        section: The config's ``Task``.
        config_file: The config file, for errors.
        base: The config's folder, against which a relative task file is resolved.

    Raises:
        ConfigError: If the name names no task class, or an option or weight is unknown or
            invalid; the error names the file and the key.
    """
    try:
        cls = task_class(section.name, base)
    except ValueError as error:
        raise ConfigError(config_file, "Task.Name", "a task class", str(error)) from None
    accepted = accepted_options(cls)
    keys = {option_name(key): key for key in section.options}
    for option, key in keys.items():
        if option not in accepted:
            raise ConfigError(
                config_file,
                f"Task.Options.{key}",
                f"an option of {cls.__name__} ({', '.join(sorted(accepted)) or 'none'}, "
                "written in CamelCase)",
                f"{key}={section.options[key]!r}",
            )
    options = {option: section.options[key] for option, key in keys.items()}
    try:
        return cls(**options, reward_weights=dict(section.reward_weights))
    except OptionError as error:
        if error.key is not None:
            where, received = f"Task.RewardWeights.{error.key}", f"{error.value!r}"
        else:
            key = keys.get(error.option, error.option)
            where, received = f"Task.Options.{key}", f"{key}={error.value!r}"
        raise ConfigError(config_file, where, error.expected, received) from None
    except ValueError as error:
        raise ConfigError(config_file, "Task.Options", "valid task options", str(error)) from None
