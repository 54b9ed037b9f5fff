"""Simulation config loading: JSON and YAML, defaults, overrides, paths, and error messages."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from neuroloop.config import SimulationConfig, load_config, seconds_to_ns
from neuroloop.errors import ConfigError

SCHEMA_PATH = Path(__file__).parents[1] / "neuroloop" / "schemas" / "simulation.schema.json"
PENDULUM = {"EnvId": "Pendulum-v1"}
"""The gymnasium engine's EngineExtraConfigs in ``minimal()`` (its schema requires EnvId)."""

YAML_CONFIG = """\
SimulationName: reach
SimulationTimeout: 2.5
SimulationTimestep: 0.02
EngineConfigs:
  - EngineName: physics
    EngineType: python_json
    PythonFileName: engines/physics_script.py
    WorldFileName: worlds/arm.xml
    EngineTimestep: 1e-3
    EngineEnvParams: [PYTHONUNBUFFERED=1, "FLAGS=a=b"]
  - EngineName: brain
    EngineType: keras_brain
    EngineTimestep: 0.02
    EngineExtraConfigs:
      {Brain: lstm, InputShapes: {goal: [3]}, ActionDim: 2, Weights: brains/policy.weights.h5,
       Seed: 3}
DataPackProcessingFunctions:
  - {Name: to_brain, FileName: tfs/to_brain.py}
  - {Name: to_body, FileName: tfs/to_body.py, IsActive: false}
StatusFunction: {Name: done, FileName: tfs/status.py}
ExternalProcesses:
  - {Name: viewer, ProcCmd: viewer, ProcStartParams: [--fast], ProcEnvParams: [DISPLAY=:0]}
"""

JSON_CONFIG: dict[str, Any] = {
    "SimulationName": "reach",
    "SimulationTimeout": 2.5,
    "SimulationTimestep": 0.02,
    "EngineConfigs": [
        {
            "EngineName": "physics",
            "EngineType": "python_json",
            "PythonFileName": "engines/physics_script.py",
            "WorldFileName": "worlds/arm.xml",
            "EngineTimestep": 0.001,
            "EngineEnvParams": ["PYTHONUNBUFFERED=1", "FLAGS=a=b"],
        },
        {
            "EngineName": "brain",
            "EngineType": "keras_brain",
            "EngineTimestep": 0.02,
            "EngineExtraConfigs": {
                "Brain": "lstm",
                "InputShapes": {"goal": [3]},
                "ActionDim": 2,
                "Weights": "brains/policy.weights.h5",
                "Seed": 3,
            },
        },
    ],
    "DataPackProcessingFunctions": [
        {"Name": "to_brain", "FileName": "tfs/to_brain.py"},
        {"Name": "to_body", "FileName": "tfs/to_body.py", "IsActive": False},
    ],
    "StatusFunction": {"Name": "done", "FileName": "tfs/status.py"},
    "ExternalProcesses": [
        {
            "Name": "viewer",
            "ProcCmd": "viewer",
            "ProcStartParams": ["--fast"],
            "ProcEnvParams": ["DISPLAY=:0"],
        }
    ],
}

