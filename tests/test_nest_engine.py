"""NRP-core's nest_json engine: an NRP-style NEST experiment checked against the LIF
neuron's closed-form firing period, and its errors."""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
import os
from pathlib import Path
from typing import Any

import pytest

from neuroloop.errors import NeuroloopError
from neuroloop.plugins.engines.nest_engine import DEVICES
from neuroloop.simulation import Simulation
from tests.processes import FIXTURES, engine_processes

needs_nest = pytest.mark.skipif(
    importlib.util.find_spec("nest") is None,
    reason="the nest extra (nest-simulator) is not installed: pip install '.[nest]'",
)

EXAMPLE = FIXTURES / "nrp_examples" / "nest"
# NEST's iaf_psc_alpha defaults and the current drive.py injects.
C_M_PF, TAU_M_MS, T_REF_MS = 250.0, 10.0, 2.0
E_L_MV, V_TH_MV = -70.0, -55.0
CURRENT_PA = 500.0
RESOLUTION_MS = 0.1


def test_nrp_core_nest_json_offers_the_device_registration_functions() -> None:
    namespace: dict[str, Any] = {}
    exec("from nrp_core.engines.nest_json import *", namespace)
    assert {"RegisterDataPack", "CreateDataPack", "GetDevMap"} <= namespace.keys()
    namespace["RegisterDataPack"]("probe", "nodes")
    try:
        assert namespace["GetDevMap"]() == {"probe": "nodes"}
        with pytest.raises(ValueError, match="expected a datapack name other than 'kernel'"):
            namespace["RegisterDataPack"]("kernel", "nodes")
    finally:
        DEVICES.devices.clear()


@needs_nest
def test_an_nrp_style_nest_experiment_fires_at_the_lif_period() -> None:
    with Simulation.from_config(
        EXAMPLE / "simulation_config.json", echo_engine_output=False
    ) as sim:
        sim.run_until_timeout()
        assert sim.datapack_names == {"brain": ["current", "kernel", "neuron", "spikes"]}
        (recorder,) = sim.datapack("spikes", "brain")
        (neuron,) = sim.datapack("neuron", "brain")
        (current,) = sim.datapack("current", "brain")
        kernel = sim.datapack("kernel", "brain")
        # Reset rebuilds the network from the init file, seeded with seed + 1.
        sim.reset(seed=4)
        rebuilt = sim.datapack("kernel", "brain")
        assert (rebuilt["biological_time"], rebuilt["rng_seed"]) == (0.0, 5)
        assert sim.datapack("spikes", "brain")[0]["n_events"] == 0
    assert engine_processes(os.getpid()) == []
    assert current["amplitude"] == CURRENT_PA
    assert kernel["biological_time"] == pytest.approx(100.0)
    assert kernel["rng_seed"] == 3  # NestRNGSeed, applied after the init file reset the kernel
    assert neuron["V_min"] is None  # -inf reads as null, as in NRP-core's JSON
    # From reset, V relaxes towards E_L + R I with R = tau_m / C_m = 40 MOhm (R I = 20 mV) and
    # reaches V_th (15 mV above E_L) after tau_m ln(20 / 5); add the refractory period. NEST
    # emits spikes on its 0.1 ms grid, so the period is that, rounded up to the grid.
    drive_mv = TAU_M_MS / C_M_PF * CURRENT_PA
    period_ms = T_REF_MS + TAU_M_MS * math.log(drive_mv / (drive_mv - (V_TH_MV - E_L_MV)))
    grid_period_ms = math.ceil(period_ms / RESOLUTION_MS) * RESOLUTION_MS
    times = recorder["events"]["times"]
    assert recorder["n_events"] == len(times) >= 5
    intervals = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert intervals == pytest.approx([grid_period_ms] * len(intervals), abs=1e-9)


@needs_nest
def test_a_failing_init_file_is_one_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("import nest\nnest.Create('no_such_model')\n")
    config = json.loads((EXAMPLE / "simulation_config.json").read_text())
    config["EngineConfigs"][0]["NestInitFileName"] = "broken.py"
    config["DataPackProcessingFunctions"] = []
    (tmp_path / "simulation_config.json").write_text(json.dumps(config))
    with pytest.raises(NeuroloopError, match=r"broken\.py.*no_such_model"):
        with Simulation.from_config(tmp_path / "simulation_config.json", echo_engine_output=False):
            pass
    assert engine_processes(os.getpid()) == []
