"""Load a simulation config (JSON or YAML, NRP-core keys), check it, and freeze it.

::

    config = load_config(
        "simulation_configs/reach.json",
        overrides=["EngineConfigs.EngineName:physics.EngineTimestep=0.002"],
    )
    config.engine("physics").timestep_ns  # 2_000_000

The document is checked against ``schemas/simulation.schema.json`` (which also supplies every
default), then for what a schema cannot say (unique names, existing files). Every mistake
raises ``ConfigError`` naming the file, the JSON path of the key, what was expected and what
was received.
"""

from __future__ import annotations

import copy
import difflib
import functools
import json
import math
import re
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import jsonschema
import yaml

from neuroloop.errors import ConfigError

SIMULATION_SCHEMA = "simulation"
"""Name of the simulation config schema in ``neuroloop/schemas``."""

_NS_PER_S = 1_000_000_000
_MAX_SHOWN = 120
"""Characters of a received value quoted in an error message before it is cut."""
_SUFFIXES = (".json", ".yaml", ".yml")
_ENGINE_FILE_KEYS = ("PythonFileName", "WorldFileName")
_TYPE_NAMES = {
    "string": "a string",
    "number": "a number",
    "integer": "an integer",
    "boolean": "a boolean",
    "array": "an array",
    "object": "an object",
    "null": "null",
}

JsonPath = tuple[str | int, ...]
"""Keys and list indices from the document's root to a value."""
_Step = str | int | tuple[str, str]
"""One step of an override path: a key, a list index, or a ``(key, value)`` selector."""


def seconds_to_ns(seconds: float, what: str) -> int:
    """Convert a duration in seconds to whole nanoseconds, rounding to the nearest one.

    The decimal the user wrote is converted, not its binary approximation, so 0.01 s is
    exactly 10_000_000 ns.

    Args:
        seconds: A finite duration >= 0.
        what: What the duration is, named in the error (e.g. ``"EngineTimestep"``).

    Raises:
        ValueError: If ``seconds`` is negative, NaN or infinite.
    """
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(
            f"{what}: expected a finite number of seconds >= 0. Received: {what}={seconds!r}"
        )
    return int((Decimal(repr(float(seconds))) * _NS_PER_S).to_integral_value())


@dataclass(frozen=True)
class EngineConfig:
    """One entry of ``EngineConfigs``, with defaults filled and file paths absolute."""

    name: str
    """``EngineName``: unique in the simulation; functions address datapacks by it."""
    type: str
    """``EngineType``, e.g. ``"mujoco"`` or ``"python_json"``."""
    timestep_ns: int
    """``EngineTimestep`` in nanoseconds (at least 1)."""
    engine_class: str
    """``EngineClass`` for ``neuroloop.engine.load_engine_class``; a file form is absolute."""
    python_file: Path | None
    """``PythonFileName``: absolute path of the NRP-core engine script, if any."""
    world_file: Path | None
    """``WorldFileName``: absolute path of the world or model file, if any."""
    proc_cmd: str
    """``EngineProcCmd``; empty means neuroloop's own engine server."""
    proc_start_params: tuple[str, ...]
    """``EngineProcStartParams``: extra command-line arguments."""
    env_params: tuple[tuple[str, str], ...]
    """``EngineEnvParams`` as ``(KEY, VALUE)`` pairs, in config order."""
    launch_type: str
    """``EngineLaunchCommand.LaunchType``: ``"BasicFork"`` or ``"EmptyLaunchCommand"``."""
    command_timeout_s: float
    """``EngineCommandTimeout``: wall-clock seconds to wait for one call."""
    launch_timeout_s: float
    """``EngineLaunchTimeout``: wall-clock seconds to wait for health checks after launch."""
    server_address: str
    """``ServerAddress``: ``host:port`` or ``unix:/path``; empty means pick a loopback port."""
    extra: Mapping[str, Any]
    """``EngineExtraConfigs``, as written (paths in it are not resolved)."""
    section: Mapping[str, Any]
    """The engine's config object sent to it at initialize: defaults filled, file paths
    absolute, plus ``ConfigDirectory`` (the config file's absolute directory). Read-only;
    ``dict(section)`` gives a JSON-serialisable copy."""


@dataclass(frozen=True)
class FunctionConfig:
    """A transceiver, preprocessing or status function file."""

    name: str
    """``Name`` of the function."""
    file: Path
    """``FileName``, absolute."""
    is_active: bool
    """``IsActive``: inactive functions are loaded but not called."""


