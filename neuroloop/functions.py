"""Transceiver, preprocessing and status functions, declared NRP-core style.

A function file declares what each function reads and whom it feeds::

    from neuroloop.functions import EngineDataPack, TransceiverFunction
    from neuroloop.datapack import DataPackIdentifier, JsonDataPack

    @EngineDataPack(keyword="obs", id=DataPackIdentifier("observation", "env"))
    @TransceiverFunction("env")
    def controller(obs):
        action = JsonDataPack("action", "env")
        ...
        return [action]

Each file is loaded in a module of its own. ``FunctionManager`` runs the loaded functions in
NRP-core's order: preprocessing functions of the engines that are due, then their
transceiver functions, then the status function.
"""

from __future__ import annotations

import contextvars
import enum
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from neuroloop.datapack import DataPack, DataPackIdentifier, DataPackValue, JsonValue
from neuroloop.errors import ConfigError, NeuroloopError, UserCodeError
from neuroloop.modules import load_file

_simulation_time_ns: contextvars.ContextVar[int] = contextvars.ContextVar("time_ns", default=0)
_simulation_iteration: contextvars.ContextVar[int] = contextvars.ContextVar("iteration", default=0)


class FunctionKind(enum.Enum):
    TRANSCEIVER = "transceiver"
    PREPROCESSING = "preprocessing"
    STATUS = "status"


class SimulationStatus(dict[str, Any]):
    """What a status function reports besides its datapacks (NRP-core name).

    Set ``status["done"] = True`` to end the simulation; every other key is reported, e.g. the
    task metric, which ``neuroloop run`` prints in its summary.
    """


class RawData(DataPack):
    """An observation a status function returns: data without a name or an engine.

    Status functions return RawData (or datapacks) with their done flag; they go to the
    trajectory handed to the caller (``Simulation.run_loop``), never to an engine.
    """

    def __init__(self, data: DataPackValue = None) -> None:
        super().__init__("", "", data)


class JsonRawData(RawData):
    """A JSON observation, created empty and filled by key: ``raw.data["reward"] = 1.0``."""

    def __init__(self, data: JsonValue | None = None) -> None:
        super().__init__({} if data is None else data)


@dataclass(frozen=True)
class Cycle:
    """What one run of the functions produced."""

    done: bool
    """The status function's done flag (False without a status function)."""
    to_engines: list[DataPack]
    """Datapacks transceiver functions returned, for their engines."""
    observations: list[DataPack]
    """Datapacks (or RawData) the status function returned, for the trajectory."""


class FunctionError(NeuroloopError):
    """A user function raised, or returned something other than datapacks."""


@dataclass(frozen=True)
class DataPackInput:
    """One datapack a function reads, passed as keyword argument ``keyword``."""

    keyword: str
    id: DataPackIdentifier
    preprocessed: bool
    constant: bool = False
    """Fetched once when the simulation (re)starts, not with every step."""


class DataPackFunction:
    """A user function plus what the decorators declared about it.

    Args:
        func: The plain Python function.
    """

    def __init__(self, func: Callable[..., Any]) -> None:
        functools.update_wrapper(self, func)
        self.func = func
        self.name: str = getattr(func, "__name__", repr(func))
        self.kind: FunctionKind | None = None
        self.engine: str | None = None
        self.inputs: list[DataPackInput] = []
        self.time_keyword: str | None = None
        self.iteration_keyword: str | None = None
        self.task_keyword: str | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)


def _declared(obj: Callable[..., Any]) -> DataPackFunction:
    return obj if isinstance(obj, DataPackFunction) else DataPackFunction(obj)


class EngineDataPack:
    """Pass the latest datapack ``id`` from its engine as argument ``keyword``.

    With ``isPreprocessed=True`` (NRP-core's argument) the datapack is the one a
    preprocessing function produced, as with ``PreprocessedDataPack``.
    """

    def __init__(self, keyword: str, id: DataPackIdentifier, isPreprocessed: bool = False) -> None:
        self.input = DataPackInput(keyword, id, preprocessed=isPreprocessed)

    def __call__(self, obj: Callable[..., Any]) -> DataPackFunction:
        function = _declared(obj)
        function.inputs.insert(0, self.input)
        return function


class PreprocessedDataPack(EngineDataPack):
    """Pass the datapack ``id`` that a preprocessing function produced as ``keyword``."""

    def __init__(self, keyword: str, id: DataPackIdentifier, isPreprocessed: bool = True) -> None:
        self.input = DataPackInput(keyword, id, preprocessed=isPreprocessed)