REFERENCED_FILES = (
    "engines/physics_script.py",
    "worlds/arm.xml",
    "tfs/to_brain.py",
    "tfs/to_body.py",
    "tfs/status.py",
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A directory holding every file the configs above refer to."""
    for name in REFERENCED_FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    return tmp_path


def write_json(directory: Path, document: dict[str, Any], name: str = "sim.json") -> Path:
    path = directory / name
    path.write_text(json.dumps(document, indent=2))
    return path


BRAIN = {"Brain": "mlp", "InputShapes": {"goal": [3]}, "ActionDim": 2}
"""The smallest valid keras_brain EngineExtraConfigs."""


def minimal(**engine: Any) -> dict[str, Any]:
    """A config with one gymnasium engine, updated with ``engine``'s keys."""
    section = {"EngineName": "env", "EngineType": "gymnasium", **engine}
    if section["EngineType"] == "gymnasium":
        section.setdefault("EngineExtraConfigs", PENDULUM)
    if section["EngineType"] == "keras_brain":
        section.setdefault("EngineExtraConfigs", BRAIN)
    return {"EngineConfigs": [section]}


def load_error(path: Path, overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path, overrides)
    return str(caught.value)


def test_json_and_yaml_configs_load_identically(project: Path) -> None:
    from_json = load_config(write_json(project, JSON_CONFIG))
    yaml_path = project / "sim.yaml"
    yaml_path.write_text(YAML_CONFIG)
    from_yaml = load_config(yaml_path)

    assert dataclasses.replace(from_yaml, path=from_json.path) == from_json
    physics = from_json.engine("physics")
    assert physics.timestep_ns == 1_000_000
    assert physics.env_params == (("PYTHONUNBUFFERED", "1"), ("FLAGS", "a=b"))
    assert from_json.timeout_ns == 2_500_000_000
    assert [f.is_active for f in from_json.functions] == [True, False]
    assert from_json.external_processes[0].env_params == (("DISPLAY", ":0"),)


def test_defaults_are_filled_from_the_schema(tmp_path: Path) -> None:
    config = load_config(write_json(tmp_path, minimal()))

    assert (config.name, config.description, config.loop) == ("simulation", "", "FTILoop")
    assert (config.timeout_ns, config.timestep_ns) == (0, 10_000_000)
    assert (config.functions, config.status_function, config.external_processes) == ((), None, ())
    engine = config.engine("env")
    assert engine.timestep_ns == 10_000_000
    assert engine.engine_class == "neuroloop.plugins.engines.gymnasium_engine:GymnasiumEngine"
    assert (engine.python_file, engine.world_file) == (None, None)
    assert (engine.proc_cmd, engine.proc_start_params, engine.env_params) == ("", (), ())
    assert (engine.launch_type, engine.server_address) == ("BasicFork", "")
    assert (engine.command_timeout_s, engine.launch_timeout_s) == (30.0, 120.0)
    # The gymnasium engine's schema (engines/gymnasium_engine.schema.json) fills its defaults.
    assert engine.extra == {"EnvId": "Pendulum-v1", "EnvKwargs": {}, "Worlds": 1}
    assert engine.section["EngineLaunchCommand"] == {"LaunchType": "BasicFork"}
    assert engine.section["ConfigDirectory"] == str(tmp_path.resolve())
    assert config.document["EngineConfigs"][0]["EngineTimestep"] == 0.01


@pytest.mark.parametrize(
    ("engine_type", "engine_class"),
    [
        ("gymnasium", "neuroloop.plugins.engines.gymnasium_engine:GymnasiumEngine"),
        ("mujoco", "neuroloop.plugins.engines.mujoco_engine:MujocoEngine"),
        ("keras_brain", "neuroloop.plugins.engines.keras_brain:KerasBrainEngine"),
    ],
)
def test_engine_class_defaults_depend_on_engine_type(
    tmp_path: Path, engine_type: str, engine_class: str
) -> None:
    config = load_config(write_json(tmp_path, minimal(EngineType=engine_type)))

    assert config.engines[0].engine_class == engine_class


def test_relative_paths_resolve_against_the_config_file_not_the_cwd(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = project / "elsewhere"
    elsewhere.mkdir()
    (project / "engines" / "counter.py").write_text("")
    document = json.loads(json.dumps(JSON_CONFIG))
    document["EngineConfigs"][1]["EngineClass"] = "engines/counter.py:Counter"
    config_path = write_json(project, document)
    monkeypatch.chdir(elsewhere)

    config = load_config(Path("..") / config_path.name)

    root = project.resolve()
    physics, brain = config.engines
    assert physics.python_file == root / "engines" / "physics_script.py"
    assert physics.world_file == root / "worlds" / "arm.xml"
    assert physics.section["PythonFileName"] == str(root / "engines" / "physics_script.py")
    assert brain.engine_class == f"{root / 'engines' / 'counter.py'}:Counter"
    assert brain.extra["Weights"] == "brains/policy.weights.h5"  # as written, not resolved
    assert config.functions[0].file == root / "tfs" / "to_brain.py"
    assert config.status_function is not None
    assert config.status_function.file == root / "tfs" / "status.py"
    assert config.directory == root


def test_resolved_document_loads_again_from_another_directory(project: Path) -> None:
    config = load_config(write_json(project, JSON_CONFIG))
    copy_dir = project / "copy"
    copy_dir.mkdir()

    again = load_config(write_json(copy_dir, dict(config.document)))

    assert again.engines[0].python_file == config.engines[0].python_file
    assert again.document["EngineConfigs"] == config.document["EngineConfigs"]


def test_misspelled_key_names_the_key_it_meant(tmp_path: Path) -> None:
    path = write_json(tmp_path, minimal(EngineTimeStep=0.02))

    message = load_error(path)

    assert message.startswith(f"{path}: EngineConfigs[0].EngineTimeStep: expected a known key")
    assert "did you mean 'EngineTimestep'?" in message
    assert "Known keys: EngineName, EngineType, EngineTimestep" in message
    assert message.endswith("Received: EngineTimeStep=0.02")


def test_unknown_top_level_key_is_suggested_too(tmp_path: Path) -> None:
    path = write_json(tmp_path, {**minimal(), "SimulationTimeStep": 0.02})

    assert "SimulationTimeStep: expected a known key (did you mean 'SimulationTimestep'?)" in (
        load_error(path)
    )


@pytest.mark.parametrize(
    ("engine", "message"),
    [
        (
            {"EngineTimestep": "fast"},
            "EngineConfigs[0].EngineTimestep: expected a number > 0. "
            'Received: EngineTimestep="fast"',
        ),
        (
            {"EngineTimestep": -0.01},
            "EngineConfigs[0].EngineTimestep: expected a number > 0. "
            "Received: EngineTimestep=-0.01",
        ),
        (
            {"EngineType": "mujuco"},
            'EngineConfigs[0].EngineType: expected one of "python_json", "python_grpc", '
            '"python", "gymnasium", "mujoco", "keras_brain", "py_sim", "nest_json", "surrogate" '
            '(did you mean "mujoco"?). '
            'Received: EngineType="mujuco"',
        ),
        (
            {"EngineEnvParams": ["A=1", "VERBOSE"]},
            "EngineConfigs[0].EngineEnvParams[1]: expected a string matching "
            "'^[A-Za-z_][A-Za-z0-9_]*=', e.g. 'PYTHONUNBUFFERED=1'. "
            'Received: EngineEnvParams[1]="VERBOSE"',
        ),
        (
            {"EngineLaunchCommand": {"LaunchType": "EmptyLaunchCommand"}},
            "EngineConfigs[0].ServerAddress: expected the required key ServerAddress "
            "(EmptyLaunchCommand connects to an engine already serving at ServerAddress)",
        ),
        (
            {"EngineType": "python_json"},
            "EngineConfigs[0].PythonFileName: expected the required key PythonFileName "
            "(python_json and python_grpc engines run the NRP-core script in PythonFileName). "
            "Received: no PythonFileName (keys present: EngineName, EngineType)",
        ),
        (
            {"EngineType": "python"},
            "EngineConfigs[0].EngineClass: expected the required key EngineClass",
        ),
    ],
)
def test_schema_violations_say_where_what_was_expected_and_what_was_received(
    tmp_path: Path, engine: dict[str, Any], message: str
) -> None:
    path = write_json(tmp_path, minimal(**engine))

    assert load_error(path).startswith(f"{path}: {message}")


def test_missing_required_engine_name(tmp_path: Path) -> None:
    path = write_json(tmp_path, {"EngineConfigs": [{"EngineType": "mujoco"}]})

    assert load_error(path) == (
        f"{path}: EngineConfigs[0].EngineName: expected the required key EngineName. "
        "Received: no EngineName (keys present: EngineType)"
    )


def test_missing_python_file_names_the_resolved_path(tmp_path: Path) -> None:
    path = write_json(tmp_path, minimal(EngineType="python_json", PythonFileName="nope.py"))

    message = load_error(path)

    assert message.startswith(f"{path}: EngineConfigs[0].PythonFileName: expected an existing file")
    assert f'Received: PythonFileName="nope.py", resolved to {tmp_path.resolve() / "nope.py"}' in (
        message
    )


def test_duplicate_engine_name(tmp_path: Path) -> None:
    document = minimal()
    document["EngineConfigs"].append({"EngineName": "env", "EngineType": "mujoco"})
    path = write_json(tmp_path, document)

    assert load_error(path) == (
        f"{path}: EngineConfigs[1].EngineName: expected a unique EngineName. "
        'Received: EngineName="env", already used by EngineConfigs[0]'
    )


def test_duplicate_function_name(project: Path) -> None:
    document = json.loads(json.dumps(JSON_CONFIG))
    document["DataPackProcessingFunctions"][1]["Name"] = "to_brain"
    path = write_json(project, document)

    assert "DataPackProcessingFunctions[1].Name: expected a unique Name" in load_error(path)


def test_malformed_json_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "sim.json"
    path.write_text('{\n  "EngineConfigs": [\n    {"EngineName": "env",}\n  ]\n}\n')

    message = load_error(path)

    assert message.startswith(f"{path}: line 3, column 26: expected valid JSON. Received: ")


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "sim.yml"
    path.write_text("EngineConfigs:\n  - EngineName: env\n    EngineType: [gymnasium\n")

    message = load_error(path)

    assert message.startswith(f"{path}: line 4, column 1: expected valid YAML. Received: ")


def test_repeated_yaml_key_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "sim.yaml"
    path.write_text(
        "EngineConfigs:\n  - EngineName: env\n    EngineType: gymnasium\n    EngineName: b\n"
    )

    assert load_error(path) == (
        f"{path}: line 4, column 5: expected valid YAML. Received: found the key 'EngineName' twice"
    )


def test_repeated_json_key_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "sim.json"
    path.write_text('{"EngineConfigs": [], "EngineConfigs": []}')

    assert load_error(path) == (
        f'{path}: expected each key at most once per object. Received: "EngineConfigs" twice'
    )


def test_unsupported_suffix(tmp_path: Path) -> None:
    path = tmp_path / "sim.txt"
    path.write_text("{}")

    assert load_error(path) == (
        f"{path}: expected a .json, .yaml or .yml file. Received: suffix='.txt'"
    )


def test_list_index_and_selector_overrides(tmp_path: Path) -> None:
    document = minimal()
    document["EngineConfigs"].append({"EngineName": "physics", "EngineType": "mujoco"})
    path = write_json(tmp_path, document)

    config = load_config(
        path,
        [
            "SimulationTimeout=5",
            "EngineConfigs[0].EngineTimestep=0.02",
            "EngineConfigs.EngineName:physics.EngineTimestep=0.005",
            "EngineConfigs.EngineName:physics.EngineProcStartParams=[--headless, '-v']",
            'EngineConfigs[1].EngineExtraConfigs={"Worlds": 4, "JointNoise": 0.0}',
            "SimulationName=reach task",
        ],
    )

    assert config.timeout_ns == 5_000_000_000
    assert config.engine("env").timestep_ns == 20_000_000
    physics = config.engine("physics")
    assert physics.timestep_ns == 5_000_000
    assert physics.proc_start_params == ("--headless", "-v")
    assert physics.extra["Worlds"] == 4 and physics.extra["JointNoise"] == 0.0
    assert config.name == "reach task"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "EngineConfigs[3].EngineTimestep=0.1",
            "EngineConfigs: expected a list with an element [3]. Received: a list of 1",
        ),
        (
            "EngineConfigs.EngineName:physics.EngineTimestep=0.1",
            "EngineConfigs: expected exactly one element of EngineConfigs with "
            "EngineName='physics' (EngineName values: env). Received: 0 matches",
        ),
        (
            "Simulation.Timeout=3",
            "Simulation: expected an existing key of the document (EngineConfigs). "
            "Received: key='Simulation'",
        ),
        (
            "SimulationTimeout",
            "expected PATH=VALUE, e.g. EngineConfigs[0].EngineTimestep=0.02. "
            "Received: 'SimulationTimeout'",
        ),
    ],
)
def test_bad_override_path_names_the_override(tmp_path: Path, override: str, message: str) -> None:
    path = write_json(tmp_path, minimal())

    assert load_error(path, (override,)) == f"<override {override!r}>: {message}"