@dataclass(frozen=True)
class ExternalProcessConfig:
    """One entry of ``ExternalProcesses``."""

    name: str
    """``Name``: unique among external processes; errors and logs use it."""
    proc_cmd: str
    """``ProcCmd``: the command that starts the process."""
    proc_start_params: tuple[str, ...]
    """``ProcStartParams``: command-line arguments."""
    env_params: tuple[tuple[str, str], ...]
    """``ProcEnvParams`` as ``(KEY, VALUE)`` pairs, in config order."""


@dataclass(frozen=True)
class TaskConfig:
    """``Task``: the task the simulation's functions run, and its options."""

    name: str
    """``Name``: a registered task name, ``file.py:Class`` (the file absolute) or
    ``module:Class``."""
    options: Mapping[str, Any]
    """``Options``: the task class's ``__init__`` arguments, keys in CamelCase."""
    reward_weights: Mapping[str, float]
    """``RewardWeights``: weights of reward terms by name."""


@dataclass(frozen=True)
class SimulationConfig:
    """A validated simulation config."""

    path: Path
    """Absolute path of the config file."""
    name: str
    """``SimulationName``."""
    description: str
    """``SimulationDescription``."""
    timeout_ns: int
    """``SimulationTimeout`` in simulated nanoseconds; 0 means no timeout."""
    timestep_ns: int
    """``SimulationTimestep`` in nanoseconds: how far the loop advances per iteration."""
    loop: str
    """``SimulationLoop``, e.g. ``"FTILoop"``."""
    engines: tuple[EngineConfig, ...]
    """``EngineConfigs``, in config order."""
    functions: tuple[FunctionConfig, ...]
    """``DataPackProcessingFunctions``, in config order."""
    status_function: FunctionConfig | None
    """``StatusFunction``, if any."""
    external_processes: tuple[ExternalProcessConfig, ...]
    """``ExternalProcesses``, in config order."""
    document: Mapping[str, Any]
    """The whole document after overrides, with defaults filled and file paths absolute. It
    validates against the schema, so it can be saved and loaded again."""
    task: TaskConfig | None = None
    """``Task``, if any."""

    @property
    def directory(self) -> Path:
        """The config file's directory, against which relative paths were resolved."""
        return self.path.parent

    def engine(self, name: str) -> EngineConfig:
        """Return the engine called ``name``.

        Raises:
            KeyError: If no engine has that name; the message lists the names there are.
        """
        for engine in self.engines:
            if engine.name == name:
                return engine
        names = ", ".join(engine.name for engine in self.engines)
        raise KeyError(
            f"{self.path}: expected the name of an engine ({names}). Received: name={name!r}"
        )


