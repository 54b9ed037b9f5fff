"""How config text is read and shown: the YAML loader, JSON paths, quoted values."""

from __future__ import annotations

import json
import re
from collections.abc import Hashable, Iterable
from typing import Any

import yaml

_MAX_SHOWN = 120
"""Characters of a received value quoted in an error message before it is cut."""

JsonPath = tuple[str | int, ...]
"""Keys and list indices from the document's root to a value."""


class YamlLoader(yaml.SafeLoader):
    """YAML's safe loader, but ``1e-3`` is a float (as in JSON) and a repeated key is an error."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        "while reading a mapping",
                        node.start_mark,
                        f"found the key {key_node.value!r} twice",
                        key_node.start_mark,
                    )
                seen.add(key_node.value)
        return super().construct_mapping(node, deep)


YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def format_path(path: Iterable[str | int]) -> str:
    """``("EngineConfigs", 1, "EngineTimestep")`` -> ``"EngineConfigs[1].EngineTimestep"``."""
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else f".{step}" if text else str(step)
    return text


def leaf(path: JsonPath) -> str:
    """The path from its last key on (``EngineEnvParams[1]``), or ``document`` for the root."""
    keys = [index for index, step in enumerate(path) if isinstance(step, str)]
    return format_path(path[keys[-1] :]) if keys else format_path(path) or "document"


def show(value: Any) -> str:
    """A value as compact JSON, cut to a readable length."""
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."
