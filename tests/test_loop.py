"""FTILoop over real engine processes: exact exchange times, reset, datapack access."""

from __future__ import annotations

import os

import numpy as np
import pytest

from neuroloop.simulation import Simulation
from tests.processes import FIXTURES, engine_processes

MS = 1_000_000


def exchange(overrides: tuple[str, ...] = ()) -> Simulation:
    return Simulation.from_config(FIXTURES / "exchange.json", overrides, echo_engine_output=False)


def test_two_engines_at_different_timesteps_exchange_at_exact_times() -> None:
    with exchange() as sim:
        sim.run_until_timeout()
        assert sim.time_ns == 60 * MS
        assert sim.iteration == 6  # events at 0, 10, 20, 30, 40, 50 ms
        fast = sim.datapack("received", "fast")
        slow = sim.datapack("received", "slow")
        assert sim.datapack("time", "fast") == 60 * MS
        assert sim.datapack("time", "slow") == 60 * MS

    # The fast engine (10 ms) is stepped at every event; what it receives at t was computed
    # from the slow engine's latest datapack, which only changes when the slow engine's
    # 20 ms step ends.
    assert [(m["loop_time"], m["other_time"], m["fresh"]) for m in fast] == [
        (0, 0, True),
        (10 * MS, 0, False),
        (20 * MS, 20 * MS, True),
        (30 * MS, 20 * MS, False),
        (40 * MS, 40 * MS, True),
        (50 * MS, 40 * MS, False),
    ]
    assert [(m["loop_time"], m["other_time"], m["iteration"]) for m in slow] == [
        (0, 0, 0),
        (20 * MS, 20 * MS, 2),
        (40 * MS, 40 * MS, 4),
    ]
    assert engine_processes(os.getpid()) == []


def test_step_reset_and_python_api() -> None:
    with exchange(("SimulationTimeout=0",)) as sim:
        assert sim.step(3) is False
        assert sim.time_ns == 30 * MS
        assert sim.datapack("steps", "fast") == 3
        assert sim.datapack("steps", "slow") == 2  # its second step ends at 40 ms
        sim.set_datapack("inbox", "slow", np.arange(3))
        sim.reset(seed=7)
        assert sim.time_ns == 0
        assert sim.datapack("time", "fast") == 0
        assert sim.datapack("seed", "slow") == 7
        sim.step(1)
        assert sim.datapack("steps", "fast") == 1


def test_run_until_timeout_needs_an_end() -> None:
    from neuroloop.errors import ConfigError

    with exchange(("SimulationTimeout=0",)) as sim, pytest.raises(ConfigError, match="timeout"):
        sim.run_until_timeout()


def test_engines_report_their_names() -> None:
    with exchange() as sim:
        assert "received" in sim.datapack_names["fast"]
        with pytest.raises(KeyError, match="no engine 'nope'"):
            sim.datapack("time", "nope")


def test_observers_see_what_each_step_of_their_engine_is_sent() -> None:
    sent: list[tuple[int, dict[str, object]]] = []
    with exchange() as sim:
        sim.loop.observe_sent("slow", lambda now, datapacks: sent.append((now, dict(datapacks))))
        sim.run_until_timeout()
        received = sim.datapack("received", "slow")
        with pytest.raises(KeyError, match="no engine 'nope'"):
            sim.loop.observe_sent("nope", lambda now, datapacks: None)
    # One call per step of the slow engine (20 ms), with exactly what that step was sent.
    assert [now for now, _ in sent] == [0, 20 * MS, 40 * MS]
    assert [datapacks["inbox"] for _, datapacks in sent] == received