class EngineConstant(EngineDataPack):
    """Pass datapack ``id``, fetched once when the simulation (re)starts, as ``keyword``.

    For values that do not change during a run (control ranges, joint limits): they travel
    with the engine's initial datapacks, not with every step.
    """

    def __init__(self, keyword: str, id: DataPackIdentifier) -> None:
        self.input = DataPackInput(keyword, id, preprocessed=False, constant=True)


class _Kind:
    kind: FunctionKind

    def __init__(self, engine: str | None = None) -> None:
        self.engine = engine

    def __call__(self, obj: Callable[..., Any]) -> DataPackFunction:
        function = _declared(obj)
        function.kind = self.kind
        function.engine = self.engine
        return function


class TransceiverFunction(_Kind):
    """Run before engine ``engine`` is stepped; the datapacks returned are sent to their engines."""

    kind = FunctionKind.TRANSCEIVER

    def __init__(self, engine: str) -> None:
        super().__init__(engine)


class PreprocessingFunction(_Kind):
    """Run when ``engine``'s datapacks arrive; the datapacks returned feed transceivers."""

    kind = FunctionKind.PREPROCESSING

    def __init__(self, engine: str) -> None:
        super().__init__(engine)


class StatusFunction(_Kind):
    """Run once per loop iteration; returns ``(done, datapacks)`` or ``(status, datapacks)``.

    ``done`` is a bool; ``status`` a ``SimulationStatus`` (or dict) whose ``"done"`` key is
    the done flag and whose other keys are reported. As in NRP-core, the datapacks (usually
    ``JsonRawData``) are observations for the trajectory returned to the caller; they are
    not sent to engines. The done flag holds until the next iteration's status function
    (or a reset) replaces it.
    """

    kind = FunctionKind.STATUS

    def __init__(self) -> None:
        super().__init__(None)


class SimulationTime:
    """Pass the simulation time in integer nanoseconds as argument ``keyword``."""

    def __init__(self, keyword: str) -> None:
        self.keyword = keyword

    def __call__(self, obj: Callable[..., Any]) -> DataPackFunction:
        function = _declared(obj)
        function.time_keyword = self.keyword
        return function


class SimulationIteration(SimulationTime):
    """Pass the loop iteration number (from 0) as argument ``keyword``."""

    def __call__(self, obj: Callable[..., Any]) -> DataPackFunction:
        function = _declared(obj)
        function.iteration_keyword = self.keyword
        return function


class SimulationTask(SimulationTime):
    """Pass the task of the config's ``Task`` section (built once, at load) as ``keyword``."""

    def __call__(self, obj: Callable[..., Any]) -> DataPackFunction:
        function = _declared(obj)
        function.task_keyword = self.keyword
        return function


def getSimulationTime() -> int:
    """The simulation time of the function now running, in nanoseconds (NRP-core name)."""
    return _simulation_time_ns.get()


def getSimulationIteration() -> int:
    """The loop iteration of the function now running (NRP-core name)."""
    return _simulation_iteration.get()


_PY_SIM_TRAINING = "NRP-core's py_sim training library (stable-baselines3 on PyTorch)"

UNSUPPORTED_MODULES = {
    "pyNN": "SpiNNaker (NRP-core's pyNN.spiNNaker nodes)",
    "rospy": "ROS",
    "spynnaker": "SpiNNaker",
    "tvb": "TVB (The Virtual Brain)",
    "tvb_data": "TVB (The Virtual Brain)",
    "gym": "the legacy OpenAI gym package (neuroloop runs Gymnasium)",
    "nrp_core.engines.py_sim.ConvertLib": _PY_SIM_TRAINING,
    "nrp_core.engines.py_sim.NRPThreads": _PY_SIM_TRAINING,
    "nrp_core.engines.py_sim.Trainer": _PY_SIM_TRAINING,
}
"""Modules NRP-core experiments import for integrations neuroloop lacks, with what they are:
a function file or engine script failing to import one says so."""


def explain_unsupported(error: UserCodeError) -> UserCodeError:
    """``error``, saying which unsupported feature it is if a file failed to import one of
    ``UNSUPPORTED_MODULES``."""
    missing = error.__cause__
    if not isinstance(missing, ModuleNotFoundError) or not missing.name:
        return error
    parts = missing.name.split(".")
    prefixes = (".".join(parts[:n]) for n in range(len(parts), 0, -1))
    feature = next((UNSUPPORTED_MODULES[p] for p in prefixes if p in UNSUPPORTED_MODULES), None)
    if feature is None:
        return error
    explained = ModuleNotFoundError(f"{missing}: {feature} is not supported by neuroloop")
    return UserCodeError(error.path, explained.with_traceback(missing.__traceback__))


