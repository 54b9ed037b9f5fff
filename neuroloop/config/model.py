"""Load a simulation config (JSON or YAML, NRP-core keys), check it, and freeze it.

::

    config = load_config(
        "simulation_configs/reach.json",
        overrides=["EngineConfigs.EngineName:physics.EngineTimestep=0.002"],
    )
    config.engine("physics").timestep_ns  # 2_000_000

The document is checked against ``schemas/simulation.schema.json`` (which also supplies every
default), each engine's ``EngineExtraConfigs`` against the schema beside its engine module
(if it has one, see ``neuroloop.config.schema``), then for what a schema cannot say (unique
names, existing files). Every mistake raises ``ConfigError`` naming the file, the JSON path of
the key, what was expected and what was received.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any

from neuroloop.config.document import load_document
from neuroloop.config.nrp import (
    ScriptKeys,
    read_leniently,
    refuse_unsupported,
    restore_script_keys,
    runs_nrp_core_server,
    take_script_keys,
)
from neuroloop.config.schema import (
    EXTRA_CONFIGS,
    SIMULATION_SCHEMA,
    check_engine_extra,
    engine_module_file,
)
from neuroloop.config.text import JsonPath, format_path, leaf, show
from neuroloop.errors import ConfigError

_NS_PER_S = 1_000_000_000
_ENGINE_FILE_KEYS = ("PythonFileName", "WorldFileName", "NestInitFileName")


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
    """``WorldFileName``: absolute path of the world or model file, if any (for a script
    engine, as written when it names no file: the script reads it)."""
    proc_cmd: str
    """``EngineProcCmd``; empty means neuroloop's own engine server (also when the config's
    command runs NRP-core's server of the engine, such as ``python_json_engine.py``)."""
    proc_start_params: tuple[str, ...]
    """``EngineProcStartParams``: extra command-line arguments."""
    env_params: tuple[tuple[str, str], ...]
    """``EngineEnvParams`` as ``(KEY, VALUE)`` pairs, in config order."""
    launch_type: str
    """``EngineLaunchCommand.LaunchType``: ``"BasicFork"`` or ``"EmptyLaunchCommand"``."""
    command_timeout_s: float | None
    """``EngineCommandTimeout``: wall-clock seconds to wait for one call; None: no limit
    (the config said 0 or less, as NRP-core)."""
    launch_timeout_s: float
    """``EngineLaunchTimeout``: wall-clock seconds to wait for health checks after launch."""
    server_address: str
    """``ServerAddress``: ``host:port`` or ``unix:/path``; empty means pick a loopback port."""
    secret_file: Path | None
    """``EngineSecretFile``: absolute path of the file holding the secret of an engine the
    simulation connects to (``EmptyLaunchCommand``); read when connecting."""
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
    """``Name`` (``program#index`` if the config has none): errors and logs use it."""
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
    """``SimulationTimeout`` in simulated nanoseconds; 0 means no timeout. For the EventLoop,
    ``EventLoop.Timeout`` (wall-clock)."""
    timestep_ns: int
    """``SimulationTimestep`` in nanoseconds: how far the loop advances per iteration; the
    smallest ``EngineTimestep`` if the config does not say (NRP-core's loop timestep). For
    the EventLoop, ``EventLoop.Timestep`` (wall-clock)."""
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
    event_loop: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    """``EventLoop``: the EventLoop's settings, defaults filled."""
    processor: str = "tf"
    """``DataPackProcessor``: ``"tf"`` (functions) or ``"cg"`` (the computational graph)."""
    graph_files: tuple[Path, ...] = ()
    """``ComputationalGraph``: the graph files, absolute."""

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
            document, the result breaks the schema (or an engine's settings break its
            engine's schema), two engines or functions share a name, or a referenced file
            does not exist.
    """
    file = Path(path)
    label = str(path)
    script_keys: ScriptKeys = {}

    def prepare(document: dict[str, Any]) -> None:
        refuse_unsupported(document, label)
        script_keys.update(take_script_keys(document))

    try:
        document, blame = load_document(path, SIMULATION_SCHEMA, overrides, prepare)
    except ConfigError:
        refuse_unsupported(read_leniently(file), label)  # say that first, if that is it
        raise
    restore_script_keys(document, script_keys)
    try:
        _check_unique_names(document, label)
        _check_processor(document, label)
        _resolve_files(document, file.resolve().parent, label)
        _check_engine_extras(document, label)
        return _build(document, file.resolve(), label)
    except ConfigError as error:
        raise blame(error) from None


def _check_unique_names(document: Mapping[str, Any], label: str) -> None:
    """Engines, functions and external processes must each have distinct names."""
    for section, key in (
        ("EngineConfigs", "EngineName"),
        ("DataPackProcessingFunctions", "Name"),
        ("ExternalProcesses", "Name"),
    ):
        first: dict[str, int] = {}
        for index, item in enumerate(document.get(section, ())):
            name = item.get(key)
            if name is None:
                continue
            if name in first:
                raise ConfigError(
                    label,
                    format_path((section, index, key)),
                    f"a unique {key}",
                    f"{key}={show(name)}, already used by {section}[{first[name]}]",
                )
            first[name] = index


def _check_processor(document: Mapping[str, Any], label: str) -> None:
    """Functions go with DataPackProcessor tf, a ComputationalGraph with cg (or the
    EventLoop, which always runs a graph)."""
    graph = document["DataPackProcessor"] == "cg" or document["SimulationLoop"] == "EventLoop"
    if graph and not document["ComputationalGraph"]:
        raise ConfigError(
            label,
            "ComputationalGraph",
            "graph files with DataPackProcessor cg or the EventLoop",
            "none",
        )
    for key in ("DataPackProcessingFunctions", "StatusFunction", "ComputationalGraph"):
        used = document[key] not in (None, [])
        if used and graph != (key == "ComputationalGraph"):
            processor = "tf (FTILoop)" if key != "ComputationalGraph" else "cg or the EventLoop"
            raise ConfigError(
                label,
                key,
                f"{key} only with DataPackProcessor {processor}",
                f"DataPackProcessor={show(document['DataPackProcessor'])}, "
                f"SimulationLoop={show(document['SimulationLoop'])}",
            )


def _resolve_files(document: dict[str, Any], directory: Path, label: str) -> None:
    """Make every file path in the document absolute, checking that the file exists."""
    where: JsonPath
    for index, engine in enumerate(document["EngineConfigs"]):
        for key in _ENGINE_FILE_KEYS:
            if key == "WorldFileName" and _world_is_the_scripts(engine):
                engine[key] = _script_world(engine[key], directory)
            elif engine[key] is not None:
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
    for index, file in enumerate(document["ComputationalGraph"]):
        where = ("ComputationalGraph", index)
        document["ComputationalGraph"][index] = _existing_file(file, directory, label, where)
    if document["StatusFunction"] is not None:
        status = document["StatusFunction"]
        where = ("StatusFunction", "FileName")
        status["FileName"] = _existing_file(status["FileName"], directory, label, where)
    task = document.get("Task")
    if task is not None and ".py:" in task["Name"]:
        target, _, class_name = task["Name"].rpartition(":")
        resolved = _existing_file(target, directory, label, ("Task", "Name"))
        task["Name"] = f"{resolved}:{class_name}"


def _world_is_the_scripts(engine: Mapping[str, Any]) -> bool:
    """Whether an engine's ``WorldFileName`` is for its script to read, not necessarily a
    file: a python_json/python_grpc script's own key, or a py_sim OpenAI Gymnasium id."""
    return engine["EngineType"] in ("python_json", "python_grpc") or (
        engine["Simulator"] == "OpenAI"
    )


def _script_world(value: str | None, directory: Path) -> str | None:
    """A script engine's ``WorldFileName``: absolute if it names an existing file, else as
    written (NRP-core leaves its meaning to the script, e.g. a Gym environment id)."""
    if value is None or not (directory / value).is_file():
        return value
    return str((directory / value).resolve())


def _check_engine_extras(document: dict[str, Any], label: str) -> None:
    """Check each engine's ``EngineExtraConfigs`` against its engine's schema, filling defaults."""
    for index, engine in enumerate(document["EngineConfigs"]):
        module_file = engine_module_file(engine["EngineClass"])
        if module_file is not None:
            where = ("EngineConfigs", index, EXTRA_CONFIGS)
            check_engine_extra(engine[EXTRA_CONFIGS], module_file, label, where)


def _existing_file(value: str, directory: Path, label: str, where: JsonPath) -> str:
    """Resolve ``value`` against ``directory``; raise ConfigError if no such file exists."""
    resolved = (directory / Path(value).expanduser()).resolve()
    if not resolved.is_file():
        raise ConfigError(
            label,
            format_path(where),
            f"an existing file (relative paths start at the config's directory {directory})",
            f"{leaf(where)}={show(value)}, resolved to {resolved}",
        )
    return str(resolved)


def _build(document: dict[str, Any], path: Path, label: str) -> SimulationConfig:
    """Freeze a validated, defaulted, resolved document into dataclasses."""
    status = document["StatusFunction"]
    engines = tuple(
        _engine(section, index, path.parent, label)
        for index, section in enumerate(document["EngineConfigs"])
    )
    timeout, timeout_key = document["SimulationTimeout"], "SimulationTimeout"
    timestep = document["SimulationTimestep"]
    if document["SimulationLoop"] == "EventLoop":
        timeout, timeout_key = document["EventLoop"]["Timeout"], "EventLoop.Timeout"
        timestep_ns = _timestep_ns(
            document["EventLoop"]["Timestep"], ("EventLoop", "Timestep"), label
        )
    elif timestep is None:
        timestep_ns = min(engine.timestep_ns for engine in engines)
    else:
        timestep_ns = _timestep_ns(timestep, ("SimulationTimestep",), label)
    return SimulationConfig(
        path=path,
        name=document["SimulationName"],
        description=document["SimulationDescription"],
        timeout_ns=seconds_to_ns(timeout, timeout_key),
        timestep_ns=timestep_ns,
        loop=document["SimulationLoop"],
        engines=engines,
        functions=tuple(
            FunctionConfig(item["Name"], Path(item["FileName"]), item["IsActive"])
            for item in document["DataPackProcessingFunctions"]
        ),
        status_function=(
            FunctionConfig(status["Name"], Path(status["FileName"]), status["IsActive"])
            if status
            else None
        ),
        external_processes=tuple(
            ExternalProcessConfig(
                name=item["Name"] or _process_name(item["ProcCmd"], index),
                proc_cmd=item["ProcCmd"],
                proc_start_params=tuple(item["ProcStartParams"]),
                env_params=_env_pairs(item["ProcEnvParams"]),
            )
            for index, item in enumerate(document["ExternalProcesses"])
        ),
        document=MappingProxyType(document),
        task=_task(document.get("Task")),
        event_loop=MappingProxyType(dict(document["EventLoop"])),
        processor=document["DataPackProcessor"],
        graph_files=tuple(Path(file) for file in document["ComputationalGraph"]),
    )


def _process_name(command: str, index: int) -> str:
    """The name of an external process the config does not name: its program and index."""
    program = Path(command.split()[0]).name if command.split() else "process"
    return f"{program}#{index}"


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
    nrp_server = runs_nrp_core_server(section["EngineProcCmd"])
    return EngineConfig(
        name=section["EngineName"],
        type=section["EngineType"],
        timestep_ns=_timestep_ns(
            section["EngineTimestep"], ("EngineConfigs", index, "EngineTimestep"), label
        ),
        engine_class=section["EngineClass"],
        python_file=files["PythonFileName"],
        world_file=files["WorldFileName"],
        proc_cmd="" if nrp_server else section["EngineProcCmd"],
        proc_start_params=() if nrp_server else tuple(section["EngineProcStartParams"]),
        env_params=_env_pairs(section["EngineEnvParams"]),
        launch_type=section["EngineLaunchCommand"]["LaunchType"],
        command_timeout_s=(
            float(section["EngineCommandTimeout"]) if section["EngineCommandTimeout"] > 0 else None
        ),
        launch_timeout_s=float(section["EngineLaunchTimeout"]),
        server_address=section["ServerAddress"],
        secret_file=(
            (directory / Path(section["EngineSecretFile"]).expanduser()).resolve()
            if section["EngineSecretFile"] is not None
            else None
        ),
        extra=MappingProxyType(copy.deepcopy(section["EngineExtraConfigs"])),
        section=MappingProxyType(
            {**copy.deepcopy(dict(section)), "ConfigDirectory": str(directory)}
        ),
    )


def _timestep_ns(seconds: float, where: JsonPath, label: str) -> int:
    """A timestep in nanoseconds; one that rounds to 0 ns is a ConfigError."""
    nanoseconds = seconds_to_ns(seconds, format_path(where))
    if nanoseconds < 1:
        raise ConfigError(
            label,
            format_path(where),
            "a timestep of at least 1e-9 s",
            f"{leaf(where)}={seconds!r}",
        )
    return nanoseconds


def _env_pairs(items: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """Split schema-checked ``KEY=VALUE`` strings at their first ``=``."""
    return tuple((key, value) for key, _, value in (item.partition("=") for item in items))
