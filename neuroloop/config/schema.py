"""JSON Schema validation with one-line errors, key suggestions and default filling.

Besides the bundled schemas, an engine module ``X.py`` may declare the JSON Schema of its
``EngineExtraConfigs`` in a sibling file ``X.schema.json``: the config loader checks an engine's
settings against it without importing the engine, and an engine initialized without the loader
calls :func:`engine_extra_configs` with its own ``__file__``.
"""

from __future__ import annotations

import copy
import difflib
import functools
import importlib.util
import inspect
import json
import math
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from neuroloop.config.text import JsonPath, format_path, leaf, show
from neuroloop.errors import ConfigError

SIMULATION_SCHEMA = "simulation"
"""Name of the simulation config schema in ``neuroloop/schemas``."""
SCHEMA_SUFFIX = ".schema.json"
EXTRA_CONFIGS = "EngineExtraConfigs"

_TYPE_NAMES = {
    "string": "a string",
    "number": "a number",
    "integer": "an integer",
    "boolean": "a boolean",
    "array": "an array",
    "object": "an object",
    "null": "null",
}


@functools.cache
def load_schema(name: str) -> dict[str, Any]:
    """A schema, parsed once: the file ``name`` if it ends in ``.schema.json`` (an engine's),
    else the bundled ``neuroloop/schemas/NAME.schema.json``."""
    if name.endswith(SCHEMA_SUFFIX):
        text = Path(name).read_text(encoding="utf-8")
    else:
        text = (resources.files("neuroloop") / "schemas" / f"{name}{SCHEMA_SUFFIX}").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


def _is_finite_number(checker: Any, instance: Any) -> bool:
    number = jsonschema.Draft202012Validator.TYPE_CHECKER.is_type(instance, "number")
    return bool(number and math.isfinite(instance))


_FiniteValidator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("number", _is_finite_number),
)
"""Draft 2020-12, except that NaN and infinities are not numbers."""


@functools.cache
def _validator(name: str) -> jsonschema.protocols.Validator:
    validator: jsonschema.protocols.Validator = _FiniteValidator(load_schema(name))
    return validator


def validate(document: Any, label: str, name: str, where: JsonPath = ()) -> None:
    """Raise ConfigError for the most relevant schema violation, if there is one.

    Args:
        document: What to check against the schema.
        label: The file (or context) the error names.
        name: The schema, as for :func:`load_schema`.
        where: The JSON path of ``document`` in its file; errors name paths below it.
    """
    error = jsonschema.exceptions.best_match(_validator(name).iter_errors(document))
    if error is not None:
        path, expected, received = _explain(error, where)
        raise ConfigError(label, format_path(path), expected, received)


def _explain(error: jsonschema.ValidationError, where: JsonPath) -> tuple[JsonPath, str, str]:
    """Say where a schema violation is, what the schema expects there, and what is there."""
    path: JsonPath = (*where, *error.absolute_path)
    schema: Mapping[str, Any] = error.schema if isinstance(error.schema, Mapping) else {}
    instance: Any = error.instance
    keyword_value: Any = error.validator_value
    reason = ""
    if "then" in error.absolute_schema_path and "description" in schema:
        reason = f" ({schema['description']})"
    if error.validator == "additionalProperties":
        allowed = list(schema.get("properties", {}))
        patterns = list(schema.get("patternProperties", {}))
        key = next(
            key
            for key in instance
            if key not in allowed and not any(re.search(p, key) for p in patterns)
        )
        # Patterns of alternatives, e.g. ^(touch|goal)$, read as key names.
        allowed += [n for p in patterns for n in p.strip("^$").strip("()").split("|")]
        hint = _closest(str(key), allowed)
        guess = f" (did you mean {hint!r}?)" if hint else ""
        return (
            (*path, key),
            f"a known key{guess}. Known keys: {', '.join(allowed)}",
            f"{key}={show(instance[key])}",
        )
    if error.validator == "required":
        missing = next(key for key in keyword_value if key not in instance)
        present = ", ".join(map(str, instance)) or "none"
        closed = schema.get("additionalProperties") is False  # other keys are unknown ones
        unknown = [
            str(key) for key in instance if closed and key not in schema.get("properties", {})
        ]
        typo = _closest(missing, unknown)
        guess = f" (is {typo!r} a misspelling of it?)" if typo else ""
        return (
            (*path, missing),
            f"the required key {missing}{reason}{guess}",
            f"no {missing} (keys present: {present})",
        )
    received = f"{leaf(path)}={show(instance)}"
    if error.validator == "enum":
        hint = _closest(instance, [str(option) for option in keyword_value])
        guess = f" (did you mean {show(hint)}?)" if hint else ""
        return path, f"one of {', '.join(map(show, keyword_value))}{guess}", received
    if error.validator == "const":
        return path, show(keyword_value) + reason, received
    return path, _describe(schema, error) + reason, received


BOUNDS = {"exclusiveMinimum": ">", "minimum": ">=", "exclusiveMaximum": "<", "maximum": "<="}
"""JSON Schema's numeric bounds and how a message writes them."""


