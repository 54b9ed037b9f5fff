"""Sensation: validation, datapack round trip, Keras inputs."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest

from neuroloop.datapack import DataPack
from neuroloop.sensation import MODALITIES, Sensation

WORLDS = 3


def _values() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "vision": rng.integers(0, 255, size=(WORLDS, 4, 5, 3), dtype=np.uint8),
        "proprioception": rng.normal(size=(WORLDS, 24)).astype(np.float32),
        "goal": rng.normal(size=(WORLDS, 4)),
        "asymmetric": rng.normal(size=(WORLDS, 7)).astype(np.float32),
    }


def test_fields_are_the_modalities() -> None:
    assert tuple(field.name for field in fields(Sensation)) == MODALITIES


def test_round_trip_through_datapacks() -> None:
    values = _values()
    sensation = Sensation.from_values({**values, "touch": None})
    assert sensation.modalities == ("vision", "proprioception", "goal", "asymmetric")
    assert sensation.touch is None
    assert sensation.num_worlds == WORLDS

    datapacks = sensation.to_datapacks("brain")
    assert [(d.name, d.engine_name) for d in datapacks] == [
        (name, "brain") for name in sensation.modalities
    ]
    restored = Sensation.from_datapacks([*datapacks, DataPack("touch", "brain")])
    assert restored.modalities == sensation.modalities
    for name, array in values.items():
        restored_array = getattr(restored, name)
        assert restored_array.dtype == array.dtype
        np.testing.assert_array_equal(restored_array, array)


def test_as_inputs_adds_a_time_axis_and_selects() -> None:
    sensation = Sensation.from_values(_values())
    inputs = sensation.as_inputs(["proprioception", "goal"])
    assert list(inputs) == ["proprioception", "goal"]
    assert inputs["proprioception"].shape == (WORLDS, 1, 24)
    assert sensation.as_inputs(add_time_axis=False)["vision"].shape == (WORLDS, 4, 5, 3)
    with pytest.raises(ValueError, match=r"requested modalities \['touch'\] are not present"):
        sensation.as_inputs(["touch"])


def test_mismatched_worlds_name_modalities_and_shapes() -> None:
    with pytest.raises(
        ValueError,
        match=r"same first \(world\) dimension. Received: proprioception.shape=\(3, 2\), "
        r"goal.shape=\(2, 4\)",
    ):
        Sensation(proprioception=np.zeros((3, 2)), goal=np.zeros((2, 4)))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"proprioception": np.zeros(24)}, r"Sensation.proprioception: expected rank 2"),
        ({"vision": np.zeros((3, 4, 4))}, r"Sensation.vision: expected rank 4"),
        ({"goal": np.array([["a", "b"]])}, r"Sensation.goal: expected a numeric"),
        ({"smell": np.zeros((3, 1))}, r"expected modalities from .*Received: \['smell'\]"),
        ({"touch": None}, "expected at least one of"),
    ],
)
def test_invalid_sensations(values: dict[str, np.ndarray | None], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Sensation.from_values(values)


def test_json_datapack_is_rejected() -> None:
    with pytest.raises(ValueError, match="brain/goal must hold an array"):
        Sensation.from_datapacks([DataPack("goal", "brain", {"x": 1.0})])
