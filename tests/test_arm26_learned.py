"""The shipped learned-body config: the shipped ControllerNet reaching on the arm's learned
twin (the shipped ArmNet served by the surrogate engine), through the center-out functions."""

from __future__ import annotations

import json
from pathlib import Path

from neuroloop.simulation import Simulation

REPO = Path(__file__).resolve().parents[1]
LEARNED = REPO / "simulation_configs" / "arm26_center_out_learned.json"
CONTROLLED = REPO / "simulation_configs" / "arm26_center_out_controlled.json"
ENDPOINT_BOUND_M = 0.005
"""The controller was trained through this very ArmNet: it ends well within 1 cm (measured
0.07 cm mean over these 8 trials)."""
SUCCESS_BOUND = 0.875
"""At least 7 of the 8 trials end within the task's 1 cm (measured: all 8)."""


def test_the_learned_config_swaps_only_the_body_engine() -> None:
    learned, controlled = (json.loads(path.read_text()) for path in (LEARNED, CONTROLLED))
    assert learned["EngineConfigs"][0]["EngineType"] == "surrogate"
    assert controlled["EngineConfigs"][0]["EngineType"] == "mujoco"
    for key in ("Task", "DataPackProcessingFunctions", "StatusFunction", "SimulationTimestep"):
        assert learned[key] == controlled[key], key


def test_the_controller_reaches_on_the_learned_body() -> None:
    # One trial of 1 s per world (8 worlds, targets drawn at random), then the metrics.
    with Simulation.from_config(
        LEARNED, ("SimulationTimeout=1.01",), echo_engine_output=False
    ) as sim:
        sim.run_until_timeout()
        status = sim.loop.functions.last_status
    assert status["trials"] == 8
    assert status["endpoint_error"] < ENDPOINT_BOUND_M, status
    assert status["success"] >= SUCCESS_BOUND, status
