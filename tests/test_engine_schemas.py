"""Engine settings: a module ``X.py`` declares its EngineExtraConfigs in ``X.schema.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from neuroloop.config import engine_extra_configs, load_config
from neuroloop.errors import ConfigError
from neuroloop.plugins.engines.gymnasium_engine import GymnasiumEngine
from tests.fixtures.clock_engine import ClockEngine
from tests.fixtures.tuned_engine import TunedEngine
from tests.test_cli import neuroloop

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
TUNED_FILE = FIXTURES / "tuned_engine.py"
TUNED_DEFAULTS = {"Gain": 2.0, "Label": "tuned"}
"""The defaults of ``tests/fixtures/tuned_engine.schema.json``."""
GYMNASIUM_DEFAULTS = {"EnvKwargs": {}, "Worlds": 1}
"""The defaults of ``engines/gymnasium_engine.schema.json``."""
PENDULUM = {"EnvId": "Pendulum-v1"}


def write_config(directory: Path, engine: dict[str, Any]) -> Path:
    path = directory / "sim.json"
    path.write_text(json.dumps({"EngineConfigs": [{"EngineName": "env", **engine}]}))
    return path


def gymnasium(**extra: Any) -> dict[str, Any]:
    """A gymnasium engine running Pendulum-v1, with ``extra`` added to its EngineExtraConfigs."""
    return {"EngineType": "gymnasium", "EngineExtraConfigs": {**PENDULUM, **extra}}


def load_error(path: Path, overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path, overrides)
    return str(caught.value)


def test_a_misspelt_key_names_file_path_and_the_right_key_and_exits_2(tmp_path: Path) -> None:
    config = write_config(tmp_path, gymnasium(EnvKwarg={"g": 9.81}))

    run = neuroloop("run", config)

    assert run.returncode == 2
    assert run.stderr == (
        f"neuroloop run: error: {config}: EngineConfigs[0].EngineExtraConfigs.EnvKwarg: "
        "expected a known key (did you mean 'EnvKwargs'?). Known keys: EnvId, EnvKwargs, "
        'Worlds. Received: EnvKwarg={"g": 9.81}\n'
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"Worlds": "two"}, 'Worlds: expected an integer. Received: Worlds="two"'),
        ({"Worlds": 2}, "Worlds: expected 1. Received: Worlds=2"),
        ({"EnvKwargs": [1]}, "EnvKwargs: expected an object. Received: EnvKwargs=[1]"),
        (
            {"EnvId": ""},
            "EnvId: expected a non-empty string matching '^[^:]+$', e.g. 'Pendulum-v1'. "
            'Received: EnvId=""',
        ),
    ],
)
def test_a_wrong_value_says_what_was_expected_and_received(
    tmp_path: Path, extra: dict[str, Any], message: str
) -> None:
    path = write_config(tmp_path, gymnasium(**extra))

    assert load_error(path) == f"{path}: EngineConfigs[0].EngineExtraConfigs.{message}"


def test_a_misspelt_required_key_is_pointed_out(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"EngineType": "gymnasium", "EngineExtraConfigs": {"EnvID": "x"}})

    assert load_error(path) == (
        f"{path}: EngineConfigs[0].EngineExtraConfigs.EnvId: expected the required key EnvId "
        "(is 'EnvID' a misspelling of it?). Received: no EnvId (keys present: EnvID)"
    )


def test_defaults_are_filled_into_what_the_engine_receives(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, gymnasium()))

    engine = config.engine("env")
    assert engine.extra == {**PENDULUM, **GYMNASIUM_DEFAULTS}
    assert engine.section["EngineExtraConfigs"] == engine.extra
    assert config.document["EngineConfigs"][0]["EngineExtraConfigs"] == engine.extra


@pytest.mark.parametrize(
    "engine_class", [f"{TUNED_FILE}:TunedEngine", "tests.fixtures.tuned_engine:TunedEngine"]
)
def test_an_engine_of_ones_own_with_a_sibling_schema_is_checked(
    tmp_path: Path, engine_class: str
) -> None:
    tuned = {"EngineType": "python", "EngineClass": engine_class}
    path = write_config(tmp_path, {**tuned, "EngineExtraConfigs": {"Gian": 3}})
    assert load_error(path) == (
        f"{path}: EngineConfigs[0].EngineExtraConfigs.Gian: expected a known key "
        "(did you mean 'Gain'?). Known keys: Gain, Label. Received: Gian=3"
    )
    path = write_config(tmp_path, {**tuned, "EngineExtraConfigs": {"Gain": 0}})
    assert load_error(path) == (
        f"{path}: EngineConfigs[0].EngineExtraConfigs.Gain: expected a number > 0. Received: Gain=0"
    )

    config = load_config(write_config(tmp_path, tuned))

    assert config.engine("env").extra == TUNED_DEFAULTS


def test_an_engine_without_a_schema_gets_its_keys_unchanged(tmp_path: Path) -> None:
    custom = {"HangAtStep": 5, "AnyKey": {"nested": [1, 2]}}
    clock = {"EngineType": "python", "EngineClass": str(FIXTURES / "clock_engine.py")}

    config = load_config(write_config(tmp_path, {**clock, "EngineExtraConfigs": custom}))

    assert config.engine("env").extra == custom
    assert engine_extra_configs(ClockEngine, custom) == custom


def test_a_bad_override_is_blamed_on_the_override(tmp_path: Path) -> None:
    path = write_config(tmp_path, gymnasium())
    bad_value = "EngineConfigs.EngineName:env.EngineExtraConfigs.Worlds=8"
    misspelt = "EngineConfigs[0].EngineExtraConfigs.World=1"

    assert load_error(path, (bad_value,)) == (
        f"{path} (override {bad_value!r}): EngineConfigs[0].EngineExtraConfigs.Worlds: "
        "expected 1. Received: Worlds=8"
    )
    message = load_error(path, (misspelt,))
    assert message.startswith(
        f"{path} (override {misspelt!r}): EngineConfigs[0].EngineExtraConfigs.World: "
        "expected a known key (did you mean 'Worlds'?)"
    )


def test_an_engine_initialized_without_the_loader_checks_its_settings() -> None:
    with pytest.raises(ValueError) as caught:
        GymnasiumEngine("env").initialize(
            {"EngineTimestep": 0.05, "EngineExtraConfigs": {**PENDULUM, "Worlds": 2}}
        )
    assert str(caught.value) == "[env] EngineExtraConfigs.Worlds: expected 1. Received: Worlds=2"

    with pytest.raises(ValueError) as caught:
        TunedEngine("tuned").initialize({"EngineExtraConfigs": {"Gain": "high"}})
    assert str(caught.value) == (
        '[tuned] EngineExtraConfigs.Gain: expected a number > 0. Received: Gain="high"'
    )

    tuned = TunedEngine("tuned")
    tuned.initialize({})
    assert tuned.get_datapack("gain") == TUNED_DEFAULTS["Gain"]


def test_engine_extra_configs_fills_defaults_into_a_copy() -> None:
    given = {"Gain": 0.5}

    assert engine_extra_configs(TunedEngine, given) == {**TUNED_DEFAULTS, "Gain": 0.5}
    assert engine_extra_configs(TUNED_FILE, {}) == TUNED_DEFAULTS
    assert given == {"Gain": 0.5}
    with pytest.raises(ValueError, match=r"^EngineExtraConfigs\.Label: expected a string\."):
        engine_extra_configs(str(TUNED_FILE), {"Label": 7})
