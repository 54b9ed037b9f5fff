"""NRP-core configs as written for NRP-core: refuse what neuroloop cannot run, keep script keys.

Two passes over a document before it is checked against the schema:

- ``refuse_unsupported`` stops at the first NRP-core engine type or feature neuroloop does not
  run, in one line naming it, so a Gazebo engine is not reported as a misspelled key. An
  engine type is unsupported when NRP-core has it (``NRP_CORE_ENGINE_TYPES``) and the schema's
  ``EngineType`` enum does not: adding a type to the schema lifts its refusal.
- ``take_script_keys`` lifts the custom keys of engines that run user scripts (NRP-core
  hands a script its whole engine section as ``self._config``) out of the engine sections,
  so the schema can stay closed; ``restore_script_keys`` puts them back after validation. A
  key close to a known one is left in place, so the schema reports it as a likely typo.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from neuroloop.config.schema import SIMULATION_SCHEMA, load_schema
from neuroloop.config.text import format_path, show
from neuroloop.errors import ConfigError

NRP_CORE_ENGINE_TYPES: Mapping[str, str] = {
    "python_json": "NRP-core's Python JSON engine",
    "python_grpc": "NRP-core's Python gRPC engine",
    "py_sim": "NRP-core's PySim engine (MuJoCo, OpenAI Gym, OpenSim, Bullet)",
    "nest_json": "NRP-core's NEST engine",
    "nest_server": "NRP-core's NEST Server engine",
    "gazebo_grpc": "NRP-core's Gazebo engine",
    "gazebo_json": "NRP-core's Gazebo engine",
    "edlut_grpc_engine": "NRP-core's EDLUT engine",
    "datatransfer_grpc_engine": "NRP-core's DataTransfer engine (MQTT streaming)",
    "tvb_json": "NRP-core's TVB engine",
    "spinnaker": "NRP-core's SpiNNaker engine",
}
"""NRP-core 1.4's engine types, each with what it is."""

NRP_CORE_ENGINE_SERVERS = (
    "python_json_engine.py",
    "python_grpc_engine.py",
    "NRPPySimExecutable",
    "NRPNestJSONExecutable",
)
"""Programs of NRP-core's own servers for the engines neuroloop hosts itself."""


def runs_nrp_core_server(command: str) -> bool:
    """True if ``command`` starts one of NRP-core's engine servers (maybe behind a wrapper
    such as ``xvfb-run``): neuroloop serves that engine with its own server instead."""
    return any(Path(word).name in NRP_CORE_ENGINE_SERVERS for word in command.split())


SCRIPT_ENGINE_TYPES = ("python_json", "python_grpc", "py_sim")
"""Engine types whose user script reads its engine section, custom keys included."""

TYPO_CUTOFF = 0.85
"""How close (difflib ratio, case-insensitive) a custom key may be to a known key before it
is taken for a misspelling of it: ``EngineTimestepp`` (0.97) is a typo, NRP-core's own
``EngineNumber`` (0.82 to ``EngineName``) a script's key."""


@dataclass(frozen=True)
class Unsupported:
    """An NRP-core feature neuroloop does not run: where it shows, and what it is."""

    key: str
    """The top-level key that asks for it."""
    value: Any
    """The value that asks for it; ``None``: the key's presence does."""
    feature: str
    """What it is, for the message."""


UNSUPPORTED_FEATURES = (
    Unsupported("ROSNode", None, "ROS (NRP-core's ROS node)"),
    Unsupported("MQTTNode", None, "MQTT (NRP-core's MQTT client)"),
)
"""Top-level keys (and values) that ask for NRP-core features neuroloop does not run."""

SUPPORTED_PROCESS_LAUNCHERS = ("Basic",)
SUPPORTED_LAUNCH_TYPES = ("BasicFork", "EmptyLaunchCommand")
UNSUPPORTED_LAUNCH_TYPES: Mapping[str, str] = {
    "DockerLauncher": "NRP-core's DockerLauncher (engines in Docker containers)",
}