def load_document(
    path: str | Path, schema: str, overrides: Sequence[str] = ()
) -> tuple[dict[str, Any], Callable[[ConfigError], ConfigError]]:
    """Read a JSON or YAML file, apply ``-o`` overrides, validate it and fill its defaults.

    The common first half of loading a simulation config or a training recipe.

    Args:
        path: A ``.json``, ``.yaml`` or ``.yml`` file.
        schema: The schema's name in ``neuroloop/schemas`` (``"simulation"``, ``"recipe"``).
        overrides: ``PATH=VALUE`` strings, as for ``load_config``.

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
    origins = {_format_path(_apply_override(document, text)): text for text in overrides}

    def blame(error: ConfigError) -> ConfigError:
        return _blame_override(error, origins)

    try:
        _validate(document, label, schema)
    except ConfigError as error:
        raise blame(error) from None
    _fill_defaults(_schema(schema), document, schema)
    return document, blame


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> SimulationConfig:
    """Read, override, validate and freeze a simulation config.

    Args:
        path: A ``.json``, ``.yaml`` or ``.yml`` file.
        overrides: ``PATH=VALUE`` strings applied before validation, like NRPCoreSim's
            ``-o``. PATH steps are keys, list indices and ``Key:Value`` selectors of the list
            element whose ``Key`` equals ``Value``: ``"SimulationTimeout=5"``,
            ``"EngineConfigs[0].EngineTimestep=0.02"``,
            ``"EngineConfigs.EngineName:physics.EngineTimestep=0.02"``. VALUE is read as a YAML
            (or JSON) value: ``5``, ``0.02``, ``true``, ``[1, 2]``, ``{"a": 1}``; anything
            else stays a string. Only the last key may be new.

    Raises:
        ConfigError: If the file cannot be read or parsed, an override does not fit the
            document, the result breaks the schema, two engines or functions share a name,
            or a referenced file does not exist.
    """
    file = Path(path)
    label = str(path)
    document, blame = load_document(path, SIMULATION_SCHEMA, overrides)
    try:
        _check_unique_names(document, label)
        _resolve_files(document, file.resolve().parent, label)
        return _build(document, file.resolve(), label)
    except ConfigError as error:
        raise blame(error) from None


# --- reading -----------------------------------------------------------------------------


class _YamlLoader(yaml.SafeLoader):
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


_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


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
                label, "", "each key at most once per object", f"{_show(error.args[0])} twice"
            ) from None
    else:
        try:
            document = yaml.load(text, Loader=_YamlLoader)
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ConfigError(label, where, "valid YAML", str(error.problem)) from None
        except yaml.YAMLError as error:
            raise ConfigError(label, "", "valid YAML", str(error)) from None
    if not isinstance(document, dict):
        raise ConfigError(
            label, "", "an object of simulation keys at the top level", _show(document)
        )
    return document


# --- overrides ---------------------------------------------------------------------------

_OVERRIDE_PART = re.compile(
    r"^(?P<key>[^\[\]:]*)(?::(?P<value>[^\[\]]+))?(?P<indices>(?:\[\d+\])*)$"
)
_YAML_NULLS = frozenset({"null", "Null", "NULL", "~"})


def _apply_override(document: dict[str, Any], text: str) -> JsonPath:
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
    here = _format_path(where) or "the document"
    match step:
        case str():
            if not isinstance(node, dict):
                raise ConfigError(label, _format_path(where), "an object", _show(node))
            if step not in node and not create:
                known = ", ".join(map(str, node)) or "none"
                raise ConfigError(
                    label,
                    _format_path((*where, step)),
                    f"an existing key of {here} ({known})",
                    f"key={step!r}",
                )
            return step
        case int():
            if not isinstance(node, list) or step >= len(node):
                size = f"a list of {len(node)}" if isinstance(node, list) else _show(node)
                raise ConfigError(
                    label, _format_path(where), f"a list with an element [{step}]", size
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
                    _format_path(where),
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
        value = yaml.load(raw, Loader=_YamlLoader)
    except yaml.YAMLError:
        return raw
    if value is None and raw.strip() not in _YAML_NULLS:
        return raw
    return value


# --- validation --------------------------------------------------------------------------


@functools.cache
def _schema(name: str) -> dict[str, Any]:
    text = (resources.files("neuroloop") / "schemas" / f"{name}.schema.json").read_text()
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
    validator: jsonschema.protocols.Validator = _FiniteValidator(_schema(name))
    return validator


def _validate(document: dict[str, Any], label: str, name: str) -> None:
    """Raise ConfigError for the most relevant schema violation, if there is one."""
    error = jsonschema.exceptions.best_match(_validator(name).iter_errors(document))
    if error is not None:
        path, expected, received = _explain(error)
        raise ConfigError(label, _format_path(path), expected, received)


def _explain(error: jsonschema.ValidationError) -> tuple[JsonPath, str, str]:
    """Say where a schema violation is, what the schema expects there, and what is there."""
    path: JsonPath = tuple(error.absolute_path)
    schema: Mapping[str, Any] = error.schema if isinstance(error.schema, Mapping) else {}
    instance: Any = error.instance
    keyword_value: Any = error.validator_value
    reason = ""
    if "then" in error.absolute_schema_path and "description" in schema:
        reason = f" ({schema['description']})"
    if error.validator == "additionalProperties":
        allowed = list(schema.get("properties", {}))
        key = next(key for key in instance if key not in allowed)
        hint = _closest(str(key), allowed)
        guess = f" (did you mean {hint!r}?)" if hint else ""
        return (
            (*path, key),
            f"a known key{guess}. Known keys: {', '.join(allowed)}",
            f"{key}={_show(instance[key])}",
        )
    if error.validator == "required":
        missing = next(key for key in keyword_value if key not in instance)
        present = ", ".join(map(str, instance)) or "none"
        return (
            (*path, missing),
            f"the required key {missing}{reason}",
            f"no {missing} (keys present: {present})",
        )
    received = f"{_leaf(path)}={_show(instance)}"
    if error.validator == "enum":
        hint = _closest(instance, [str(option) for option in keyword_value])
        guess = f" (did you mean {_show(hint)}?)" if hint else ""
        return path, f"one of {', '.join(map(_show, keyword_value))}{guess}", received
    return path, _describe(schema, error) + reason, received


def _describe(schema: Mapping[str, Any], error: jsonschema.ValidationError) -> str:
    """Describe the values ``schema`` accepts, from its type, bounds and pattern."""
    kinds = schema.get("type", [])
    kinds = [kinds] if isinstance(kinds, str) else kinds
    if not kinds:
        return error.message
    text = " or ".join(_TYPE_NAMES[kind] for kind in kinds)
    if "exclusiveMinimum" in schema:
        text += f" > {schema['exclusiveMinimum']}"
    if "minimum" in schema:
        text += f" >= {schema['minimum']}"
    if "minItems" in schema:
        text += f" with at least {schema['minItems']} element(s)"
    if "minLength" in schema:
        text = f"a non-empty {text[2:]}" if schema["minLength"] == 1 else text
    if "pattern" in schema:
        text += f" matching {schema['pattern']!r}"
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


def _check_unique_names(document: Mapping[str, Any], label: str) -> None:
    """Engines, functions and external processes must each have distinct names."""
    for section, key in (
        ("EngineConfigs", "EngineName"),
        ("DataPackProcessingFunctions", "Name"),
        ("ExternalProcesses", "Name"),
    ):
        first: dict[str, int] = {}
        for index, item in enumerate(document.get(section, ())):
            name = item[key]
            if name in first:
                raise ConfigError(
                    label,
                    _format_path((section, index, key)),
                    f"a unique {key}",
                    f"{key}={_show(name)}, already used by {section}[{first[name]}]",
                )
            first[name] = index


# --- defaults, files, dataclasses ----------------------------------------------------------


def _fill_defaults(schema: Mapping[str, Any], instance: Any, name: str) -> None:
    """Insert the schema's ``default`` for every absent key, following refs, items and if/then."""
    if "$ref" in schema:
        _fill_defaults(_resolve_ref(schema["$ref"], name), instance, name)
    if isinstance(instance, dict):
        for key, subschema in schema.get("properties", {}).items():
            if key not in instance and "default" in subschema:
                instance[key] = copy.deepcopy(subschema["default"])
            if key in instance:
                _fill_defaults(subschema, instance[key], name)
    if isinstance(instance, list) and "items" in schema:
        for item in instance:
            _fill_defaults(schema["items"], item, name)
    for subschema in schema.get("allOf", ()):
        _fill_defaults(subschema, instance, name)
    if "if" in schema:
        condition = _validator(name).evolve(schema=schema["if"])
        branch = "then" if condition.is_valid(instance) else "else"
        if branch in schema:
            _fill_defaults(schema[branch], instance, name)