def _describe(schema: Mapping[str, Any], error: jsonschema.ValidationError) -> str:
    """Describe the values ``schema`` accepts, from its type, bounds and pattern."""
    kinds = schema.get("type", [])
    kinds = [kinds] if isinstance(kinds, str) else kinds
    if not kinds:
        return error.message
    nullable = "null" in kinds and len(kinds) > 1
    kinds = [kind for kind in kinds if not (nullable and kind == "null")]
    text = " or ".join(_TYPE_NAMES[kind] for kind in kinds)
    bounds = [f"{sign} {schema[keyword]}" for keyword, sign in BOUNDS.items() if keyword in schema]
    if bounds:
        text += " " + " and ".join(bounds)
    low, high = schema.get("minItems"), schema.get("maxItems")
    if low is not None and low == high:
        text += f" of exactly {low} element(s)"
    elif low is not None:
        text += f" with at least {low} element(s)"
    if high is not None and low != high:
        text += f" with at most {high} element(s)"
    if "minLength" in schema:
        text = f"a non-empty {text[2:]}" if schema["minLength"] == 1 else text
    if "pattern" in schema:
        text += f" matching {schema['pattern']!r}"
    if nullable:
        text += " or null"
    if "examples" in schema:
        text += f", e.g. {schema['examples'][0]!r}"
    return text


def _closest(word: object, options: Sequence[str]) -> str | None:
    """The option ``word`` was most likely meant to be, or None if none is close."""
    if not isinstance(word, str):
        return None
    by_lower = {option.lower(): option for option in options}
    if word.lower() in by_lower:
        return by_lower[word.lower()]
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[close[0]] if close else None


def fill_defaults(schema: Mapping[str, Any], instance: Any, name: str) -> None:
    """Insert the schema's ``default`` for every absent key, following refs, items and if/then."""
    if "$ref" in schema:
        fill_defaults(_resolve_ref(schema["$ref"], name), instance, name)
    if isinstance(instance, dict):
        for key, subschema in schema.get("properties", {}).items():
            if key not in instance and "default" in subschema:
                instance[key] = copy.deepcopy(subschema["default"])
            if key in instance:
                fill_defaults(subschema, instance[key], name)
    if isinstance(instance, list) and "items" in schema:
        for item in instance:
            fill_defaults(schema["items"], item, name)
    for subschema in schema.get("allOf", ()):
        fill_defaults(subschema, instance, name)
    if "if" in schema:
        condition = _validator(name).evolve(schema=schema["if"])
        branch = "then" if condition.is_valid(instance) else "else"
        if branch in schema:
            fill_defaults(schema[branch], instance, name)


def _resolve_ref(ref: str, name: str) -> Mapping[str, Any]:
    """Follow a local ``#/$defs/...`` reference into the schema."""
    node: Any = load_schema(name)
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    resolved: Mapping[str, Any] = node
    return resolved


def engine_module_file(engine_class: str) -> Path | None:
    """The file of the module an ``EngineClass`` names, found without running it.

    ``file.py[:Class]`` is the file itself; for ``module:Class`` only the module's parent
    packages are imported. None if the module cannot be found (the engine's launch reports it).
    """
    target = engine_class.partition(":")[0]
    if target.endswith(".py"):
        return Path(target)
    try:
        spec = importlib.util.find_spec(target)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None or not spec.has_location:
        return None
    return Path(spec.origin)


def check_engine_extra(extra: Any, module_file: Path, label: str, where: JsonPath) -> None:
    """Validate an engine's ``EngineExtraConfigs`` against the schema beside its module and fill
    the schema's defaults into it; nothing happens if the module has no ``X.schema.json``.

    Args:
        extra: The engine's ``EngineExtraConfigs``; defaults are inserted in place.
        module_file: The engine's module ``X.py``.
        label: The file (or context) errors name.
        where: The JSON path of ``extra`` in its file.

    Raises:
        ConfigError: For the most relevant violation of the schema.
    """
    schema_file = module_file.with_suffix(SCHEMA_SUFFIX)
    if not schema_file.is_file():
        return
    name = str(schema_file.resolve())
    validate(extra, label, name, where)
    fill_defaults(load_schema(name), extra, name)


def engine_extra_configs(
    engine: type | str | Path, extra: Mapping[str, Any], context: str = ""
) -> dict[str, Any]:
    """An engine's ``EngineExtraConfigs``, checked against its module's sibling schema and with
    the schema's defaults filled; unchanged (a copy) if the module has none.

    For an engine initialized without the config loader; call it at the top of ``initialize``
    with the engine module's ``__file__``.

    Args:
        engine: The engine class, or its module's file.
        extra: The ``EngineExtraConfigs`` the engine received; not modified.
        context: Starts each error message, e.g. ``"[env]"``.

    Raises:
        ValueError: ``"[env] EngineExtraConfigs.Worlds: expected 1. Received: Worlds=2"``.
    """
    module_file = Path(inspect.getfile(engine) if isinstance(engine, type) else engine)
    checked = copy.deepcopy(dict(extra))
    try:
        check_engine_extra(checked, module_file, context, (EXTRA_CONFIGS,))
    except ConfigError as error:
        where = f"{context} {error.path}".strip()
        raise ValueError(
            f"{where}: expected {error.expected}. Received: {error.received}"
        ) from None
    return checked