def test_schema_violation_from_an_override_names_the_override(tmp_path: Path) -> None:
    path = write_json(tmp_path, minimal())
    override = "EngineConfigs[0].EngineTimeStep=0.02"

    message = load_error(path, (override,))

    assert message.startswith(f"{path} (override {override!r}): EngineConfigs[0].EngineTimeStep:")
    assert "did you mean 'EngineTimestep'?" in message


def test_engine_lookup_names_the_engines_there_are(tmp_path: Path) -> None:
    config = load_config(write_json(tmp_path, minimal()))

    with pytest.raises(KeyError, match=r"expected the name of an engine \(env\)"):
        config.engine("brain")


@pytest.mark.parametrize(
    ("seconds", "nanoseconds"), [(0.01, 10_000_000), (0.02, 20_000_000), (0.001, 1_000_000)]
)
def test_seconds_to_ns_is_exact(seconds: float, nanoseconds: int) -> None:
    assert seconds_to_ns(seconds, "EngineTimestep") == nanoseconds
    assert seconds_to_ns(seconds * 1000, "EngineTimestep") == nanoseconds * 1000


@pytest.mark.parametrize("seconds", [-0.01, math.nan, math.inf])
def test_seconds_to_ns_rejects_negative_and_non_finite(seconds: float) -> None:
    with pytest.raises(ValueError, match="SimulationTimeout: expected a finite number"):
        seconds_to_ns(seconds, "SimulationTimeout")