def _resolve_ref(ref: str, name: str) -> Mapping[str, Any]:
    """Follow a local ``#/$defs/...`` reference into the schema."""
    node: Any = _schema(name)
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    resolved: Mapping[str, Any] = node
    return resolved


def _resolve_files(document: dict[str, Any], directory: Path, label: str) -> None:
    """Make every file path in the document absolute, checking that the file exists."""
    where: JsonPath
    for index, engine in enumerate(document["EngineConfigs"]):
        for key in _ENGINE_FILE_KEYS:
            if engine[key] is not None:
                engine[key] = _existing_file(
                    engine[key], directory, label, ("EngineConfigs", index, key)
                )
        target, colon, class_name = engine["EngineClass"].partition(":")
        if target.endswith(".py"):
            where = ("EngineConfigs", index, "EngineClass")
            engine["EngineClass"] = (
                _existing_file(target, directory, label, where) + colon + class_name
            )
    for index, function in enumerate(document["DataPackProcessingFunctions"]):
        where = ("DataPackProcessingFunctions", index, "FileName")
        function["FileName"] = _existing_file(function["FileName"], directory, label, where)
    if document["StatusFunction"] is not None:
        status = document["StatusFunction"]
        where = ("StatusFunction", "FileName")
        status["FileName"] = _existing_file(status["FileName"], directory, label, where)
    task = document.get("Task")
    if task is not None and ".py:" in task["Name"]:
        target, _, class_name = task["Name"].rpartition(":")
        resolved = _existing_file(target, directory, label, ("Task", "Name"))
        task["Name"] = f"{resolved}:{class_name}"


def _existing_file(value: str, directory: Path, label: str, where: JsonPath) -> str:
    """Resolve ``value`` against ``directory``; raise ConfigError if no such file exists."""
    resolved = (directory / Path(value).expanduser()).resolve()
    if not resolved.is_file():
        raise ConfigError(
            label,
            _format_path(where),
            f"an existing file (relative paths start at the config's directory {directory})",
            f"{_leaf(where)}={_show(value)}, resolved to {resolved}",
        )
    return str(resolved)


