"""``-o PATH=VALUE`` overrides: parse the PATH's steps, set the VALUE, blame the override."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

from neuroloop.config.text import JsonPath, YamlLoader, format_path, show
from neuroloop.errors import ConfigError

_Step = str | int | tuple[str, str]
"""One step of an override path: a key, a list index, or a ``(key, value)`` selector."""

_OVERRIDE_PART = re.compile(
    r"^(?P<key>[^\[\]:]*)(?::(?P<value>[^\[\]]+))?(?P<indices>(?:\[\d+\])*)$"
)
_YAML_NULLS = frozenset({"null", "Null", "NULL", "~"})


def apply_override(document: dict[str, Any], text: str) -> JsonPath:
    """Set the value an override names; return the JSON path it set."""
    label = f"<override {text!r}>"
    name, _, raw = text.partition("=")
    steps = _override_steps(name) if "=" in text else None
    if not steps:
        raise ConfigError(
            label, "", "PATH=VALUE, e.g. EngineConfigs[0].EngineTimestep=0.02", repr(text)
        )
    node: Any = document
    where: list[str | int] = []
    for step in steps[:-1]:
        slot = _slot(node, step, where, label, create=False)
        where.append(slot)
        node = node[slot]
    slot = _slot(node, steps[-1], where, label, create=True)
    node[slot] = _override_value(raw)
    return (*where, slot)


def _override_steps(name: str) -> list[_Step] | None:
    """Split an override's PATH into steps, or return None if it is malformed."""
    steps: list[_Step] = []
    for part in name.strip().split("."):
        match = _OVERRIDE_PART.match(part)
        if match is None or not (match["key"] or match["indices"]):
            return None
        if match["value"] is not None:
            if not match["key"]:
                return None
            steps.append((match["key"], match["value"]))
        elif match["key"]:
            steps.append(match["key"])
        steps.extend(int(index) for index in re.findall(r"\d+", match["indices"]))
    return steps


def _slot(node: Any, step: _Step, where: list[str | int], label: str, create: bool) -> str | int:
    """Return the key or index ``step`` names in ``node``; ``create`` allows a new key."""
    here = format_path(where) or "the document"
    match step:
        case str():
            if not isinstance(node, dict):
                raise ConfigError(label, format_path(where), "an object", show(node))
            if step not in node and not create:
                known = ", ".join(map(str, node)) or "none"
                raise ConfigError(
                    label,
                    format_path((*where, step)),
                    f"an existing key of {here} ({known})",
                    f"key={step!r}",
                )
            return step
        case int():
            if not isinstance(node, list) or step >= len(node):
                size = f"a list of {len(node)}" if isinstance(node, list) else show(node)
                raise ConfigError(
                    label, format_path(where), f"a list with an element [{step}]", size
                )
            return step
        case (key, value):
            matches = [
                index
                for index, item in enumerate(node if isinstance(node, list) else ())
                if isinstance(item, dict) and key in item and str(item[key]) == value
            ]
            if len(matches) != 1:
                present = (
                    [str(item[key]) for item in node if isinstance(item, dict) and key in item]
                    if isinstance(node, list)
                    else []
                )
                raise ConfigError(
                    label,
                    format_path(where),
                    f"exactly one element of {here} with {key}={value!r} "
                    f"({key} values: {', '.join(present) or 'none'})",
                    f"{len(matches)} matches",
                )
            return matches[0]
    raise AssertionError(step)


def _override_value(raw: str) -> Any:
    """Read an override's VALUE as a YAML scalar or collection; anything else stays a string."""
    if not raw.strip():
        return raw
    try:
        value = yaml.load(raw, Loader=YamlLoader)
    except yaml.YAMLError:
        return raw
    if value is None and raw.strip() not in _YAML_NULLS:
        return raw
    return value


def blame_override(error: ConfigError, origins: Mapping[str, str]) -> ConfigError:
    """Name the override in ``error`` if the offending value is one an override set."""
    for overridden, text in origins.items():
        if error.path == overridden or error.path.startswith((f"{overridden}.", f"{overridden}[")):
            file = f"{error.file} (override {text!r})"
            return ConfigError(file, error.path, error.expected, error.received)
    return error