def test_timestep_below_one_nanosecond_is_an_error(tmp_path: Path) -> None:
    path = write_json(tmp_path, minimal(EngineTimestep=1e-12))

    assert load_error(path) == (
        f"{path}: EngineConfigs[0].EngineTimestep: expected a timestep of at least 1e-9 s. "
        "Received: EngineTimestep=1e-12"
    )


def declaring_schemas(node: Any) -> Iterator[dict[str, Any]]:
    """Every subschema that declares properties, except the conditions of if/then."""
    if isinstance(node, dict):
        if "properties" in node:
            yield node
        for key, value in node.items():
            if key != "if":
                yield from declaring_schemas(value)
    elif isinstance(node, list):
        for item in node:
            yield from declaring_schemas(item)


def test_schema_is_valid_and_documents_every_key() -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)

    for declaring in declaring_schemas(schema):
        is_branch = "type" not in declaring  # a then-branch adds to a declaration elsewhere
        assert is_branch or declaring["additionalProperties"] is False
        for key, value in declaring["properties"].items():
            assert "description" in value, key
            required = key in declaring.get("required", ())
            # EngineClass's default depends on EngineType, so it is given in then-branches.
            if not (is_branch or required or key == "EngineClass"):
                assert "default" in value, f"{key} has no default"