@dataclass(frozen=True)
class LoadedFunction:
    """A declared function loaded from a config entry."""

    label: str
    """The config's ``Name`` (plus ``:function`` when a file defines several)."""
    file: Path
    function: DataPackFunction


def load_function_file(path: Path, loaded: dict[Path, ModuleType] | None = None) -> ModuleType:
    """Execute a function file in a module of its own and return the module.

    The file's folder is put on ``sys.path`` so it can import its neighbours.

    Args:
        path: The function file.
        loaded: Modules already loaded for this simulation, by path; a file named twice in
            one config (e.g. for its transceivers and its status function) is run once, so
            its functions share their module's state.
    """
    if loaded is not None and path in loaded:
        return loaded[path]
    try:
        module = load_file(path)
    except ValueError:
        raise ConfigError(str(path), "", "a Python file", "a file Python cannot load") from None
    except UserCodeError as error:
        raise explain_unsupported(error) from error.__cause__
    if loaded is not None:
        loaded[path] = module
    return module


def declared_functions(module: ModuleType) -> list[DataPackFunction]:
    """Every decorated function a module defines, in definition order."""
    return [obj for obj in vars(module).values() if isinstance(obj, DataPackFunction) and obj.kind]


def load_functions(
    label: str,
    path: Path,
    kinds: Iterable[FunctionKind],
    engines: Sequence[str],
    config_file: str,
    json_path: str,
    modules: dict[Path, ModuleType] | None = None,
) -> list[LoadedFunction]:
    """Load the functions of ``kinds`` a file defines and check the engines they name.

    Args:
        label: The config entry's ``Name``.
        path: The function file.
        kinds: Which kinds of function this config entry may hold.
        engines: Names of the simulation's engines.
        config_file: The config file, for errors.
        json_path: The entry's JSON path in the config, for errors.
        modules: Modules already loaded for this simulation (see ``load_function_file``).

    Raises:
        ConfigError: If the file defines no such function, or a function names an engine
            that does not exist.
    """
    allowed = set(kinds)
    found = [f for f in declared_functions(load_function_file(path, modules)) if f.kind in allowed]
    if not found:
        decorators = " or ".join(f"@{k.value}" for k in sorted(allowed, key=lambda k: k.value))
        raise ConfigError(
            config_file,
            json_path,
            f"{path.name} to define a function decorated as {decorators}",
            "no such function",
        )
    loaded = []
    for function in found:
        named = [function.engine] if function.engine else []
        named += [spec.id.engine_name for spec in function.inputs]
        for engine in named:
            if engine not in engines:
                raise ConfigError(
                    config_file,
                    json_path,
                    f"function {function.name!r} in {path.name} to name one of the "
                    f"simulation's engines ({', '.join(engines)})",
                    f"engine={engine!r}",
                )
        name = label if len(found) == 1 else f"{label}:{function.name}"
        loaded.append(LoadedFunction(name, path, function))
    return loaded


@dataclass
class DataPackStore:
    """The latest datapack of each id, from engines and from preprocessing functions."""

    engine: dict[DataPackIdentifier, DataPack] = field(default_factory=dict)
    preprocessed: dict[DataPackIdentifier, DataPack] = field(default_factory=dict)

    def update(self, engine: str, values: Mapping[str, DataPackValue]) -> None:
        """Store datapacks that just arrived from ``engine`` and mark them updated."""
        for name, value in values.items():
            datapack = DataPack(name, engine, value)
            datapack.mark_updated(True)
            self.engine[datapack.id] = datapack

    def latest(self, identifier: DataPackIdentifier) -> DataPack | None:
        """The latest datapack ``identifier``: a preprocessed one first, else an engine's."""
        return self.preprocessed.get(identifier) or self.engine.get(identifier)

    def clear_updated(self) -> None:
        for datapack in self.engine.values():
            datapack.mark_updated(False)

    def lookup(self, spec: DataPackInput) -> DataPack:
        pool = self.preprocessed if spec.preprocessed else self.engine
        datapack = pool.get(spec.id)
        if datapack is None:
            return DataPack(spec.id.name, spec.id.engine_name)
        return datapack


