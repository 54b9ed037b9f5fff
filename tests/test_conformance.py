"""Every engine that ships passes the engine conformance checker; a broken one does not."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from neuroloop.checker import EngineConformanceError, check_engine
from neuroloop.config import load_config
from neuroloop.datapack import DataPackValue
from neuroloop.engine import Engine, load_engine_class

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "simulation_configs"
SHIPPED = [
    (CONFIGS / "pendulum_brain.json", "env"),
    (CONFIGS / "pendulum_brain.json", "brain"),
    (CONFIGS / "shadow_hand_reach.json", "physics"),
    (CONFIGS / "shadow_hand_reach.json", "brain"),
    (CONFIGS / "shadow_hand_manipulate_block.json", "physics"),
    (CONFIGS / "shadow_hand_manipulate_block_dr.json", "physics"),
]
SCRIPT = REPO / "tests" / "fixtures" / "resetting_script.py"


def _inputs(kind: str, section: Mapping[str, Any]) -> Any:
    """What the loop would send to an engine of ``kind``, and values it must refuse."""
    extra = section.get("EngineExtraConfigs") or {}
    rng = np.random.default_rng(0)
    if kind == "keras_brain":
        worlds = extra.get("Worlds", 1)
        good = {
            name: rng.normal(size=(worlds, *shape)).astype(np.float32)
            for name, shape in extra["InputShapes"].items()
        }
        modality = next(iter(good))
        bad = [(modality, np.zeros((worlds, 999), np.float32)), ("weights", np.zeros(3))]
        return good, bad
    if kind == "mujoco":

        def ctrl(engine: Engine) -> Mapping[str, DataPackValue]:
            ctrl_range = np.asarray(engine.get_datapack("actuator_ctrlrange"))
            worlds = extra.get("Worlds", 1)
            return {"ctrl": np.tile(ctrl_range.mean(axis=1), (worlds, 1))}

        def bad_ctrl(engine: Engine) -> Sequence[tuple[str, DataPackValue]]:
            (good,) = ctrl(engine).values()
            assert isinstance(good, np.ndarray)
            return [("ctrl", good[:, :-1]), ("ctrl", np.full_like(good, np.nan))]

        return ctrl, bad_ctrl
    if kind == "gymnasium":
        return {"action": np.array([0.5], np.float32)}, [("action", np.zeros(3))]
    return {}, []


@pytest.mark.parametrize(("config_path", "engine_name"), SHIPPED, ids=lambda x: str(x))
def test_shipped_engines_conform(config_path: Path, engine_name: str) -> None:
    config = load_config(config_path)
    engine = config.engine(engine_name)
    inputs, bad = _inputs(engine.type, engine.section)
    signatures = check_engine(
        load_engine_class(engine.engine_class),
        engine.section,
        timestep_ns=engine.timestep_ns,
        inputs=inputs,
        bad_inputs=bad,
        name=engine_name,
    )
    assert signatures  # every engine produced datapacks


def test_the_script_engine_conforms() -> None:
    """NRP-core engine scripts run in neuroloop's script engine (with a script that resets)."""
    section = {"EngineName": "script", "EngineType": "python_json", "PythonFileName": str(SCRIPT)}
    engine_class = load_engine_class("neuroloop.script_engine:ScriptEngine")
    signatures = check_engine(engine_class, section, timestep_ns=1_000_000, name="script")
    assert signatures["clock"].kind == "dict"


class _Dice(Engine):
    """Rolls an unseeded die every step: not deterministic."""

    def initialize(self, config: Mapping[str, Any]) -> None:
        self.value = np.zeros(1)

    def reset(self, seed: int | None) -> None:
        self.value = np.zeros(1)

    def step(self, timestep_ns: int) -> None:
        self.value = np.random.default_rng().random(1)

    datapack_names = ("value",)

    def get_datapack(self, name: str) -> DataPackValue:
        return self.value

    def set_datapack(self, name: str, value: DataPackValue) -> None:
        raise ValueError(f"[{self.name}] value is read-only")


class _Growing(_Dice):
    """Seeded, but its datapack grows a row every step."""

    def reset(self, seed: int | None) -> None:
        self.value = np.zeros((1, 2))

    def step(self, timestep_ns: int) -> None:
        self.value = np.concatenate([self.value, np.zeros((1, 2))])


class _Lenient(_Growing):
    """Stable and seeded, but accepts any value without complaint."""

    def step(self, timestep_ns: int) -> None:
        self.value = self.value + 1.0

    def set_datapack(self, name: str, value: DataPackValue) -> None:
        self.value = np.asarray(value)


@pytest.mark.parametrize(
    ("engine_class", "bad", "rule"),
    [
        (_Dice, [], "seeded determinism"),
        (_Growing, [], r"stable datapacks: 'value' changed"),
        (_Lenient, [("value", "not a number")], r"bad input: 'value' = 'not a number' was"),
    ],
)
def test_the_checker_catches_broken_engines(
    engine_class: type[Engine], bad: Any, rule: str
) -> None:
    with pytest.raises(EngineConformanceError, match=rule):
        check_engine(engine_class, {}, timestep_ns=1_000_000, bad_inputs=bad)