ENGINE_SCHEMAS = sorted(
    [
        *SCHEMA_PATH.parents[2].glob("engines/*.schema.json"),
        *Path(__file__).parent.glob("fixtures/*.schema.json"),
    ]
)


@pytest.mark.parametrize("path", ENGINE_SCHEMAS, ids=lambda path: path.name)
def test_engine_schemas_are_valid_and_document_every_key(path: Path) -> None:
    schema = json.loads(path.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert path.with_name(path.name.removesuffix(".schema.json") + ".py").is_file()
    assert schema["type"] == "object"

    for declaring in declaring_schemas(schema):
        assert declaring["additionalProperties"] is False
        # Keys of which exactly one must be given (oneOf: [{required: [key]}, ...]).
        alternatives = {
            k for branch in declaring.get("oneOf", ()) for k in branch.get("required", ())
        }
        for key, value in declaring["properties"].items():
            assert "description" in value, key
            assert key in {*declaring.get("required", ()), *alternatives} or "default" in value, key


def test_simulation_config_is_frozen(tmp_path: Path) -> None:
    config = load_config(write_json(tmp_path, minimal()))

    with pytest.raises(dataclasses.FrozenInstanceError):
        config.name = "other"  # type: ignore[misc]
    assert isinstance(config, SimulationConfig)