class FunctionManager:
    """Runs loaded functions in NRP-core's order and collects what they send to engines.

    Args:
        functions: Transceiver and preprocessing functions (inactive ones already left out).
        status: The status function, if any.
        task: The config's task, for functions declared with ``SimulationTask``.
    """

    def __init__(
        self,
        functions: Sequence[LoadedFunction],
        status: LoadedFunction | None,
        task: object | None = None,
    ) -> None:
        self.preprocessing = [f for f in functions if f.function.kind is FunctionKind.PREPROCESSING]
        self.transceivers = [f for f in functions if f.function.kind is FunctionKind.TRANSCEIVER]
        self.status = status
        self.task = task
        self.last_status: dict[str, Any] = {}
        """The last ``SimulationStatus`` the status function returned (reported by the CLI)."""

    def requested(self, engine: str, constant: bool = False) -> list[str]:
        """Names of the datapacks that functions read from ``engine`` with every step, or,
        with ``constant``, once at every (re)start (``EngineConstant``)."""
        everything = [*self.preprocessing, *self.transceivers]
        if self.status is not None:
            everything.append(self.status)
        names = {
            spec.id.name
            for loaded in everything
            for spec in loaded.function.inputs
            if not spec.preprocessed and spec.id.engine_name == engine and spec.constant == constant
        }
        return sorted(names)

    def run(self, due: Iterable[str], store: DataPackStore, time_ns: int, iteration: int) -> Cycle:
        """Run the functions for the engines in ``due``: preprocessing, transceivers, status."""
        due = set(due)
        time_token = _simulation_time_ns.set(time_ns)
        iteration_token = _simulation_iteration.set(iteration)
        try:
            for loaded in self.preprocessing:
                if loaded.function.engine in due:
                    for datapack in self._call(loaded, store, time_ns, iteration):
                        store.preprocessed[datapack.id] = datapack
            outgoing: list[DataPack] = []
            for loaded in self.transceivers:
                if loaded.function.engine in due:
                    outgoing += self._call(loaded, store, time_ns, iteration)
            if self.status is None:
                return Cycle(False, outgoing, [])
            done, observations = self._status(self.status, store, time_ns, iteration)
            return Cycle(done, outgoing, observations)
        finally:
            _simulation_time_ns.reset(time_token)
            _simulation_iteration.reset(iteration_token)

    def _arguments(
        self, function: DataPackFunction, store: DataPackStore, time_ns: int, iteration: int
    ) -> dict[str, Any]:
        arguments: dict[str, Any] = {spec.keyword: store.lookup(spec) for spec in function.inputs}
        if function.time_keyword:
            arguments[function.time_keyword] = time_ns
        if function.iteration_keyword:
            arguments[function.iteration_keyword] = iteration
        if function.task_keyword:
            arguments[function.task_keyword] = self.task
        return arguments

    def _invoke(
        self, loaded: LoadedFunction, store: DataPackStore, time_ns: int, iteration: int
    ) -> Any:
        function = loaded.function
        try:
            return function(**self._arguments(function, store, time_ns, iteration))
        except NeuroloopError:
            raise
        except Exception as error:
            raise FunctionError(
                f"function {loaded.label!r} ({loaded.file.name}) raised at t={time_ns} ns: "
                f"{type(error).__name__}: {error}"
            ) from error

    def _call(
        self, loaded: LoadedFunction, store: DataPackStore, time_ns: int, iteration: int
    ) -> list[DataPack]:
        return _datapacks(loaded, self._invoke(loaded, store, time_ns, iteration))

    def _status(
        self, loaded: LoadedFunction, store: DataPackStore, time_ns: int, iteration: int
    ) -> tuple[bool, list[DataPack]]:
        result = self._invoke(loaded, store, time_ns, iteration)
        datapacks: Any = []
        if isinstance(result, tuple) and len(result) == 2:
            result, datapacks = result
        if isinstance(result, Mapping):
            self.last_status = dict(result)
            return bool(result.get("done", False)), _datapacks(loaded, datapacks)
        if isinstance(result, bool | np.bool_):
            return bool(result), _datapacks(loaded, datapacks)
        raise FunctionError(
            f"status function {loaded.label!r} ({loaded.file.name}): expected (done, [datapacks]) "
            f"or (SimulationStatus, [datapacks]) with done a bool. Received: {result!r:.200}"
        )


def _datapacks(loaded: LoadedFunction, result: Any) -> list[DataPack]:
    if result is None:
        return []
    if isinstance(result, DataPack):
        result = [result]
    if not isinstance(result, list | tuple) or not all(isinstance(d, DataPack) for d in result):
        raise FunctionError(
            f"function {loaded.label!r} ({loaded.file.name}): expected a list of datapacks. "
            f"Received: {result!r:.200}"
        )
    return list(result)
