"""Read a JSON or YAML config file (a repeated key is an error), override and validate it."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from neuroloop.config.overrides import apply_override, blame_override
from neuroloop.config.schema import fill_defaults, load_schema, validate
from neuroloop.config.text import YamlLoader, format_path, show
from neuroloop.errors import ConfigError

_SUFFIXES = (".json", ".yaml", ".yml")


def load_document(
    path: str | Path,
    schema: str,
    overrides: Sequence[str] = (),
    prepare: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[dict[str, Any], Callable[[ConfigError], ConfigError]]:
    """Read a JSON or YAML file, apply ``-o`` overrides, validate it and fill its defaults.

    The common first half of loading a simulation config or a training recipe.

    Args:
        path: A ``.json``, ``.yaml`` or ``.yml`` file.
        schema: The schema's name in ``neuroloop/schemas`` (``"simulation"``, ``"recipe"``).
        overrides: ``PATH=VALUE`` strings, as for ``load_config``.
        prepare: Called with the document after the overrides, before validation; it may
            raise ConfigError or change the document.

    Returns:
        The document, and a function that names the responsible override in a later
        ConfigError about the document (if an override set the offending value).

    Raises:
        ConfigError: If the file cannot be read or parsed, an override does not fit, or the
            document breaks the schema.
    """
    if isinstance(overrides, str):
        raise TypeError(f"overrides: expected a sequence of strings. Received: {overrides!r}")
    label = str(path)
    document = _read(Path(path), label)
    origins = {format_path(apply_override(document, text)): text for text in overrides}

    def blame(error: ConfigError) -> ConfigError:
        return blame_override(error, origins)

    try:
        if prepare is not None:
            prepare(document)
        validate(document, label, schema)
    except ConfigError as error:
        raise blame(error) from None
    fill_defaults(load_schema(schema), document, schema)
    return document, blame


class _DuplicateKeyError(ValueError):
    """A JSON object repeats a key."""


def _unique_json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Build a JSON object, refusing a key that occurs twice (json keeps the last silently)."""
    document = dict(pairs)
    if len(document) != len(pairs):
        repeated = next(key for key, _ in pairs if sum(k == key for k, _ in pairs) > 1)
        raise _DuplicateKeyError(repeated)
    return document


def _read(file: Path, label: str) -> dict[str, Any]:
    """Parse ``file`` by its suffix; the top level must be an object."""
    if file.suffix.lower() not in _SUFFIXES:
        raise ConfigError(label, "", "a .json, .yaml or .yml file", f"suffix={file.suffix!r}")
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(label, "", "an existing config file", f"path={file.resolve()}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(label, "", "a readable UTF-8 text file", f"error={error}") from None
    if file.suffix.lower() == ".json":
        try:
            document = json.loads(text, object_pairs_hook=_unique_json_object)
        except json.JSONDecodeError as error:
            where = f"line {error.lineno}, column {error.colno}"
            raise ConfigError(label, where, "valid JSON", error.msg) from None
        except _DuplicateKeyError as error:
            raise ConfigError(
                label, "", "each key at most once per object", f"{show(error.args[0])} twice"
            ) from None
    else:
        try:
            document = yaml.load(text, Loader=YamlLoader)
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ConfigError(label, where, "valid YAML", str(error.problem)) from None
        except yaml.YAMLError as error:
            raise ConfigError(label, "", "valid YAML", str(error)) from None
    if not isinstance(document, dict):
        raise ConfigError(
            label, "", "an object of simulation keys at the top level", show(document)
        )
    return document
