"""The learned-body engine: a trained ArmNet served with its body's datapacks and timestep.

A simulation config swaps its physics engine for this one (``EngineType: surrogate``,
``EngineExtraConfigs.ArmNet``: the folder ``neuroloop surrogate fit`` wrote); transceivers
keep reading the same datapacks (the state blocks the surrogate config named, whole rows,
columns it does not model held at their rest values) and keep sending the same input
(``ctrl`` [W, n] for the arm, clipped to [0, 1]). Settings: ``surrogate_engine.schema.json``.

Every world starts at the body's rest state (the physics engine's seeded reset the
surrogate was fitted from) with the ArmNet state its encoder gives; each step of
``EngineTimestep`` runs ``EngineTimestep / dt`` ArmNet steps with the input held.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from neuroloop.config import engine_extra_configs
from neuroloop.datapack import DataPackValue
from neuroloop.engine import Engine
from neuroloop.surrogate.armnet import ArmNet

NS_PER_SECOND = 1_000_000_000


class SurrogateEngine(Engine):
    """A trained ArmNet stepping a batch of worlds.

    Args:
        name: The engine's name in the simulation config.
    """

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._net: ArmNet | None = None
        self._names: tuple[str, ...] = ()

    def initialize(self, config: Mapping[str, Any]) -> None:
        """Load the ArmNet and its body description; allocate the worlds.

        Raises:
            ValueError: If a setting breaks the schema, the ArmNet has no body description,
                or ``EngineTimestep`` is not a whole number of the ArmNet's steps.
        """
        context = f"[{self.name}] initialize"
        settings = engine_extra_configs(
            __file__, config.get("EngineExtraConfigs") or {}, f"{context}:"
        )
        base = Path(config.get("ConfigDirectory") or Path.cwd())
        folder = Path(settings["ArmNet"])
        net = ArmNet.load(folder if folder.is_absolute() else base / folder)
        body = net.body
        if not body:
            raise ValueError(
                f"{context}: EngineExtraConfigs.ArmNet: expected an ArmNet saved with its body "
                f"description (neuroloop surrogate fit). Received: {settings['ArmNet']!r}"
            )
        dt_ns = round(net.dt_s * NS_PER_SECOND)
        engine_ns = round(float(config.get("EngineTimestep", net.dt_s)) * NS_PER_SECOND)
        if engine_ns % dt_ns:
            raise ValueError(
                f"{context}: expected EngineTimestep to be a whole multiple of the ArmNet's "
                f"step {net.dt_s} s. Received: EngineTimestep={engine_ns / NS_PER_SECOND} s"
            )
        self._net, self._dt_ns, self._worlds = net, dt_ns, settings["Worlds"]
        self._input_name = str(body["input"])
        self._blocks = [
            (str(b["datapack"]), None if b["columns"] is None else list(b["columns"]))
            for b in body["blocks"]
        ]
        self._rest = {name: np.asarray(row, dtype=np.float64) for name, row in body["rest"].items()}
        self._names = (*self._rest, self._input_name, "actuator_ctrlrange", "reset_worlds")
        self._pending = np.zeros(self._worlds, dtype=bool)
        self.reset(None)

    def reset(self, seed: int | None) -> None:
        """Every world back at rest (deterministic: ``seed`` changes nothing)."""
        net = self._require("reset")
        rows = {name: np.tile(row, (self._worlds, 1)) for name, row in self._rest.items()}
        self._datapacks = rows
        self._state = np.tile(self._rest_state(), (self._worlds, 1))
        self._hidden = net.start(tf.constant(net.normalizer.normalize(self._state))).numpy()
        self._input = np.zeros((self._worlds, net.n_inputs))
        self._pending[:] = False

    def step(self, timestep_ns: int) -> None:
        """Advance every world by ``timestep_ns`` (whole ArmNet steps, the input held)."""
        net = self._require("step")
        steps, remainder = divmod(timestep_ns, self._dt_ns)
        if remainder or steps < 1:
            raise ValueError(
                f"[{self.name}] step: expected a whole multiple of {self._dt_ns} ns. "
                f"Received: timestep_ns={timestep_ns}"
            )
        if self._pending.any():
            self._restart(self._pending)
        hidden = tf.constant(self._hidden)
        excitation = tf.constant(self._input, tf.float32)
        for _ in range(steps):
            hidden, normal = net.step(hidden, excitation)
        self._hidden = hidden.numpy()
        self._state = net.normalizer.denormalize(normal.numpy())
        self._write_datapacks()

    @property
    def datapack_names(self) -> Sequence[str]:
        return self._names

    def get_datapack(self, name: str) -> DataPackValue:
        net = self._require("get")
        if name in self._datapacks:
            return self._datapacks[name].copy()
        if name == self._input_name:
            return self._input.copy()
        if name == "actuator_ctrlrange":
            return np.tile([0.0, 1.0], (net.n_inputs, 1))
        if name == "reset_worlds":
            return self._pending.copy()
        raise ValueError(
            f"[{self.name}] get: expected one of {', '.join(self._names)}. Received: {name!r}"
        )

    def set_datapack(self, name: str, value: DataPackValue) -> None:
        net = self._require("set")
        array = np.asarray(value)
        if name == "reset_worlds" and array.shape == (self._worlds,):
            self._pending |= array.astype(bool)
            return
        if name == self._input_name:
            shape = (self._worlds, net.n_inputs)
            if array.shape != shape or not np.all(np.isfinite(array)):
                raise ValueError(
                    f"[{self.name}] set {name}: expected finite values of shape {shape}. "
                    f"Received: shape {array.shape}"
                )
            self._input = np.clip(array.astype(np.float64), 0.0, 1.0)
            return
        raise ValueError(
            f"[{self.name}] set: expected {self._input_name} [W, {net.n_inputs}] or "
            f"reset_worlds [W]. Received: {name!r} of shape {array.shape}"
        )

    def _require(self, verb: str) -> ArmNet:
        if self._net is None:
            raise ValueError(f"[{self.name}] {verb}: expected initialize() first. Received: none")
        return self._net

    def _rest_state(self) -> np.ndarray:
        parts = []
        for name, columns in self._blocks:
            row = self._rest[name]
            parts.append(row if columns is None else row[columns])
        return np.concatenate(parts)

    def _restart(self, worlds: np.ndarray) -> None:
        net = self._require("reset")
        rest = self._rest_state()
        self._state[worlds] = rest
        start = net.start(tf.constant(net.normalizer.normalize(rest[None]))).numpy()
        self._hidden[worlds] = start
        for name, row in self._rest.items():
            self._datapacks[name][worlds] = row
        self._pending[:] = False

    def _write_datapacks(self) -> None:
        offset = 0
        for name, columns in self._blocks:
            width = len(self._rest[name]) if columns is None else len(columns)
            values = self._state[:, offset : offset + width]
            if columns is None:
                self._datapacks[name][:] = values
            else:
                self._datapacks[name][:, columns] = values
            offset += width
