"""FTILoop: advance engines with their own timesteps in fixed time increments.

Each engine is stepped whenever simulated time reaches its next due time. At time t, for
the engines due at t, in NRP-core's order:

1. the steps they started earlier (which end at t) are collected: the datapacks functions
   asked for arrive in one round trip with the step itself, and are cached;
2. their preprocessing functions run, then their transceiver functions, then the status
   function (every iteration); what the status function returns is appended to the
   trajectory (for the caller), and its done flag replaces the previous one;
3. each due engine gets one Step call, whatever the done flag says: set what the
   transceiver functions sent it, advance by its timestep, return the datapacks functions
   read from it. Steps of engines due at the same time run concurrently; the loop moves on
   to the next due time without waiting for them until it needs their results.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from neuroloop.datapack import DataPack, DataPackValue
from neuroloop.errors import EngineError
from neuroloop.functions import Cycle, DataPackStore, LoadedFunction


class PendingStep(Protocol):
    def result(self) -> dict[str, DataPackValue]: ...

    def cancel(self) -> None: ...


class SteppableEngine(Protocol):
    """What the loop needs of an engine client."""

    name: str
    time_ns: int

    def step_async(
        self, to_set: Mapping[str, DataPackValue], timestep_ns: int, get: Sequence[str]
    ) -> PendingStep: ...


class DataPackProcessor(Protocol):
    """What the loop runs between steps: transceiver functions (``FunctionManager``) or a
    computational graph (``neuroloop.graph.ComputationalGraph``)."""

    last_status: dict[str, Any]
    task: object | None

    @property
    def status(self) -> LoadedFunction | None: ...

    def requested(self, engine: str, constant: bool = False) -> list[str]: ...

    def run(
        self, due: Iterable[str], store: DataPackStore, time_ns: int, iteration: int
    ) -> Cycle: ...


class Recorder(Protocol):
    """Receives every datapack exchanged (``direction`` is ``"from_engine"`` or ``"to_engine"``)."""

    def record(
        self, time_ns: int, direction: str, engine: str, name: str, value: DataPackValue
    ) -> None: ...


SentObserver = Callable[[int, Mapping[str, DataPackValue]], None]
"""Called with the simulated time and the datapacks sent to one engine with one step."""


@dataclass
class _Slot:
    engine: SteppableEngine
    timestep_ns: int
    requested: list[str]
    due_ns: int = 0
    pending: PendingStep | None = None


class FTILoop:
    """The fixed-time-increment loop over a set of engines.

    Args:
        engines: Engine clients paired with their ``EngineTimestep`` in nanoseconds.
        functions: The loaded functions, or a computational graph.
        recorder: Optional sink for every datapack exchanged.
    """

    def __init__(
        self,
        engines: Sequence[tuple[SteppableEngine, int]],
        functions: DataPackProcessor,
        recorder: Recorder | None = None,
    ) -> None:
        for engine, timestep_ns in engines:
            if timestep_ns <= 0:
                raise ValueError(
                    f"[{engine.name}] EngineTimestep: expected > 0 ns. Received: {timestep_ns}"
                )
        self.functions = functions
        self.recorder = recorder
        self.store = DataPackStore()
        self.time_ns = 0
        self.iteration = 0
        self.done = False
        """The status function's done flag of the last iteration (NRP-core's done flag)."""
        self.trajectory: list[DataPack] = []
        """What the status function returned, iteration after iteration, until taken."""
        self._slots = [_Slot(e, dt, functions.requested(e.name)) for e, dt in engines]
        self._outbox: dict[str, dict[str, DataPackValue]] = {e.name: {} for e, _ in engines}
        self._sent_observers: dict[str, list[SentObserver]] = {}

    @property
    def constants(self) -> dict[str, list[str]]:
        """Datapack names the functions read once per (re)start, by engine."""
        return {
            slot.engine.name: self.functions.requested(slot.engine.name, constant=True)
            for slot in self._slots
        }

    @property
    def requested(self) -> dict[str, list[str]]:
        """Datapack names the functions read, by engine."""
        return {slot.engine.name: slot.requested for slot in self._slots}

    def request(self, engine: str, names: Sequence[str]) -> None:
        """Also fetch ``names`` from ``engine`` with every step (e.g. for a recorder)."""
        for slot in self._slots:
            if slot.engine.name == engine:
                slot.requested = sorted({*slot.requested, *names})
                return
        raise KeyError(f"no engine {engine!r}; the loop has {', '.join(self.requested)}")

    def observe_sent(self, engine: str, observer: SentObserver) -> None:
        """Call ``observer(time_ns, datapacks)`` with what each step of ``engine`` is sent.

        The datapacks are the step's own mapping (not copied): read them, do not keep or
        change the mapping.
        """
        if engine not in self._outbox:
            raise KeyError(f"no engine {engine!r}; the loop has {', '.join(self._outbox)}")
        self._sent_observers.setdefault(engine, []).append(observer)

    def restart(self, initial: Mapping[str, Mapping[str, DataPackValue]]) -> None:
        """Start again at time 0 from each engine's initial datapacks (after init or reset)."""
        self.time_ns = 0
        self.iteration = 0
        self.done = False
        self.trajectory = []
        self.store = DataPackStore()
        for slot in self._slots:
            slot.due_ns = 0
            slot.pending = None
            self._outbox[slot.engine.name] = {}
            self._arrived(slot, initial.get(slot.engine.name, {}))

    def run_until(self, stop_ns: int, until_done: bool = True) -> bool:
        """Advance simulated time to ``stop_ns``; return the done flag.

        With ``until_done`` the loop stops early once the status function says done (and does
        not start while the flag from an earlier call stands), as NRP-core's
        ``run_until_timeout``; without it, it runs to ``stop_ns`` whatever the flag says, as
        NRP-core's ``run_loop``. On return every step that ends at or before the loop's time
        has been collected, so the cached datapacks show the state at that time.
        """
        while not (until_done and self.done):
            now = min(slot.due_ns for slot in self._slots)
            if now >= stop_ns:
                break
            self._iterate(now)
        if not (until_done and self.done):
            self.time_ns = max(self.time_ns, stop_ns)
        self.collect(lambda slot: slot.due_ns <= self.time_ns)
        return self.done

    def take_trajectory(self) -> list[DataPack]:
        """Return the status function's observations gathered so far, and start a new list."""
        trajectory, self.trajectory = self.trajectory, []
        return trajectory

    def run_until_stepped(self, name: str) -> bool:
        """Run loop iterations up to and including the next one that steps engine ``name``.

        Returns True if the status function ended the simulation.
        """
        while not self.done:
            now = min(slot.due_ns for slot in self._slots)
            stepped = any(s.engine.name == name and s.due_ns == now for s in self._slots)
            self._iterate(now)
            if stepped:
                break
        return self.done

    def collect(self, which: Callable[[_Slot], bool] | None = None) -> None:
        """Wait for pending steps (all, or those a predicate selects) and cache their results."""
        for slot in self._slots:
            if slot.pending is not None and (which is None or which(slot)):
                pending, slot.pending = slot.pending, None
                self._arrived(slot, pending.result())
                if slot.engine.time_ns != slot.due_ns:
                    raise EngineError(
                        f"[{slot.engine.name}] step: expected engine time {slot.due_ns} ns. "
                        f"Received: time_ns={slot.engine.time_ns}"
                    )

    def abandon(self) -> None:
        """Cancel steps in flight; the loop cannot continue after this."""
        for slot in self._slots:
            if slot.pending is not None:
                slot.pending.cancel()
                slot.pending = None
        self.done = True

    def _iterate(self, now: int) -> None:
        self.time_ns = now
        due = [slot for slot in self._slots if slot.due_ns == now]
        self.collect(lambda slot: slot in due)
        cycle = self.functions.run(
            (slot.engine.name for slot in due), self.store, now, self.iteration
        )
        self.store.clear_updated()
        self._post(cycle.to_engines)
        self.trajectory += cycle.observations
        self.done = cycle.done
        self.iteration += 1
        for slot in due:
            name = slot.engine.name
            to_set, self._outbox[name] = self._outbox[name], {}
            if self.recorder is not None:
                for key, value in to_set.items():
                    self.recorder.record(now, "to_engine", name, key, value)
            for observer in self._sent_observers.get(name, ()):
                observer(now, to_set)
            slot.pending = slot.engine.step_async(to_set, slot.timestep_ns, slot.requested)
            slot.due_ns = now + slot.timestep_ns

    def _post(self, outgoing: list[DataPack]) -> None:
        for datapack in outgoing:
            box = self._outbox.get(datapack.engine_name)
            if box is None:
                raise EngineError(
                    f"datapack {datapack.name!r}: expected a receiving engine among "
                    f"{', '.join(self._outbox)}. Received: engine_name={datapack.engine_name!r}"
                )
            if datapack.data is None:
                continue
            box[datapack.name] = datapack.data

    def _arrived(self, slot: _Slot, values: Mapping[str, DataPackValue]) -> None:
        name = slot.engine.name
        self.store.update(name, values)
        if self.recorder is not None:
            time_ns = slot.engine.time_ns
            for key, value in values.items():
                self.recorder.record(time_ns, "from_engine", name, key, value)