def _build(document: dict[str, Any], path: Path, label: str) -> SimulationConfig:
    """Freeze a validated, defaulted, resolved document into dataclasses."""
    status = document["StatusFunction"]
    return SimulationConfig(
        path=path,
        name=document["SimulationName"],
        description=document["SimulationDescription"],
        timeout_ns=seconds_to_ns(document["SimulationTimeout"], "SimulationTimeout"),
        timestep_ns=_timestep_ns(document["SimulationTimestep"], ("SimulationTimestep",), label),
        loop=document["SimulationLoop"],
        engines=tuple(
            _engine(section, index, path.parent, label)
            for index, section in enumerate(document["EngineConfigs"])
        ),
        functions=tuple(
            FunctionConfig(item["Name"], Path(item["FileName"]), item["IsActive"])
            for item in document["DataPackProcessingFunctions"]
        ),
        status_function=(
            FunctionConfig(status["Name"], Path(status["FileName"]), True) if status else None
        ),
        external_processes=tuple(
            ExternalProcessConfig(
                name=item["Name"],
                proc_cmd=item["ProcCmd"],
                proc_start_params=tuple(item["ProcStartParams"]),
                env_params=_env_pairs(item["ProcEnvParams"]),
            )
            for item in document["ExternalProcesses"]
        ),
        document=MappingProxyType(document),
        task=_task(document.get("Task")),
    )


def _task(section: Mapping[str, Any] | None) -> TaskConfig | None:
    if section is None:
        return None
    return TaskConfig(
        section["Name"],
        MappingProxyType(dict(section["Options"])),
        MappingProxyType(dict(section["RewardWeights"])),
    )


def _engine(section: Mapping[str, Any], index: int, directory: Path, label: str) -> EngineConfig:
    files = {
        key: Path(section[key]) if section[key] is not None else None for key in _ENGINE_FILE_KEYS
    }
    return EngineConfig(
        name=section["EngineName"],
        type=section["EngineType"],
        timestep_ns=_timestep_ns(
            section["EngineTimestep"], ("EngineConfigs", index, "EngineTimestep"), label
        ),
        engine_class=section["EngineClass"],
        python_file=files["PythonFileName"],
        world_file=files["WorldFileName"],
        proc_cmd=section["EngineProcCmd"],
        proc_start_params=tuple(section["EngineProcStartParams"]),
        env_params=_env_pairs(section["EngineEnvParams"]),
        launch_type=section["EngineLaunchCommand"]["LaunchType"],
        command_timeout_s=float(section["EngineCommandTimeout"]),
        launch_timeout_s=float(section["EngineLaunchTimeout"]),
        server_address=section["ServerAddress"],
        extra=MappingProxyType(copy.deepcopy(section["EngineExtraConfigs"])),
        section=MappingProxyType(
            {**copy.deepcopy(dict(section)), "ConfigDirectory": str(directory)}
        ),
    )


def _timestep_ns(seconds: float, where: JsonPath, label: str) -> int:
    """A timestep in nanoseconds; one that rounds to 0 ns is a ConfigError."""
    nanoseconds = seconds_to_ns(seconds, _format_path(where))
    if nanoseconds < 1:
        raise ConfigError(
            label,
            _format_path(where),
            "a timestep of at least 1e-9 s",
            f"{_leaf(where)}={seconds!r}",
        )
    return nanoseconds


def _env_pairs(items: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """Split schema-checked ``KEY=VALUE`` strings at their first ``=``."""
    return tuple((key, value) for key, _, value in (item.partition("=") for item in items))


def _blame_override(error: ConfigError, origins: Mapping[str, str]) -> ConfigError:
    """Name the override in ``error`` if the offending value is one an override set."""
    for overridden, text in origins.items():
        if error.path == overridden or error.path.startswith((f"{overridden}.", f"{overridden}[")):
            file = f"{error.file} (override {text!r})"
            return ConfigError(file, error.path, error.expected, error.received)
    return error


# --- formatting ----------------------------------------------------------------------------


def _format_path(path: Iterable[str | int]) -> str:
    """``("EngineConfigs", 1, "EngineTimestep")`` -> ``"EngineConfigs[1].EngineTimestep"``."""
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else f".{step}" if text else str(step)
    return text


def _leaf(path: JsonPath) -> str:
    """The path from its last key on (``EngineEnvParams[1]``), or ``document`` for the root."""
    keys = [index for index, step in enumerate(path) if isinstance(step, str)]
    return _format_path(path[keys[-1] :]) if keys else _format_path(path) or "document"


def _show(value: Any) -> str:
    """A value as compact JSON, cut to a readable length."""
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."
