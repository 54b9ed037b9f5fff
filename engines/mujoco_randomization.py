"""Domain randomisation for the MuJoCo engine: per-world model parameters, observation noise
and action delay, drawn from each world's seeded generator at every reset.

Declared under ``EngineExtraConfigs.DomainRandomization`` (see ``mujoco_engine.schema.json``).
Model properties are positive scale factors on the base model's values, so draws never drift;
a world whose model is randomised owns a copy of the ``MjModel``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import mujoco
import numpy as np

PRIMITIVE_GEOMS = (
    mujoco.mjtGeom.mjGEOM_PLANE,
    mujoco.mjtGeom.mjGEOM_SPHERE,
    mujoco.mjtGeom.mjGEOM_CAPSULE,
    mujoco.mjtGeom.mjGEOM_ELLIPSOID,
    mujoco.mjtGeom.mjGEOM_CYLINDER,
    mujoco.mjtGeom.mjGEOM_BOX,
)
"""Geom types whose ``geom_size`` is their shape (a mesh's size is not): the ones ``Size``
scales."""

DOF_WIDTH = (6, 3, 1, 1)
"""Degrees of freedom of a joint by ``mjtJoint`` (free, ball, slide, hinge)."""

ALL = slice(None)
"""Every column of a field."""

HALF_SIZES = slice(3, 6)
"""Half-size columns of a bounding box (``bvh_aabb``: centre, then half-sizes)."""


def _one_row_each(model: mujoco.MjModel, ids: np.ndarray) -> list[np.ndarray]:
    return [np.array([element]) for element in ids]


def _dofs_of_joints(model: mujoco.MjModel, ids: np.ndarray) -> list[np.ndarray]:
    starts = model.jnt_dofadr[ids]
    widths = np.asarray(DOF_WIDTH)[model.jnt_type[ids]]
    return [np.arange(start, start + width) for start, width in zip(starts, widths, strict=True)]


def _primitive_geoms(model: mujoco.MjModel, ids: np.ndarray) -> list[int]:
    return [int(i) for i in ids if model.geom_type[i] not in PRIMITIVE_GEOMS]


def _fixed_gain_actuators(model: mujoco.MjModel, ids: np.ndarray) -> list[int]:
    return [int(i) for i in ids if model.actuator_gaintype[i] != mujoco.mjtGain.mjGAIN_FIXED]


@dataclass(frozen=True)
class ModelProperty:
    """A model property randomised by scale factors on selected elements."""

    obj: mujoco.mjtObj
    """The MuJoCo object type of the elements ``Names`` select."""
    count: str
    """MjModel attribute counting those elements."""
    kind: str
    """The elements' name in errors (``geoms``)."""
    fields: tuple[tuple[str, Any], ...]
    """``(MjModel field, columns)`` each scaled by the element's factor."""
    rows: Callable[[mujoco.MjModel, np.ndarray], list[np.ndarray]] = _one_row_each
    """The rows of the fields each element owns (a joint owns its degrees of freedom)."""
    unfit: Callable[[mujoco.MjModel, np.ndarray], list[int]] | None = None
    """Ids among the selected elements the property cannot scale, if any."""
    expected: str = ""
    """What the selected elements must be, for the error about unfit ones."""
    set_const: bool = False
    """Whether the model's derived constants (``mj_setConst``) follow the property."""


MODEL_PROPERTIES = MappingProxyType(
    {
        "Size": ModelProperty(
            mujoco.mjtObj.mjOBJ_GEOM,
            "ngeom",
            "geoms",
            (("geom_size", ALL), ("geom_rbound", ()), ("geom_aabb", ALL)),
            unfit=_primitive_geoms,
            expected="primitive geoms (plane, sphere, capsule, ellipsoid, cylinder, box)",
        ),
        "Mass": ModelProperty(
            mujoco.mjtObj.mjOBJ_BODY,
            "nbody",
            "bodies",
            (("body_mass", ()), ("body_inertia", ALL)),
            set_const=True,
        ),
        "Friction": ModelProperty(
            mujoco.mjtObj.mjOBJ_GEOM, "ngeom", "geoms", (("geom_friction", ALL),)
        ),
        "JointDamping": ModelProperty(
            mujoco.mjtObj.mjOBJ_JOINT,
            "njnt",
            "joints",
            (("dof_damping", ()),),
            rows=_dofs_of_joints,
        ),
        "ActuatorGain": ModelProperty(
            mujoco.mjtObj.mjOBJ_ACTUATOR,
            "nu",
            "actuators",
            (("actuator_gainprm", 0), ("actuator_biasprm", slice(1, 3))),
            unfit=_fixed_gain_actuators,
            expected="actuators with a fixed gain (motor, position, velocity, general)",
        ),
        "ActuatorGear": ModelProperty(
            mujoco.mjtObj.mjOBJ_ACTUATOR, "nu", "actuators", (("actuator_gear", ALL),)
        ),
    }
)
"""The model properties ``DomainRandomization`` may scale, by their key."""


@dataclass(frozen=True)
class ScaleRule:
    """One declared rule: factors drawn for its elements, scaling one property."""

    prop: ModelProperty
    """The property it scales."""
    names: tuple[str, ...]
    """The matched elements' names, in model order."""
    rows: np.ndarray
    """The rows the matched elements own in the property's fields, element after element."""
    owners: np.ndarray
    """Which matched element owns each of ``rows``."""
    log: bool
    """Draw uniformly in log space (``loguniform``)."""
    low: float
    """Smallest factor."""
    high: float
    """Largest factor."""
    shared: bool
    """One factor for every matched element."""

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        """Factors ``[len(names)]``."""
        size = 1 if self.shared else len(self.names)
        if self.log:
            factors = np.exp(rng.uniform(np.log(self.low), np.log(self.high), size))
        else:
            factors = rng.uniform(self.low, self.high, size)
        return np.broadcast_to(factors, (len(self.names),)).copy()

    def scale(self, model: mujoco.MjModel, factors: np.ndarray) -> None:
        """Multiply the matched elements' values in ``model`` by their factors."""
        per_row = factors[self.owners]
        for name, columns in self.prop.fields:
            values = getattr(model, name)
            index = (self.rows,) if columns == () else (self.rows, columns)
            scaled = values[index]
            values[index] = scaled * per_row.reshape(-1, *[1] * (scaled.ndim - 1))


@dataclass(frozen=True)
class ObservationNoise:
    """Gaussian noise added to one datapack: an offset per episode and fresh noise per read."""

    std: float
    """Standard deviation of the noise drawn at every read."""
    episode_std: float
    """Standard deviation of the offset drawn at every reset and kept for the episode."""
    shape: tuple[int, ...]
    """The datapack's shape per world."""


@dataclass(frozen=True)
class Draw:
    """What one world drew at one reset."""

    factors: tuple[np.ndarray, ...]
    """Scale factors per rule, one per matched element."""
    offsets: Mapping[str, np.ndarray] = field(default_factory=dict)
    """Observation offsets for the episode, by datapack name."""
    delay: int = 0
    """Action delay (control steps) for the episode."""


def _matching(
    model: mujoco.MjModel, prop: ModelProperty, patterns: Sequence[str], where: str
) -> np.ndarray:
    """Ids of the elements whose names match any pattern (``fnmatch``), in model order."""
    names = [mujoco.mj_id2name(model, prop.obj, i) for i in range(int(getattr(model, prop.count)))]
    for pattern in patterns:
        if not any(name and fnmatch.fnmatchcase(name, pattern) for name in names):
            raise ValueError(
                f"{where}.Names: expected names or patterns (fnmatch) of the model's "
                f"{prop.kind}. Received: {pattern!r} (matches none)"
            )
    return np.array(
        [
            i
            for i, name in enumerate(names)
            if name and any(fnmatch.fnmatchcase(name, p) for p in patterns)
        ],
        dtype=np.int64,
    )


def _range(spec: Mapping[str, Any], where: str, positive: bool) -> tuple[float, float]:
    low, high = (float(bound) for bound in spec["Range"])
    if low > high or (positive and low <= 0.0):
        kind = "positive " if positive else ""
        raise ValueError(
            f"{where}.Range: expected [low, high] with {kind}low <= high. "
            f"Received: Range={list(spec['Range'])}"
        )
    return low, high


def _scale_rule(
    model: mujoco.MjModel, key: str, index: int, spec: Mapping[str, Any], context: str
) -> ScaleRule:
    where = f"{context}: EngineExtraConfigs.DomainRandomization.{key}[{index}]"
    prop = MODEL_PROPERTIES[key]
    ids = _matching(model, prop, spec["Names"], where)
    if prop.unfit is not None and (unfit := prop.unfit(model, ids)):
        names = [mujoco.mj_id2name(model, prop.obj, i) for i in unfit]
        raise ValueError(f"{where}.Names: expected {prop.expected}. Received: {names}")
    low, high = _range(spec, where, positive=True)
    rows = prop.rows(model, ids)
    return ScaleRule(
        prop=prop,
        names=tuple(mujoco.mj_id2name(model, prop.obj, i) for i in ids),
        rows=np.concatenate([*rows, np.zeros(0, dtype=np.int64)]).astype(np.int64),
        owners=np.repeat(np.arange(len(rows)), [len(r) for r in rows]).astype(np.int64),
        log=spec["Distribution"] == "loguniform",
        low=low,
        high=high,
        shared=bool(spec["Shared"]),
    )


class DomainRandomizer:
    """Draws and applies one world's randomisation at each reset.

    Args:
        base: The model as loaded; its values are what the factors scale.
        settings: ``EngineExtraConfigs.DomainRandomization`` with the schema's defaults.
        shapes: Per-world shapes of the datapacks observation noise may name.
        context: Starts each error message (``"[physics] initialize"``).

    Raises:
        ValueError: Naming the key, for a range with low > high (or not positive for a scale
            factor), a name or pattern that matches nothing, an element the property cannot
            scale, or observation noise on a datapack that is not a reading of the worlds.
    """

    def __init__(
        self,
        base: mujoco.MjModel,
        settings: Mapping[str, Any],
        shapes: Mapping[str, tuple[int, ...]],
        context: str,
    ) -> None:
        self._base = base
        self.rules = tuple(
            _scale_rule(base, key, index, spec, context)
            for key in MODEL_PROPERTIES
            for index, spec in enumerate(settings[key])
        )
        self._set_const = any(rule.prop.set_const for rule in self.rules)
        self._sizes = [
            i for i, rule in enumerate(self.rules) if rule.prop is MODEL_PROPERTIES["Size"]
        ]
        self._touched = self._touched_rows(base)
        where = f"{context}: EngineExtraConfigs.DomainRandomization"
        unknown = sorted(set(settings["ObservationNoise"]) - set(shapes))
        if unknown:
            raise ValueError(
                f"{where}.ObservationNoise: expected names of datapacks read from the worlds "
                f"({', '.join(shapes)}). Received: {unknown}"
            )
        self.noise = {
            name: ObservationNoise(float(spec["Std"]), float(spec["EpisodeStd"]), shapes[name])
            for name, spec in settings["ObservationNoise"].items()
        }
        self.delay: tuple[int, int] | None = None
        """Smallest and largest action delay (control steps); ``None``: no delay."""
        if settings["ActionDelay"] is not None:
            low, high = _range(settings["ActionDelay"], f"{where}.ActionDelay", False)
            self.delay = (int(low), int(high))

    @staticmethod
    def scales_model(settings: Mapping[str, Any]) -> bool:
        """Whether ``settings`` scale model properties (then each world owns an ``MjModel``)."""
        return any(settings.get(key) for key in MODEL_PROPERTIES)

    @property
    def max_delay(self) -> int:
        """The longest action delay (control steps) a world may draw."""
        return 0 if self.delay is None else self.delay[1]

    def neutral(self) -> Draw:
        """The draw of an unrandomised world: factors 1, no offsets, no delay."""
        return Draw(
            tuple(np.ones(len(rule.names)) for rule in self.rules),
            {name: np.zeros(noise.shape) for name, noise in self.noise.items()},
        )

    def draw(self, rng: np.random.Generator) -> Draw:
        """One world's draw for a new episode: rules in order, then offsets, then the delay."""
        factors = tuple(rule.draw(rng) for rule in self.rules)
        offsets = {
            name: rng.normal(0.0, noise.episode_std, noise.shape)
            for name, noise in self.noise.items()
        }
        delay = 0 if self.delay is None else int(rng.integers(self.delay[0], self.delay[1] + 1))
        return Draw(factors, offsets, delay)

    def apply(self, model: mujoco.MjModel, data: mujoco.MjData, draw: Draw) -> None:
        """Write the base values times ``draw``'s factors into ``model`` (a world's own copy);
        ``data`` is scratch for ``mj_setConst`` when masses change (reset it afterwards)."""
        if not self.rules:
            return
        for name, rows in self._touched.items():
            getattr(model, name)[rows] = getattr(self._base, name)[rows]
        for rule, factors in zip(self.rules, draw.factors, strict=True):
            rule.scale(model, factors)
        if self._sizes:
            self._grow_body_bounds(model, draw)
        if self._set_const:
            mujoco.mj_setConst(model, data)

    def _touched_rows(self, base: mujoco.MjModel) -> dict[str, np.ndarray]:
        """The rows of each field the rules scale, restored from ``base`` before each draw
        (``bvh_aabb``: the bounding-box nodes of bodies with sized geoms)."""
        touched: dict[str, set[int]] = {}
        for rule in self.rules:
            for name, _ in rule.prop.fields:
                touched.setdefault(name, set()).update(rule.rows.tolist())
        if self._sizes:
            sized = np.concatenate([self.rules[index].rows for index in self._sizes])
            touched["bvh_aabb"] = {
                int(node)
                for body in set(base.geom_bodyid[sized].tolist())
                for node in range(
                    base.body_bvhadr[body], base.body_bvhadr[body] + base.body_bvhnum[body]
                )
            }
        return {name: np.array(sorted(rows), dtype=np.int64) for name, rows in touched.items()}

    def _grow_body_bounds(self, model: mujoco.MjModel, draw: Draw) -> None:
        """Grow the bounding boxes of bodies whose geoms grew (MuJoCo's midphase culls with
        them): each box's half-sizes times the largest growth of the body's geoms, which
        contains the grown geoms; shrunk geoms keep the loaded boxes."""
        growth = np.ones(model.ngeom)
        for index in self._sizes:
            rule = self.rules[index]
            np.multiply.at(growth, rule.rows, draw.factors[index][rule.owners])
        body_growth = np.ones(model.nbody)
        np.maximum.at(body_growth, model.geom_bodyid, growth)
        for body in np.flatnonzero((body_growth > 1.0) & (model.body_bvhnum > 0)):
            start = model.body_bvhadr[body]
            nodes = slice(start, start + model.body_bvhnum[body])
            model.bvh_aabb[nodes, HALF_SIZES] = (
                self._base.bvh_aabb[nodes, HALF_SIZES] * body_growth[body]
            )

    def values(self, draw: Draw) -> np.ndarray:
        """The drawn factors (rule by rule, element by element) and the delay, as one row."""
        delay = [float(draw.delay)] if self.delay is not None else []
        return np.concatenate([*draw.factors, np.asarray(delay)])

    def observe(
        self,
        name: str,
        value: np.ndarray,
        draws: Sequence[Draw],
        rngs: Sequence[np.random.Generator],
    ) -> np.ndarray:
        """``value`` ``[W, *shape]`` with each world's offset and fresh noise added."""
        noise = self.noise[name]
        fresh = np.array([rng.normal(0.0, noise.std, noise.shape) for rng in rngs])
        offsets = np.array([draw.offsets[name] for draw in draws])
        return value + offsets.reshape(value.shape) + fresh.reshape(value.shape)


class ActionDelayLine:
    """Controls sent to each world, applied ``delay`` control steps later.

    Args:
        n_worlds: Worlds.
        nu: Controls per world.
        max_delay: The longest delay any world may have.
    """

    def __init__(self, n_worlds: int, nu: int, max_delay: int) -> None:
        self._history = np.zeros((n_worlds, max_delay + 1, nu))
        self._delays = np.zeros(n_worlds, dtype=np.int64)
        self.sent = np.zeros((n_worlds, nu))
        """The latest control sent to each world ``[W, nu]`` (set by the engine's ``ctrl``)."""

    def reset(self, world: int, ctrl: np.ndarray, delay: int) -> None:
        """Start ``world``'s episode: until ``delay`` steps have passed, ``ctrl`` applies."""
        self._history[world] = ctrl
        self.sent[world] = ctrl
        self._delays[world] = delay

    def advance(self, world: int) -> np.ndarray:
        """Record the control sent for this step; return the one sent ``delay`` steps ago."""
        history = self._history[world]
        history[:-1] = history[1:]
        history[-1] = self.sent[world]
        return history[-1 - self._delays[world]]
