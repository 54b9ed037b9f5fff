"""NRP-core's nest_json engine: a NEST spiking network whose devices are JSON datapacks.

``NestInitFileName`` is a Python file that builds the network with ``nest`` and registers
devices with ``nrp_core.engines.nest_json``'s ``RegisterDataPack(name, nodes)`` or
``CreateDataPack(name, model, ...)``. A registered device's datapack is the list of its
nodes' status dicts (NEST's ``get()``, one dict per node); a datapack sent to it is passed to
``set()`` (one dict for every node, or a list with one per node). The datapack ``kernel`` is
NEST's kernel status. Non-finite numbers (``V_min`` is -inf) read as ``null``, as in
NRP-core's JSON.

NEST comes from the optional ``nest`` extra (``pip install 'neuroloop[nest]'``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from neuroloop.datapack import DataPackValue
from neuroloop.engine import Engine
from neuroloop.modules import import_extra, load_file

KERNEL = "kernel"
"""The datapack holding NEST's kernel status (read-only)."""
NS_PER_MS = 1_000_000


class DeviceRegistry:
    """The NEST devices an init file registered as datapacks, by datapack name.

    NEST has one kernel per process, so a process has one registry: ``DEVICES``.
    """

    def __init__(self) -> None:
        self.devices: dict[str, Any] = {}

    def register(self, name: str, nodes: Any) -> None:
        """Make the status of ``nodes`` (a NEST NodeCollection) the datapack ``name``."""
        if not isinstance(name, str) or not name or name == KERNEL:
            raise ValueError(
                f"RegisterDataPack: expected a datapack name other than {KERNEL!r}. "
                f"Received: {name!r}"
            )
        self.devices[name] = nodes

    def create(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """``nest.Create(*args, **kwargs)``, registered as the datapack ``name``."""
        import nest

        nodes = nest.Create(*args, **kwargs)
        self.register(name, nodes)
        return nodes


DEVICES = DeviceRegistry()


class NestEngine(Engine):
    """Runs the network of ``NestInitFileName``; steps are ``nest.Simulate`` calls."""

    def initialize(self, config: Mapping[str, Any]) -> None:
        self.nest: Any = import_extra("nest", "nest", "nest_json")
        self.init_file = Path(config["NestInitFileName"])
        self.rng_seed = int(config.get("NestRNGSeed", 0))
        self._build(self.rng_seed)

    def _build(self, rng_seed: int) -> None:
        """Reset NEST's kernel and run the init file, which registers devices afresh."""
        self.nest.ResetKernel()
        self.nest.verbosity = self.nest.VerbosityLevel.WARNING
        DEVICES.devices.clear()
        load_file(self.init_file)
        # After the file: init files reset the kernel themselves, which resets the seed.
        if rng_seed > 0:
            self.nest.rng_seed = rng_seed
        self.devices = dict(DEVICES.devices)

    def reset(self, seed: int | None) -> None:
        """Rebuild the network from the init file (NRP-core's reset). A ``seed`` sets NEST's
        ``rng_seed`` to ``seed + 1`` (NEST's seeds start at 1); None keeps ``NestRNGSeed``."""
        self._build(self.rng_seed if seed is None else seed + 1)

    def step(self, timestep_ns: int) -> None:
        resolution_ns = round(self.nest.resolution * NS_PER_MS)
        if timestep_ns % resolution_ns:
            raise ValueError(
                f"[{self.name}] step: expected a whole multiple of NEST's resolution "
                f"{self.nest.resolution} ms. Received: timestep_ns={timestep_ns}"
            )
        self.nest.Simulate(timestep_ns / NS_PER_MS)

    def shutdown(self) -> None:
        self.nest.ResetKernel()

    @property
    def datapack_names(self) -> Sequence[str]:
        return [*self.devices, KERNEL]

    def get_datapack(self, name: str) -> DataPackValue:
        if name == KERNEL:
            return _plain(self.nest.GetKernelStatus())
        return [_plain(node.get()) for node in self.devices[name]]

    def set_datapack(self, name: str, value: DataPackValue) -> None:
        if name == KERNEL:
            raise ValueError(f"[{self.name}] datapack {KERNEL!r} is read-only (kernel status)")
        nodes = self.devices[name]
        if isinstance(value, list) and len(value) != len(nodes):
            raise ValueError(
                f"[{self.name}] datapack {name!r}: expected one status dict for all nodes or a "
                f"list of {len(nodes)}, one per node. Received: a list of {len(value)}"
            )
        if not isinstance(value, dict | list):
            raise ValueError(
                f"[{self.name}] datapack {name!r}: expected a status dict or a list of them. "
                f"Received: {type(value).__name__}"
            )
        nodes.set(value)


def _plain(value: Any) -> Any:
    """``value`` as JSON: arrays and tuples as lists, numpy scalars as numbers, non-finite
    numbers as ``None``, anything else NEST returns (NodeCollections) as its text."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, np.ndarray | list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)
