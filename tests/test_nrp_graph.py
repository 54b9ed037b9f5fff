"""NRP-core's computational graph: node order, policies, engine nodes, in the FTILoop."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest

from neuroloop.config import load_config
from neuroloop.datapack import DataPack
from neuroloop.errors import ConfigError
from neuroloop.functions import DataPackStore, FunctionError
from neuroloop.graph import ComputationalGraph, load_graph
from neuroloop.simulation import Simulation
from tests.processes import FIXTURES, run_neuroloop

MS = 1_000_000

GRAPH = """
from nrp_core.data.nrp_json import JsonDataPack
from nrp_core.event_loop import *

CALLS = []


# Declared before its producer: the graph orders nodes by their edges, not by the file.
@ToEngine(keyword="command", address="/body")
@FromFunctionalNode("doubled", "/doubler/doubled")
@Clock("clock_ms")
@FunctionalNode(name="commander", outputs=["command"])
def command(doubled, clock_ms):
    CALLS.append(("commander", doubled, clock_ms))
    return [JsonDataPack("command", "body", {"torque": doubled})]


@FromEngine("angle", "/body/angle", cache_policy=node_policies.input_node.msg_cache.{cache})
@FunctionalNode(name="doubler", outputs=["doubled"])
def double(angle):
    CALLS.append(("doubler", None if angle is None else angle.data))
    return None if angle is None else [2 * angle.data]


@FromEngine("angle", "/body/angle")
@FunctionalNode(
    name="logger", outputs=[], exec_policy=node_policies.functional_node.exec_policy.always
)
def log(angle):
    CALLS.append(("logger",))
    return []
