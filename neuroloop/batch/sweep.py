"""Sweeps: seeds x every combination of a grid of ``-o`` overrides, plus extra runs."""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from neuroloop.errors import ConfigError, UsageError

SWEEP_KEYS = ("seeds", "grid", "overrides", "include")


@dataclass(frozen=True)
class Sweep:
    """Which runs a batch has: seeds x every combination of the grid, plus extra runs."""

    seeds: tuple[int, ...] = (0,)
    """Seeds; each grid combination runs once with each."""
    grid: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    """Override PATH -> the values it takes, e.g. ``{"SimulationTimeout": [5, 10]}``."""
    overrides: tuple[str, ...] = ()
    """``PATH=VALUE`` overrides applied to every run, before its own settings."""
    include: tuple[tuple[int, Mapping[str, Any]], ...] = ()
    """Extra runs outside the grid: ``(seed, {PATH: VALUE})``."""

    def settings(self) -> list[tuple[int, tuple[str, ...]]]:
        """Every run's seed and its own ``PATH=VALUE`` settings, grid order first."""
        axes = [[override(path, value) for value in values] for path, values in self.grid.items()]
        runs = [(seed, combo) for combo in itertools.product(*axes) for seed in self.seeds]
        extra = [
            (seed, tuple(override(path, value) for path, value in values.items()))
            for seed, values in self.include
        ]
        return runs + extra


def override(path: str, value: Any) -> str:
    """The ``-o`` text that sets ``path`` to ``value`` (a string only quoted if it must be)."""
    if isinstance(value, str):
        try:
            plain = yaml.safe_load(value) == value
        except yaml.YAMLError:
            plain = False
        return f"{path}={value}" if plain else f"{path}={json.dumps(value)}"
    return f"{path}={json.dumps(value)}"


def parse_grid(texts: Sequence[str]) -> dict[str, list[Any]]:
    """``["SimulationTimeout=[5, 10]", "EngineConfigs[0].EngineTimestep=0.02"]`` -> a grid.

    A value that is a YAML/JSON list gives the values; anything else is the one value.

    Raises:
        UsageError: If an entry is not ``PATH=VALUES``.
    """
    grid: dict[str, list[Any]] = {}
    for text in texts:
        path, equals, raw = text.partition("=")
        if not equals or not path.strip():
            raise UsageError(
                f"--grid: expected PATH=[VALUE, ...], e.g. 'SimulationTimeout=[5, 10]'. "
                f"Received: {text!r}"
            )
        try:
            values = yaml.safe_load(raw)
        except yaml.YAMLError:
            values = raw
        grid[path.strip()] = values if isinstance(values, list) else [values]
    return grid


def load_sweep(path: str | Path) -> Sweep:
    """Read a sweep file (YAML or JSON; see ``neuroloop.batch``).

    Raises:
        ConfigError: Naming the file and key, if the file is unreadable or malformed.
    """
    label = str(path)
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(label, "", "a readable sweep file", str(error.strerror)) from None
    except yaml.YAMLError as error:
        raise ConfigError(label, "", "valid YAML or JSON", str(error)) from None
    if not isinstance(document, dict):
        raise ConfigError(label, "", f"an object with keys {', '.join(SWEEP_KEYS)}", repr(document))
    unknown = sorted(set(document) - set(SWEEP_KEYS))
    if unknown:
        raise ConfigError(
            label, unknown[0], f"only the keys {', '.join(SWEEP_KEYS)}", f"key={unknown[0]!r}"
        )
    seeds = document.get("seeds", [0])
    if not _is_list_of(seeds, int):
        raise ConfigError(label, "seeds", "a list of integers", f"seeds={seeds!r}")
    grid = document.get("grid", {})
    if not isinstance(grid, dict):
        raise ConfigError(label, "grid", "an object of PATH: [VALUE, ...]", f"grid={grid!r}")
    overrides = document.get("overrides", [])
    if not _is_list_of(overrides, str):
        raise ConfigError(
            label, "overrides", "a list of PATH=VALUE strings", f"overrides={overrides!r}"
        )
    include = document.get("include", [])
    if not isinstance(include, list):
        raise ConfigError(label, "include", "a list of runs", f"include={include!r}")
    extra = []
    for index, entry in enumerate(include):
        where = f"include[{index}]"
        if not isinstance(entry, dict) or set(entry) - {"seed", "overrides"}:
            raise ConfigError(
                label, where, "an object with keys seed and overrides", f"{where}={entry!r}"
            )
        seed, values = entry.get("seed", seeds[0] if seeds else 0), entry.get("overrides", {})
        if not isinstance(seed, int) or not isinstance(values, dict):
            raise ConfigError(
                label,
                where,
                "seed: an integer, overrides: an object of PATH: VALUE",
                f"{where}={entry!r}",
            )
        extra.append((seed, values))
    return Sweep(
        seeds=tuple(seeds),
        grid={
            path: values if isinstance(values, list) else [values] for path, values in grid.items()
        },
        overrides=tuple(overrides),
        include=tuple(extra),
    )


def _is_list_of(value: Any, kind: type) -> bool:
    return isinstance(value, list) and all(
        isinstance(item, kind) and not isinstance(item, bool) for item in value
    )
