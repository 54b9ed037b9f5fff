"""Finding and building brains: a registered name, ``file.py:builder`` or ``module:builder``.

A brain builder is a function ``builder(input_shapes, distribution, **options) -> Brain``;
a builder that can normalize its inputs takes the option ``normalize_inputs`` and decides its
default (the shipped ones: true). The brains
that ship with neuroloop are entry points of the group ``neuroloop.brains`` (an installed
package can add its own the same way); ``register_brain`` adds one in this process.
``build_brain`` is the one way the brain engine, training, evaluation and export build a
brain: it resolves the spec, validates what every builder relies on (modality names and
per-step shapes, the distribution) and calls the builder.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeAlias, TypeVar

from neuroloop.brain.contract import Brain
from neuroloop.brain.distributions import Distribution, get_distribution
from neuroloop.brain.spec import installed_brains
from neuroloop.modules import load_target, split_spec
from neuroloop.sensation import BATCHED_RANKS, MODALITIES, POLICY_MODALITIES

BrainBuilder: TypeAlias = Callable[..., Brain]
"""``builder(input_shapes, distribution, **options) -> Brain``."""

BuilderT = TypeVar("BuilderT", bound=BrainBuilder)

_REGISTERED: dict[str, BrainBuilder] = {}


def register_brain(name: str) -> Callable[[BuilderT], BuilderT]:
    """Register a brain builder under ``name`` in this process.

    Args:
        name: The name configs and ``build_brain`` use.

    Raises:
        ValueError: If ``name`` is already a known brain.
    """

    def decorator(builder: BuilderT) -> BuilderT:
        if name in known_brains():
            raise ValueError(f"Brain {name!r} is already registered.")
        _REGISTERED[name] = builder
        return builder

    return decorator


def known_brains() -> tuple[str, ...]:
    """Names of the installed and registered brains, sorted."""
    return tuple(sorted(set(installed_brains()) | set(_REGISTERED)))


def load_builder(spec: str, base: Path | None = None) -> BrainBuilder:
    """The builder a brain spec names.

    Args:
        spec: A name (``known_brains()``), ``"path/to/file.py:builder"`` or
            ``"module:builder"``.
        base: Folder a relative builder file is resolved against.

    Raises:
        ValueError: If the spec names no known brain or no callable.
    """
    if ":" in spec:
        target, name = split_spec(spec)
        builder = getattr(load_target(target, base), name, None)
        if not callable(builder):
            raise ValueError(f"expected Brain to name a function in {target}. Received: {name!r}")
    elif spec in _REGISTERED:
        builder = _REGISTERED[spec]
    else:
        point = installed_brains().get(spec)
        if point is None:
            raise ValueError(
                f"Unknown brain; expected one of {list(known_brains())} or "
                f"'path/to/file.py:builder'. Received: Brain={spec!r}"
            )
        builder = point.load()
    if not callable(builder):
        raise ValueError(f"expected Brain to name a builder function. Received: {builder!r}")
    return builder


def _validate_input_shapes(
    input_shapes: Mapping[str, tuple[int, ...]],
) -> dict[str, tuple[int, ...]]:
    """Check modality names and per-step shapes; return them as tuples of ints.

    Raises:
        ValueError: If a name is not a modality, a shape has the wrong rank or a
            non-positive size, or no modality is left for the policy.
    """
    unknown = sorted(set(input_shapes) - set(MODALITIES))
    if unknown:
        raise ValueError(
            f"build_brain: input names must be Sensation modalities {list(MODALITIES)}. "
            f"Received: {unknown}"
        )
    shapes = {}
    for name in MODALITIES:
        if name not in input_shapes:
            continue
        shape = tuple(input_shapes[name])
        rank = BATCHED_RANKS[name] - 1
        if len(shape) != rank or not all(isinstance(size, int) and size > 0 for size in shape):
            raise ValueError(
                f"build_brain: input_shapes[{name!r}] must be {rank} positive ints per step "
                f"(no batch or time axis). Received: {name}={input_shapes[name]!r}"
            )
        shapes[name] = shape
    if not any(name in shapes for name in POLICY_MODALITIES):
        raise ValueError(
            f"build_brain: the policy needs at least one of {list(POLICY_MODALITIES)}. "
            f"Received: input_shapes={dict(input_shapes)}"
        )
    return shapes


def build_brain(
    spec: str,
    *,
    input_shapes: Mapping[str, tuple[int, ...]],
    action_dim: int,
    distribution: str | Distribution = "beta",
    distribution_options: Mapping[str, Any] | None = None,
    base: Path | None = None,
    **options: Any,
) -> Brain:
    """Build a registered brain.

    Args:
        spec: A brain name (``known_brains()``, e.g. ``"mlp"``, ``"lstm"``, ``"gru"``,
            ``"wide"``) or ``"path/to/file.py:builder"`` / ``"module:builder"``.
        input_shapes: Per-step shape of each modality input, without batch or time axis:
            ``(H, W, C)`` for vision, ``(n,)`` for the others.
        action_dim: Number of action dimensions (joints).
        distribution: A distribution name (``"beta"``, ``"gaussian"``,
            ``"multicategorical"``) or a ``Distribution`` with the same ``action_dim``.
        distribution_options: Options for ``get_distribution`` when ``distribution`` is a
            name, e.g. ``{"n_bins": 11}``.
        base: Folder a relative builder file is resolved against (the config's).
        **options: Builder options, e.g. layer sizes or ``normalize_inputs`` (see each
            builder).

    Raises:
        ValueError: If ``spec`` names no brain, the shapes are invalid, or the distribution
            does not match ``action_dim``.
        TypeError: If an option does not belong to the builder.
    """
    builder = load_builder(spec, base)
    shapes = _validate_input_shapes(input_shapes)
    if isinstance(distribution, Distribution):
        if distribution_options:
            raise ValueError(
                "build_brain: `distribution_options` only apply to a distribution name. "
                f"Received: distribution={distribution!r}, "
                f"distribution_options={dict(distribution_options)}"
            )
        if distribution.action_dim != action_dim:
            raise ValueError(
                "build_brain: the distribution's action_dim must equal `action_dim`. "
                f"Received: action_dim={action_dim}, distribution={distribution!r}"
            )
        dist = distribution
    else:
        dist = get_distribution(distribution, action_dim, **(distribution_options or {}))
    brain = builder(shapes, dist, **options)
    if not isinstance(brain, Brain):
        raise ValueError(
            f"build_brain: expected the builder {spec!r} to return a neuroloop Brain. "
            f"Received: {type(brain).__name__}"
        )
    return dataclasses.replace(brain, name=spec)
