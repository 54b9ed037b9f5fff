"""A conformance checker for engines, in the spirit of Gymnasium's ``env_checker``.

``check_engine`` drives an engine in this process through ``EngineHost`` (the same host the
gRPC server wraps) and fails with ``EngineConformanceError`` naming the engine, the
datapack and the rule it broke:

1. ``initialize`` declares datapacks: unique, non-empty names.
2. Stepping keeps every datapack's kind, shape and dtype; once produced, none goes back
   to ``None``.
3. Seeded determinism: a second engine built from the same config, reset with the same
   seed and fed the same inputs produces the same datapacks, bit for bit.
4. ``reset(seed)`` restores: the same engine, reset again, repeats its first trajectory.
5. Bad input is rejected with a ``ValueError`` that names the engine: an unknown datapack,
   and every bad value the caller lists.
6. ``shutdown`` may be called twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from neuroloop.datapack import DataPackValue
from neuroloop.engine import Engine, EngineHost

UNKNOWN_DATAPACK = "no_such_datapack"
"""The name the checker sets to see an unknown datapack rejected."""

Trajectory = list[dict[str, DataPackValue]]
Inputs = Mapping[str, DataPackValue] | Callable[[Engine], Mapping[str, DataPackValue]]
BadInputs = (
    Sequence[tuple[str, DataPackValue]] | Callable[[Engine], Sequence[tuple[str, DataPackValue]]]
)


class EngineConformanceError(AssertionError):
    """An engine broke a rule of the engine contract."""


@dataclass(frozen=True)
class Signature:
    """What a datapack's value looks like: its kind, and for arrays shape and dtype."""

    kind: str
    shape: tuple[int, ...] = ()
    dtype: str = ""

    @classmethod
    def of(cls, value: DataPackValue) -> Signature:
        if isinstance(value, np.ndarray):
            return cls("array", value.shape, value.dtype.str)
        return cls(type(value).__name__)


def _same(a: DataPackValue, b: DataPackValue) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a_array, b_array = np.asarray(a), np.asarray(b)
        return (
            a_array.shape == b_array.shape
            and a_array.dtype == b_array.dtype
            and a_array.tobytes() == b_array.tobytes()
        )
    return bool(a == b)


def _fail(engine: str, rule: str, detail: str) -> EngineConformanceError:
    return EngineConformanceError(f"[{engine}] {rule}: {detail}")


def _run(
    host: EngineHost,
    seed: int,
    inputs: Mapping[str, DataPackValue],
    steps: int,
    timestep_ns: int,
) -> Trajectory:
    """Reset with ``seed``, then ``steps`` steps with ``inputs``; every datapack after each."""
    host.reset(seed)
    names = sorted(host.engine.datapack_names)
    trajectory = []
    for _ in range(steps):
        _, values = host.step(inputs.items(), timestep_ns, names)
        trajectory.append(values)
    return trajectory


def _check_stable(name: str, trajectory: Trajectory) -> dict[str, Signature]:
    """Every datapack keeps its signature and never returns to ``None``."""
    signatures: dict[str, Signature] = {}
    for step, values in enumerate(trajectory, start=1):
        for key, value in values.items():
            if value is None:
                if key in signatures:
                    raise _fail(
                        name, "stable datapacks", f"{key!r} went back to None at step {step}"
                    )
                continue
            signature = Signature.of(value)
            if signatures.setdefault(key, signature) != signature:
                raise _fail(
                    name,
                    "stable datapacks",
                    f"{key!r} changed from {signatures[key]} to {signature} at step {step}",
                )
    return signatures


def _first_difference(a: Trajectory, b: Trajectory) -> str | None:
    for step, (values_a, values_b) in enumerate(zip(a, b, strict=True), start=1):
        for key in values_a:
            if not _same(values_a[key], values_b[key]):
                return f"{key!r} differs at step {step}"
    return None


def check_engine(
    make: Callable[[str], Engine],
    config: Mapping[str, Any],
    *,
    timestep_ns: int,
    inputs: Inputs | None = None,
    bad_inputs: BadInputs = (),
    steps: int = 3,
    seed: int = 0,
    name: str = "engine",
) -> dict[str, Signature]:
    """Check an engine against the engine contract (see the module docstring).

    Args:
        make: Builds an engine by name (an ``Engine`` subclass will do).
        config: The engine's config section, as the orchestrator sends it.
        timestep_ns: Nanoseconds per step.
        inputs: Datapacks set before every step (what the loop would send), or a function
            of the initialized engine that returns them.
        bad_inputs: ``(datapack, value)`` pairs the engine must reject with ``ValueError``,
            or a function of the initialized engine that returns them.
        steps: Steps per trajectory.
        seed: The reset seed.
        name: The engine's name.

    Returns:
        The signature of every datapack that was produced.

    Raises:
        EngineConformanceError: The first rule the engine broke.
    """
    first, second = EngineHost(make(name)), EngineHost(make(name))
    try:
        declared = first.initialize(config)
        if not declared or len(set(declared)) != len(list(first.engine.datapack_names)):
            raise _fail(name, "declared datapacks", f"expected unique names, got {declared}")
        second.initialize(config)
        if callable(inputs):
            inputs = inputs(first.engine)
        if callable(bad_inputs):
            bad_inputs = bad_inputs(first.engine)
        inputs = inputs or {}

        trajectory = _run(first, seed, inputs, steps, timestep_ns)
        signatures = _check_stable(name, trajectory)
        difference = _first_difference(trajectory, _run(second, seed, inputs, steps, timestep_ns))
        if difference:
            raise _fail(name, f"seeded determinism (seed {seed})", difference)
        difference = _first_difference(trajectory, _run(first, seed, inputs, steps, timestep_ns))
        if difference:
            raise _fail(name, "reset restores", f"after reset({seed}) {difference}")

        for key, value in [(UNKNOWN_DATAPACK, 0.0), *bad_inputs]:
            try:
                first.step([(key, value)], 0, ())
            except ValueError as error:
                if name not in str(error):
                    raise _fail(
                        name, "bad input", f"{key!r}: the error does not name the engine: {error}"
                    ) from None
            else:
                raise _fail(name, "bad input", f"{key!r} = {value!r:.80} was accepted")
    finally:
        for host in (first, second):
            host.shutdown()
    try:
        first.engine.shutdown()
    except Exception as error:
        raise _fail(name, "shutdown twice", repr(error)) from None
    return signatures