def refuse_unsupported(document: Mapping[str, Any], label: str) -> None:
    """Raise ConfigError naming the first NRP-core feature or engine type neuroloop lacks."""
    for feature in UNSUPPORTED_FEATURES:
        if feature.key in document and feature.value in (None, document[feature.key]):
            shown = f"{feature.key}={show(document[feature.key])}"
            raise ConfigError(
                label,
                feature.key,
                "a feature neuroloop supports",
                f"{shown}: {feature.feature} is not supported by neuroloop",
            )
    engines = document.get("EngineConfigs")
    if document.get("SimulationLoop") == "EventLoop" and isinstance(engines, list) and engines:
        raise ConfigError(
            label,
            "EngineConfigs",
            "no engines with SimulationLoop EventLoop",
            f"{len(engines)} engine(s): NRP-core's EventLoop with engines (run beside it, "
            "asynchronously) is not supported by neuroloop",
        )
    launcher = document.get("ProcessLauncherType", "Basic")
    if launcher not in SUPPORTED_PROCESS_LAUNCHERS:
        raise ConfigError(
            label,
            "ProcessLauncherType",
            f"a process launcher neuroloop supports ({', '.join(SUPPORTED_PROCESS_LAUNCHERS)})",
            f"ProcessLauncherType={show(launcher)} is not supported by neuroloop",
        )
    supported = load_schema(SIMULATION_SCHEMA)["$defs"]["engine"]["properties"]["EngineType"]
    for index, engine in enumerate(engines if isinstance(engines, list) else ()):
        if not isinstance(engine, dict):
            continue
        kind = str(engine.get("EngineType"))
        if kind in NRP_CORE_ENGINE_TYPES and kind not in supported["enum"]:
            raise ConfigError(
                label,
                format_path(("EngineConfigs", index, "EngineType")),
                f"an engine type neuroloop supports ({', '.join(supported['enum'])})",
                f"EngineType={show(kind)}: {NRP_CORE_ENGINE_TYPES[kind]} is not supported "
                "by neuroloop",
            )
        _refuse_launch(engine.get("EngineLaunchCommand"), label, ("EngineConfigs", index))
    processes = document.get("ExternalProcesses")
    for index, process in enumerate(processes if isinstance(processes, list) else ()):
        if isinstance(process, dict):
            _refuse_launch(process.get("LaunchCommand"), label, ("ExternalProcesses", index))


def _refuse_launch(command: Any, label: str, where: tuple[str | int, ...]) -> None:
    kind = str(command.get("LaunchType")) if isinstance(command, dict) else ""
    if kind in UNSUPPORTED_LAUNCH_TYPES:
        key = "EngineLaunchCommand" if where[0] == "EngineConfigs" else "LaunchCommand"
        raise ConfigError(
            label,
            format_path((*where, key, "LaunchType")),
            f"a launch type neuroloop supports ({', '.join(SUPPORTED_LAUNCH_TYPES)})",
            f"LaunchType={show(kind)}: {UNSUPPORTED_LAUNCH_TYPES[kind]} is not supported "
            "by neuroloop",
        )


ScriptKeys = dict[int, dict[str, Any]]
"""Custom keys taken out of engine sections, by the engine's index in EngineConfigs."""


def take_script_keys(document: dict[str, Any]) -> ScriptKeys:
    """Remove the custom keys of script engines from the document and return them."""
    known = list(load_schema(SIMULATION_SCHEMA)["$defs"]["engine"]["properties"])
    lowered = [key.lower() for key in known]
    taken: ScriptKeys = {}
    engines = document.get("EngineConfigs")
    for index, engine in enumerate(engines if isinstance(engines, list) else ()):
        if not isinstance(engine, dict) or engine.get("EngineType") not in SCRIPT_ENGINE_TYPES:
            continue
        custom = [
            key
            for key in engine
            if key not in known
            and not difflib.get_close_matches(key.lower(), lowered, n=1, cutoff=TYPO_CUTOFF)
        ]
        if custom:
            taken[index] = {key: engine.pop(key) for key in custom}
    return taken


def restore_script_keys(document: dict[str, Any], taken: ScriptKeys) -> None:
    """Put the keys ``take_script_keys`` removed back into their engine sections."""
    for index, keys in taken.items():
        document["EngineConfigs"][index].update(keys)


def read_leniently(file: Path) -> dict[str, Any]:
    """The file's document as NRP-core would read it (a repeated key keeps its last value),
    or ``{}`` if it cannot be read at all; for ``refuse_unsupported`` after a failed load."""
    try:
        text = file.read_text(encoding="utf-8")
        document = json.loads(text) if file.suffix.lower() == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError):
        return {}
    return document if isinstance(document, dict) else {}