class EventLoop(FTILoop):
    """NRP-core's EventLoop, without engines: the graph runs once per ``timestep_ns`` of
    wall-clock time, its clock reading the milliseconds since the loop started.

    ``time_ns`` is the loop's scheduled time (iteration x timestep); a cycle that starts
    more than ``warn_ns`` late prints a warning, as NRP-core does.

    Args:
        graph: The computational graph (it sends nothing: there are no engines).
        timestep_ns: Wall-clock length of one cycle.
        warn_ns: How late a cycle may start before the warning.
    """

    def __init__(self, graph: DataPackProcessor, timestep_ns: int, warn_ns: int) -> None:
        super().__init__([], graph)
        if timestep_ns <= 0:
            raise ValueError(f"EventLoop.Timestep: expected > 0 ns. Received: {timestep_ns}")
        self.timestep_ns = timestep_ns
        self.warn_ns = warn_ns
        self._started_ns: int | None = None

    def run_until(self, stop_ns: int, until_done: bool = True) -> bool:
        """Run cycles, each at its wall-clock time, until the scheduled time is ``stop_ns``."""
        if self._started_ns is None:
            self._started_ns = time.monotonic_ns()
        while self.time_ns < stop_ns and not (until_done and self.done):
            late_ns = time.monotonic_ns() - (self._started_ns + self.time_ns)
            if late_ns < 0:
                time.sleep(-late_ns / 1e9)
            elif late_ns > self.warn_ns:
                print(
                    f"[EventLoop] cycle {self.iteration} started {late_ns / 1e9:.4f} s late "
                    f"(Timestep {self.timestep_ns / 1e9:g} s)",
                    file=sys.stderr,
                )
            elapsed_ns = time.monotonic_ns() - self._started_ns
            cycle = self.functions.run((), self.store, elapsed_ns, self.iteration)
            self.trajectory += cycle.observations
            self.done = cycle.done
            self.iteration += 1
            self.time_ns += self.timestep_ns
        return self.done

    def restart(self, initial: Mapping[str, Mapping[str, DataPackValue]]) -> None:
        """Start again at time 0; the wall clock restarts with the next run."""
        super().restart(initial)
        self._started_ns = None
