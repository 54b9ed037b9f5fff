"""NRP-core users' files run unchanged: engine scripts, `from nrp_core import *` functions."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import neuroloop.datapack
import neuroloop.functions
import neuroloop.script_engine
from neuroloop.simulation import Simulation
from tests.processes import FIXTURES, engine_processes

CONFIG = FIXTURES / "nrp" / "simulation_config.json"
MS = 1_000_000

# Both engines use the default EngineTimestep (0.01 s), and so the loop (the smallest
# EngineTimestep), so every engine is stepped at every 10 ms. At loop iteration k (time
# k * 10 ms), python_1's clock has been stepped k times and reads k * 10 ms: NRP-core
# advances a script's time before its runLoop, so the step that ends at k * 10 ms reads
# k * 10 ms (engine_1.py publishes self._time_ns as it is). tf_1 forwards that to python_2,
# whose step then appends it to its history. At 50 ms the clock has made 5 steps and the
# status function sets the done flag; as in NRP-core, the engines due at 50 ms are still
# stepped, so python_2 receives the 50 ms value too.
EXPECTED_HISTORY = [{"seen_time": k * 10 * MS, "iteration": k} for k in range(6)]

NRP_CORE_NAMES = {
    "nrp_core": {
        "DataPack": neuroloop.datapack.DataPack,
        "DataPackIdentifier": neuroloop.datapack.DataPackIdentifier,
        "EngineDataPack": neuroloop.functions.EngineDataPack,
        "PreprocessedDataPack": neuroloop.functions.PreprocessedDataPack,
        "PreprocessingFunction": neuroloop.functions.PreprocessingFunction,
        "SimulationIteration": neuroloop.functions.SimulationIteration,
        "SimulationTime": neuroloop.functions.SimulationTime,
        "StatusFunction": neuroloop.functions.StatusFunction,
        "TransceiverFunction": neuroloop.functions.TransceiverFunction,
        "getSimulationIteration": neuroloop.functions.getSimulationIteration,
        "getSimulationTime": neuroloop.functions.getSimulationTime,
    },
    "nrp_core.data.nrp_json": {
        "JsonDataPack": neuroloop.datapack.JsonDataPack,
        "JsonRawData": neuroloop.functions.JsonRawData,
        "SimulationStatus": neuroloop.functions.SimulationStatus,
    },
    "nrp_core.engines.python_json": {"EngineScript": neuroloop.script_engine.EngineScript},
    "nrp_core.engines.python_grpc": {"GrpcEngineScript": neuroloop.script_engine.GrpcEngineScript},
}


def test_star_imports_expose_the_nrp_core_names() -> None:
    for module, expected in NRP_CORE_NAMES.items():
        namespace: dict[str, Any] = {}
        exec(f"from {module} import *", namespace)
        exported = {name: value for name, value in namespace.items() if name != "__builtins__"}
        assert exported == expected, module


def test_the_nrp_config_runs_unchanged_through_simulation() -> None:
    with Simulation.from_config(CONFIG, echo_engine_output=False) as sim:
        assert sim.datapack_names == {
            "python_1": ["clock"],
            "python_2": ["history", "incoming"],
        }
        sim.run_until_timeout()
        assert sim.done and sim.loop.done  # ended by the status function, not the 1 s timeout
        assert sim.time_ns == 50 * MS
        assert sim.iteration == 6
        assert sim.loop.functions.last_status == {"steps": 5, "sim_time": 50 * MS, "done": True}
        assert sim.datapack("clock", "python_1") == {"time": 50 * MS, "steps": 5}
        assert sim.datapack("history", "python_2") == EXPECTED_HISTORY
        # python_2 was last stepped at 50 ms, with what tf_1 forwarded then.
        assert sim.datapack("incoming", "python_2") == EXPECTED_HISTORY[-1]

        # python_2's script resets its history; python_1's keeps its clock (NRP-core's
        # EngineScript.reset does nothing unless the script overrides it).
        sim.reset(seed=1)
        assert sim.time_ns == 0
        assert sim.datapack("history", "python_2") == []
    assert engine_processes(os.getpid()) == []


def test_the_nrp_config_runs_unchanged_through_neuroloop_run() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "neuroloop", "run", str(CONFIG), "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert "simulation   nrp_tf_exchange" in lines
    assert "simulated    0.050 s in 6 loop steps" in lines
    assert "ended by     status function" in lines
    assert "steps        5" in lines
    assert f"sim_time     {50 * MS}" in lines
    # The engine script's own print, forwarded with the engine's name at shutdown.
    assert "[python_1] engine_1 shutting down" in lines
    assert run.stderr == ""


TRAJECTORY_CONFIG = FIXTURES / "nrp" / "status_trajectory.json"


def observation(iteration: int) -> list[dict[str, Any]]:
    """What status_trajectory.py returns at ``iteration``: python_1 (10 ms) arrives every
    iteration, python_2 (20 ms) every other one; the datapack addressed to python_2 stays in
    the trajectory."""
    updated = {"clock_updated": True, "history_updated": iteration % 2 == 0}
    return [{"iteration": iteration, **updated}, {"iteration": iteration}]


def test_run_loop_returns_the_done_flag_of_each_iteration_and_the_trajectory() -> None:
    # NRP-core's nrp_client: run_loop(n) runs n iterations whatever the done flag says and
    # returns (done, trajectory); the trajectory (every status observation since the last
    # one handed over) comes back only with done. Status datapacks never reach engines.
    with Simulation.from_config(TRAJECTORY_CONFIG, echo_engine_output=False) as sim:
        assert sim.config.timestep_ns == 10 * MS  # the smallest EngineTimestep
        assert sim.run_loop(1) == (False, [])  # iteration 0
        assert sim.run_loop(1) == (False, [])  # iteration 1: python_2 did not step
        done, trajectory = sim.run_loop(1)  # iteration 2: python_2's datapack arrived
        assert done
        assert trajectory == [*observation(0), *observation(1), *observation(2)]
        assert sim.run_loop(1) == (False, [])  # iteration 3: the flag is not kept
        # Only the flag of the last iteration counts: iteration 4 was done, 5 was not.
        assert sim.run_loop(2) == (False, [])
        expected = [observation(i) for i in (3, 4, 5, 6)]
        assert sim.run_loop(1) == (True, [item for pair in expected for item in pair])
        assert sim.time_ns == 70 * MS
        assert sim.datapack("history", "python_2") == []  # "incoming" never sent


def test_run_until_timeout_stops_at_the_done_flag_and_keeps_it_until_an_iteration() -> None:
    with Simulation.from_config(TRAJECTORY_CONFIG, echo_engine_output=False) as sim:
        expected = [*observation(0), *observation(1), *observation(2)]
        assert sim.run_until_timeout() == (True, False, expected)
        assert sim.time_ns == 20 * MS
        # NRP-core checks the done flag before each iteration: it still stands.
        assert sim.run_until_timeout() == (True, False, [])
        assert sim.time_ns == 20 * MS and sim.iteration == 3
        # A reset clears the flag and the trajectory and starts again at time 0.
        sim.reset()
        assert sim.run_loop(1) == (False, [])
        assert sim.run_until_timeout() == (True, False, expected)
