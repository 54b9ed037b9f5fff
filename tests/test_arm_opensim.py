"""A muscle-driven OpenSim arm through the OpenSim engine (py_sim, ``Simulator: Opensim``).

The test builds a two-segment planar arm with OpenSim's Python API (shoulder locked, elbow
free at 90 degrees, no gravity) with an elbow flexor and an elbow extensor
(``Thelen2003Muscle``), runs it in a real py_sim engine process with constant excitations
from a transceiver function, and checks that each muscle turns the elbow its own way.
Skipped, saying so, without the ``opensim`` extra.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from neuroloop.simulation import Simulation

UPPER_ARM_M = 0.3
"""Shoulder-elbow distance."""
ELBOW_START = math.pi / 2
SCRIPT = """
from nrp_core.engines.py_sim import PySimEngineScript


class Script(PySimEngineScript):
    def initialize(self):
        self._registerDataPack("excitation")
        self._registerDataPack("arm")
        self._setDataPack("arm", {})

    def runLoop(self, timestep_ns):
        command = self._getDataPack("excitation")
        self.sim_manager.run_step(command.get("act_list") if command else [], timestep_ns)
        self._setDataPack(
            "arm",
            {
                "elbow": self.sim_manager.get_model_property("elbow_angle", "Joint"),
                "shoulder": self.sim_manager.get_model_property("shoulder_angle", "Joint"),
                "forces": self.sim_manager.get_model_all_properties("Force"),
                "time": self.sim_manager.get_sim_time(),
            },
        )

    def shutdown(self):
        self.sim_manager.shutdown()
"""
"""The PySim engine script: excitations in, elbow and shoulder angles and forces out."""
FUNCTION = """
from nrp_core import *
from nrp_core.data.nrp_json import *

EXCITATIONS = {excitations}


@TransceiverFunction("arm")
def excite():
    command = JsonDataPack("excitation", "arm")
    command.data["act_list"] = EXCITATIONS
    return [command]
"""
"""A transceiver function sending constant excitations (flexor, extensor)."""


def write_muscle_arm(opensim: Any, path: Path) -> None:
    """Upper arm along +x from the shoulder, forearm from the elbow at (0.3, 0) pointing +y
    (elbow 90 degrees, flexion positive), a flexor inside the elbow angle and an extensor
    passing behind the elbow."""
    opensim.Logger.removeFileSink()
    model = opensim.Model()
    model.setName("muscle_arm")
    model.setGravity(opensim.Vec3(0, 0, 0))
    zero = opensim.Vec3(0, 0, 0)
    upper = opensim.Body(
        "upper_arm", 1.5, opensim.Vec3(0.15, 0, 0), opensim.Inertia(0.01, 0.01, 0.01)
    )
    forearm = opensim.Body(
        "forearm", 1.0, opensim.Vec3(0.15, 0, 0), opensim.Inertia(0.01, 0.01, 0.01)
    )
    shoulder = opensim.PinJoint("shoulder", model.getGround(), zero, zero, upper, zero, zero)
    elbow = opensim.PinJoint(
        "elbow", upper, opensim.Vec3(UPPER_ARM_M, 0, 0), zero, forearm, zero, zero
    )
    shoulder.updCoordinate().setName("shoulder_angle")
    shoulder.updCoordinate().setDefaultLocked(True)
    elbow.updCoordinate().setName("elbow_angle")
    elbow.updCoordinate().setDefaultValue(ELBOW_START)
    for body, joint in ((upper, shoulder), (forearm, elbow)):
        model.addBody(body)
        model.addJoint(joint)
    flexor = opensim.Thelen2003Muscle("flexor", 200.0, 0.1, 0.06, 0.0)
    flexor.addNewPathPoint("origin", upper, opensim.Vec3(0.15, 0.02, 0))
    flexor.addNewPathPoint("insertion", forearm, opensim.Vec3(0.1, 0.01, 0))
    extensor = opensim.Thelen2003Muscle("extensor", 200.0, 0.1, 0.05, 0.0)
    extensor.addNewPathPoint("origin", upper, opensim.Vec3(0.15, -0.02, 0))
    extensor.addNewPathPoint("insertion", forearm, opensim.Vec3(-0.02, -0.01, 0))
    model.addForce(flexor)
    model.addForce(extensor)
    model.finalizeConnections()
    model.printToXML(str(path))


def run_arm(folder: Path, excitations: list[float]) -> dict[str, Any]:
    """Run the arm for 0.1 s under constant ``excitations``; the last ``arm`` datapack."""
    (folder / "arm_script.py").write_text(SCRIPT)
    (folder / "excite.py").write_text(FUNCTION.format(excitations=excitations))
    config = folder / "simulation_config.json"
    config.write_text(
        json.dumps(
            {
                "SimulationTimeout": 0.1,
                "SimulationTimestep": 0.01,
                "EngineConfigs": [
                    {
                        "EngineType": "py_sim",
                        "EngineName": "arm",
                        "PythonFileName": "arm_script.py",
                        "WorldFileName": "muscle_arm.osim",
                        "Simulator": "Opensim",
                        "EngineExtraConfigs": {"Integrator accuracy": 1e-5},
                    }
                ],
                "DataPackProcessingFunctions": [{"Name": "excite", "FileName": "excite.py"}],
            }
        )
    )
    with Simulation.from_config(config, echo_engine_output=False) as sim:
        sim.run_until_timeout()
        arm: dict[str, Any] = sim.datapack("arm", "arm")
    return arm


def test_the_opensim_muscle_arm_turns_the_elbow_each_muscle_s_way(tmp_path: Path) -> None:
    opensim = pytest.importorskip("opensim", reason="the opensim extra is not installed")
    write_muscle_arm(opensim, tmp_path / "muscle_arm.osim")
    flexed = run_arm(tmp_path, [1.0, 0.0])
    extended = run_arm(tmp_path, [0.0, 1.0])
    for arm in (flexed, extended):
        assert arm["time"] == pytest.approx(0.1, abs=1e-9)
        assert arm["shoulder"] == pytest.approx(0.0, abs=1e-12)  # locked
        assert set(arm["forces"]) == {"flexor", "extensor"}
    # 0.1 s of a fully excited flexor bends the elbow by about 0.5 rad, the extensor opens it
    # by about 0.2 rad (its moment arm is the smaller).
    assert flexed["elbow"] > ELBOW_START + 0.2
    assert extended["elbow"] < ELBOW_START - 0.1
    # Muscles only pull: every force is a non-negative tension (N).
    for arm in (flexed, extended):
        assert all(0.0 <= force[0] < 200.0 for force in arm["forces"].values())