"""


def graph(tmp_path: Path, output_driven: bool, cache: str = "keep") -> ComputationalGraph:
    file = tmp_path / "graph.py"
    file.write_text(GRAPH.replace("{cache}", cache))
    return load_graph([file], ["body"], "sim.json", {}, output_driven)


def cycle(graph: ComputationalGraph, store: DataPackStore, angle: float | None, due: set[str]):
    if angle is not None:
        store.update("body", {"angle": angle})
    result = graph.run(due, store, time_ns=7 * MS, iteration=0)
    store.clear_updated()
    return result.to_engines


def calls(graph: ComputationalGraph) -> list[tuple[object, ...]]:
    module_calls: list[tuple[object, ...]] = graph.nodes[0].func.__globals__["CALLS"]
    found = list(module_calls)
    module_calls.clear()
    return found


def test_nodes_run_in_edge_order_with_their_policies(tmp_path: Path) -> None:
    cg = graph(tmp_path, output_driven=False)  # AllNodes
    assert [node.name for node in cg.nodes] == ["doubler", "logger", "commander"]
    store = DataPackStore()
    [sent] = cycle(cg, store, 1.5, {"body"})
    assert (sent.name, sent.engine_name, sent.data) == ("command", "body", {"torque": 3.0})
    assert calls(cg) == [("doubler", 1.5), ("logger",), ("commander", 3.0, 7)]
    # No new angle: on_new_message nodes wait (the clock is new, so commander runs with
    # doubler's kept output); always nodes run.
    assert len(cycle(cg, store, None, {"body"})) == 1
    assert calls(cg) == [("logger",), ("commander", 3.0, 7)]


def test_a_clear_cache_input_passes_none_without_a_new_datapack(tmp_path: Path) -> None:
    cg = graph(tmp_path, output_driven=False, cache="clear")
    store = DataPackStore()
    cycle(cg, store, 1.0, {"body"})
    calls(cg)
    store.engine[DataPack("angle", "body").id].mark_updated(False)
    # doubler has no new input, so it does not run even though its input would be None.
    cycle(cg, store, None, {"body"})
    assert calls(cg) == [("logger",), ("commander", 2.0, 7)]


def test_output_driven_runs_only_nodes_leading_to_due_engines(tmp_path: Path) -> None:
    cg = graph(tmp_path, output_driven=True)
    store = DataPackStore()
    assert cycle(cg, store, 1.0, set()) == []  # body not stepped: nothing runs
    assert calls(cg) == []
    assert len(cycle(cg, store, 1.0, {"body"})) == 1
    assert calls(cg) == [("doubler", 1.0), ("commander", 2.0, 7)]  # logger leads nowhere


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ('@FromFunctionalNode("x", "/nobody/out")\n', "to name an output of a functional node"),
        ('@FromEngine("x", "/brain/out")\n', "engine='brain'"),
        ('@FromFunctionalNode("x", "/n/out")\n', "a graph without cycles"),
    ],
)
def test_a_broken_graph_is_a_config_error(tmp_path: Path, source: str, message: str) -> None:
    (tmp_path / "bad.py").write_text(
        "from nrp_core.event_loop import *\n"
        f"{source}@FunctionalNode(name='n', outputs=['out'])\ndef n(x):\n    return [x]\n"
    )
    with pytest.raises(ConfigError, match=message):
        load_graph([tmp_path / "bad.py"], ["body"], "sim.json")


def test_a_node_returning_the_wrong_number_of_values_names_itself(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text(
        "from nrp_core.event_loop import *\n"
        "@Iteration('i')\n@FunctionalNode(name='pair', outputs=['a', 'b'])\n"
        "def pair(i):\n    return [i]\n"
    )
    cg = load_graph([tmp_path / "bad.py"], [], "sim.json", output_driven=False)
    with pytest.raises(FunctionError, match="'pair': expected None or a list of 2 value"):
        cg.run(set(), DataPackStore(), 0, 0)


def test_the_graph_replaces_transceiver_functions_in_the_fti_loop() -> None:
    # python_1 (10 ms) publishes its clock; python_2 (20 ms) is due at 0, 20, 40 ms: only
    # then do the reader and forwarder nodes run (OutputDriven), and the idle node never.
    with Simulation.from_config(FIXTURES / "nrp" / "graph_config.json") as sim:
        assert sim.loop.requested == {"python_1": ["clock"], "python_2": []}
        sim.run_loop(6)
        assert sim.time_ns == 60 * MS
        assert sim.datapack("history", "python_2") == [
            {"seen_time": t * 10 * MS, "iteration": t} for t in (0, 2, 4)
        ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ComputationalGraph": []}, "ComputationalGraph: expected graph files with"),
        (
            {"StatusFunction": {"Name": "s", "FileName": "status_function.py"}},
            "StatusFunction: expected StatusFunction only with DataPackProcessor tf (FTILoop). "
            'Received: DataPackProcessor="cg", SimulationLoop="FTILoop"',
        ),
        ({"DataPackProcessor": "tf"}, "ComputationalGraph only with DataPackProcessor cg or"),
    ],
)
def test_functions_go_with_tf_and_a_graph_with_cg(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    for file in (FIXTURES / "nrp").iterdir():
        shutil.copy(file, tmp_path)
    document = json.loads((FIXTURES / "nrp" / "graph_config.json").read_text())
    (tmp_path / "graph_config.json").write_text(json.dumps({**document, **change}))
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(tmp_path / "graph_config.json")


def test_the_event_loop_runs_the_graph_every_timestep_of_wall_clock_time() -> None:
    # Timestep 0.05 s, Timeout 0.3 s: cycles 0..5 start at k * 50 ms after the loop starts;
    # the clock node reads the milliseconds since then, so never less than k * 50.
    started = time.monotonic()
    with Simulation.from_config(FIXTURES / "nrp" / "event_loop.json") as sim:
        assert sim.run_until_timeout() == (False, True, [])
        graph = sim.loop.functions
        assert isinstance(graph, ComputationalGraph)
        ticks = graph.nodes[0].func.__globals__["TICKS"]
    assert time.monotonic() - started >= 0.25
    assert [iteration for iteration, _ in ticks] == list(range(6))
    assert all(clock_ms >= 50 * k for k, (_, clock_ms) in enumerate(ticks))
    assert sim.time_ns == 300 * MS


def test_an_unsupported_graph_node_is_one_line_naming_it(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "nrp" / "event_loop.json", tmp_path)
    (tmp_path / "event_loop_graph.py").write_text(
        "from nrp_core.event_loop import *\n"
        "fn = createFNFromFactoryModule(module_name='lib.so', function_name='f', node_name='n')\n"
    )
    run = run_neuroloop("run", tmp_path / "event_loop.json", timeout=60)
    assert run.returncode == 2
    [line] = run.stderr.splitlines()
    assert "line 2: loading it raised UnsupportedNodeError: createFNFromFactoryModule: " in line
    assert "NRP-core's C++ functional nodes are not supported by neuroloop" in line


def test_an_event_loop_without_a_timeout_is_refused_before_it_runs(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "nrp" / "event_loop_graph.py", tmp_path)
    document = json.loads((FIXTURES / "nrp" / "event_loop.json").read_text())
    document["EventLoop"]["Timeout"] = 0
    (tmp_path / "event_loop.json").write_text(json.dumps(document))
    run = run_neuroloop("run", tmp_path / "event_loop.json", timeout=60)
    assert run.returncode == 2
    assert "EventLoop.Timeout: expected a timeout > 0 s or a StatusFunction" in run.stderr
