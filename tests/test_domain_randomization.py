"""Domain randomisation in the MuJoCo engine: per-world model copies that differ in exactly the
declared properties, seeded draws inside their ranges, observation noise and action delay."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mujoco
import numpy as np
import pytest
from scipy import stats

from neuroloop.client import EngineClient
from neuroloop.launcher import Launcher
from neuroloop.plugins.engines.mujoco_engine import MujocoEngine, shipped_model_folder
from neuroloop.plugins.engines.mujoco_randomization import DomainRandomizer
from tests.processes import engine_command

REPO = Path(__file__).resolve().parents[1]
SHADOW_HAND = str(REPO / "experiments" / "bodies" / "shadow_hand.yaml")
NAME = "physics"
CONTROL_DT_S = 0.02
CONTROL_DT_NS = 20_000_000
TIMEOUT_S = 60.0
BLOCK = "manipulate_block"

SIZE = {"Names": ["object", "object_hidden"], "Range": [1.01, 1.05], "Shared": True}
"""Growing only (Dactyl: [0.95, 1.05]), so the object's bounding boxes grow in every draw."""
FRICTION = {"Names": ["object"], "Range": [0.7, 1.3]}
DAMPING = {"Names": ["robot0:FFJ*"], "Distribution": "loguniform", "Range": [0.3, 3.0]}
GAIN = {"Names": ["robot0:A_FFJ*"], "Distribution": "loguniform", "Range": [0.75, 1.5]}
MASS = {"Names": ["object"], "Range": [0.5, 1.5]}
DR = {"Size": [SIZE], "Friction": [FRICTION], "JointDamping": [DAMPING], "ActuatorGain": [GAIN]}
"""Dactyl's ranges (OpenAI et al. 2018, Table 1) on the block and the first finger."""

CHANGED_FIELDS = {
    "bvh_aabb",
    "geom_size",
    "geom_rbound",
    "geom_aabb",
    "geom_friction",
    "dof_damping",
    "actuator_gainprm",
    "actuator_biasprm",
}
"""The MjModel fields ``DR`` scales."""

DRAWS = 4000
"""Draws per distribution check."""

KS_P = 1e-3
"""Smallest Kolmogorov-Smirnov p-value accepted for draws from the declared distribution."""


def config(model: str = BLOCK, worlds: int = 2, **extra: Any) -> dict[str, Any]:
    return {
        "EngineName": NAME,
        "EngineTimestep": CONTROL_DT_S,
        "EngineExtraConfigs": {"Model": model, "Body": SHADOW_HAND, "Worlds": worlds, **extra},
    }


def start(cfg: dict[str, Any]) -> MujocoEngine:
    """An engine in this process (one thread, no camera: nothing to shut down)."""
    engine = MujocoEngine(NAME)
    engine.initialize(cfg)
    return engine


def model_arrays(model: mujoco.MjModel) -> dict[str, np.ndarray]:
    """Every numeric array field of an MjModel, by name."""
    arrays = {}
    for name in dir(model):
        if name.startswith("_"):
            continue
        value = getattr(model, name)
        if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
            arrays[name] = value
    return arrays


def differing(first: mujoco.MjModel, second: mujoco.MjModel) -> set[str]:
    """Names of the array fields whose bytes differ."""
    a, b = model_arrays(first), model_arrays(second)
    return {name for name in a if a[name].tobytes() != b[name].tobytes()}


def element_id(model: mujoco.MjModel, obj: mujoco.mjtObj, name: str) -> int:
    index = mujoco.mj_name2id(model, obj, name)
    assert index >= 0, name
    return index


def test_off_by_default_every_world_steps_the_loaded_model_untouched() -> None:
    engine = start(config())
    loaded = mujoco.MjModel.from_xml_path(str(shipped_model_folder() / f"{BLOCK}.xml"))
    engine.reset(3)
    engine.step(CONTROL_DT_NS)

    assert "domain_randomization" not in engine.datapack_names
    assert engine.world_model(0) is engine.world_model(1)
    assert differing(engine.world_model(0), loaded) == set()


def test_two_worlds_differ_in_exactly_the_randomised_properties() -> None:
    engine = start(config(DomainRandomization=DR))
    engine.reset(7)
    base = mujoco.MjModel.from_xml_path(str(shipped_model_folder() / f"{BLOCK}.xml"))
    first, second = engine.world_model(0), engine.world_model(1)

    assert first is not second
    assert differing(first, second) == CHANGED_FIELDS
    assert differing(first, base) == CHANGED_FIELDS
    # Within the changed fields, only the named elements' rows changed, each by its factor.
    obj = element_id(base, mujoco.mjtObj.mjOBJ_GEOM, "object")
    joints = [j for j in range(base.njnt) if base.joint(j).name.startswith("robot0:FFJ")]
    dofs = base.jnt_dofadr[joints]
    actuators = [a for a in range(base.nu) if base.actuator(a).name.startswith("robot0:A_FFJ")]
    drawn = engine.get_datapack("domain_randomization")
    assert drawn.shape == (2, 2 + 1 + len(joints) + len(actuators))
    body = base.geom_bodyid[obj]
    nodes = slice(base.body_bvhadr[body], base.body_bvhadr[body] + base.body_bvhnum[body])
    for world, model in enumerate((first, second)):
        size, hidden_size, friction, *rest = drawn[world]
        assert size == hidden_size  # Shared: one factor for the object's two geoms
        damping, gain = rest[: len(joints)], rest[len(joints) :]
        np.testing.assert_allclose(model.geom_size[obj], base.geom_size[obj] * size)
        np.testing.assert_allclose(model.geom_rbound[obj], base.geom_rbound[obj] * size)
        # The object body's bounding boxes grew with it; no other body's did.
        np.testing.assert_allclose(model.bvh_aabb[nodes, 3:], base.bvh_aabb[nodes, 3:] * size)
        assert (
            np.delete(model.bvh_aabb, np.r_[nodes], 0).tobytes()
            == np.delete(base.bvh_aabb, np.r_[nodes], 0).tobytes()
        )
        np.testing.assert_allclose(model.geom_friction[obj], base.geom_friction[obj] * friction)
        np.testing.assert_allclose(model.dof_damping[dofs], base.dof_damping[dofs] * damping)
        np.testing.assert_allclose(
            model.actuator_gainprm[actuators, 0], base.actuator_gainprm[actuators, 0] * gain
        )
        # A position servo stays a servo: its bias (-kp) scales with its gain.
        np.testing.assert_allclose(
            model.actuator_biasprm[actuators, 1], base.actuator_biasprm[actuators, 1] * gain
        )
        hidden = element_id(base, mujoco.mjtObj.mjOBJ_GEOM, "object_hidden")
        np.testing.assert_allclose(model.geom_size[hidden], base.geom_size[hidden] * size)
        others = np.ones(base.ngeom, dtype=bool)
        others[[obj, hidden]] = False
        assert model.geom_size[others].tobytes() == base.geom_size[others].tobytes()
        assert (
            np.delete(model.dof_damping, dofs).tobytes()
            == np.delete(base.dof_damping, dofs).tobytes()
        )
        assert (
            np.delete(model.actuator_gainprm, actuators, 0).tobytes()
            == np.delete(base.actuator_gainprm, actuators, 0).tobytes()
        )
    assert not np.array_equal(drawn[0], drawn[1])


def test_mass_changes_only_masses_inertias_and_what_mujoco_derives_from_them() -> None:
    engine = start(config(DomainRandomization={"Mass": [MASS]}))
    engine.reset(11)
    base = mujoco.MjModel.from_xml_path(str(shipped_model_folder() / f"{BLOCK}.xml"))
    # What mj_setConst derives from the object's mass, found on a copy the test scales itself.
    heavier = copy.copy(base)
    obj = element_id(base, mujoco.mjtObj.mjOBJ_BODY, "object")
    heavier.body_mass[obj] *= 2.0
    heavier.body_inertia[obj] *= 2.0
    mujoco.mj_setConst(heavier, mujoco.MjData(heavier))
    derived = differing(heavier, base)

    (factor,) = engine.get_datapack("domain_randomization")[0]
    model = engine.world_model(0)
    assert {"body_mass", "body_inertia"} <= differing(model, base) <= derived
    np.testing.assert_allclose(model.body_mass[obj], base.body_mass[obj] * factor)
    np.testing.assert_allclose(model.body_subtreemass[obj], base.body_mass[obj] * factor)
    np.testing.assert_allclose(model.body_inertia[obj], base.body_inertia[obj] * factor)


def test_threads_step_randomised_worlds_exactly_like_one_thread() -> None:
    randomized = {**DR, "Mass": [MASS], "ActionDelay": {"Range": [0, 2]}}
    engines = [
        start(config(worlds=4, Threads=threads, DomainRandomization=randomized))
        for threads in (1, 2)
    ]
    ranges = engines[0].get_datapack("actuator_ctrlrange")
    rng = np.random.default_rng(1)
    for engine in engines:
        engine.reset(4)
    for _ in range(10):
        ctrl = rng.uniform(ranges[:, 0], ranges[:, 1], (4, len(ranges)))
        for engine in engines:
            engine.set_datapack("ctrl", ctrl)
            engine.step(CONTROL_DT_NS)
    one, two = (engine.get_datapack("qpos") for engine in engines)
    for engine in engines:
        engine.shutdown()
    np.testing.assert_array_equal(one, two)


SLOPE_TAN = 0.5
"""Gravity tilted so that a box on the floor sits on an incline of slope 0.5: it slides
exactly when its friction coefficient is below 0.5."""

GRAVITY = 9.81

SLOPE_MJCF = f"""
<mujoco>
  <option timestep="0.002" gravity="{GRAVITY * SLOPE_TAN / np.hypot(1, SLOPE_TAN)} 0
    {-GRAVITY / np.hypot(1, SLOPE_TAN)}" cone="elliptic"/>
  <worldbody>
    <geom name="floor" type="plane" size="2 2 0.1" friction="0.1 0.005 0.0001"/>
    <body name="box" pos="0 0 0.02">
      <freejoint name="box"/>
      <geom name="box" type="box" size="0.02 0.02 0.02" mass="0.1" friction="0.5 0.005 0.0001"/>
    </body>
  </worldbody>
</mujoco>
"""
"""A 4 cm box (friction 0.5, above the floor's 0.1: MuJoCo takes the larger) on an incline."""

SLIDE_S = 1.0


def test_randomised_friction_and_size_act_on_the_physics_as_drawn(tmp_path: Path) -> None:
    (tmp_path / "slope.xml").write_text(SLOPE_MJCF)
    randomized = {
        "Size": [{"Names": ["box"], "Range": [0.8, 1.2]}],
        "Friction": [{"Names": ["box"], "Range": [0.7, 1.3]}],
    }
    engine = MujocoEngine(NAME)
    engine.initialize(
        {
            "EngineTimestep": CONTROL_DT_S,
            "WorldFileName": str(tmp_path / "slope.xml"),
            "EngineExtraConfigs": {"Worlds": 8, "DomainRandomization": randomized},
        }
    )
    engine.reset(0)
    for _ in range(round(SLIDE_S / CONTROL_DT_S)):
        engine.step(CONTROL_DT_NS)
    qpos = engine.get_datapack("qpos")
    size, friction = engine.get_datapack("domain_randomization").T
    mu = 0.5 * friction

    # Coulomb: below the slope it slides x = g (sin - mu cos) t^2 / 2; above, it holds.
    cos = 1.0 / np.hypot(1.0, SLOPE_TAN)
    sliding, holding = mu < SLOPE_TAN - 0.03, mu > SLOPE_TAN + 0.03
    assert sliding.sum() >= 2 and holding.sum() >= 2, mu
    # Resting on a face, a holding box's centre is its drawn half-size above the floor (a
    # sliding box tilts a little on MuJoCo's soft contacts).
    np.testing.assert_allclose(qpos[holding, 2], 0.02 * size[holding], atol=2e-4)
    expected = GRAVITY * cos * (SLOPE_TAN - mu[sliding]) * SLIDE_S**2 / 2
    np.testing.assert_allclose(qpos[sliding, 0], expected, rtol=0.15)
    assert np.all(np.abs(qpos[holding, 0]) < 0.01)


def test_draws_follow_the_declared_distributions_inside_their_ranges() -> None:
    model = mujoco.MjModel.from_xml_path(str(shipped_model_folder() / f"{BLOCK}.xml"))
    settings = {
        "Size": [],
        "Mass": [],
        "Friction": [{**FRICTION, "Distribution": "uniform", "Shared": False}],
        "JointDamping": [{**DAMPING, "Shared": False}],
        "ActuatorGain": [],
        "ActuatorGear": [],
        "ObservationNoise": {},
        "ActionDelay": {"Range": [1, 3]},
    }
    randomizer = DomainRandomizer(model, settings, {}, "[test]")
    rng = np.random.default_rng(0)
    draws = [randomizer.draw(rng) for _ in range(DRAWS)]
    friction = np.concatenate([draw.factors[0] for draw in draws])
    damping = np.concatenate([draw.factors[1] for draw in draws])
    delays = np.array([draw.delay for draw in draws])

    assert friction.min() >= 0.7 and friction.max() <= 1.3
    assert damping.min() >= 0.3 and damping.max() <= 3.0
    assert stats.kstest(friction, stats.uniform(0.7, 0.6).cdf).pvalue > KS_P
    assert stats.kstest(damping, stats.loguniform(0.3, 3.0).cdf).pvalue > KS_P
    # Every delay in [1, 3], each about a third of the time.
    counts = np.bincount(delays, minlength=4)
    assert counts[0] == 0 and stats.chisquare(counts[1:]).pvalue > KS_P


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"Friction": [{"Names": ["object"], "Range": [1.3, 0.7]}]},
            r"DomainRandomization\.Friction\[0\]\.Range: expected \[low, high\] with positive "
            r"low <= high\. Received: Range=\[1\.3, 0\.7\]",
        ),
        (
            {"JointDamping": [{"Names": ["robot0:FFJ*", "elbow"], "Range": [0.5, 2]}]},
            r"DomainRandomization\.JointDamping\[0\]\.Names: expected names or patterns "
            r"\(fnmatch\) of the model's joints\. Received: 'elbow' \(matches none\)",
        ),
        (
            {"ObservationNoise": {"qpoz": {"Std": 0.1}}},
            r"DomainRandomization\.ObservationNoise: expected names of datapacks read from the "
            r"worlds \(.*\)\. Received: \['qpoz'\]",
        ),
        (
            {"ActionDelay": {"Range": [3, 1]}},
            r"DomainRandomization\.ActionDelay\.Range: expected \[low, high\] with low <= high",
        ),
        (
            {"Mass": [{"Names": ["object"], "Range": [0.0, 1.0]}]},
            r"DomainRandomization\.Mass\[0\]\.Range\[0\]: expected a number > 0\. "
            r"Received: Range\[0\]=0\.0",
        ),
    ],
)
def test_bad_randomisation_names_the_key(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=rf"^\[physics\] initialize: .*{message}"):
        start(config(DomainRandomization=extra))


def test_size_refuses_mesh_geoms() -> None:
    model = mujoco.MjModel.from_xml_path(str(shipped_model_folder() / f"{BLOCK}.xml"))
    mesh = next(
        model.geom(g).name
        for g in range(model.ngeom)
        if model.geom_type[g] == mujoco.mjtGeom.mjGEOM_MESH and model.geom(g).name
    )
    with pytest.raises(ValueError, match=r"Size\[0\]\.Names: expected primitive geoms"):
        start(config(DomainRandomization={"Size": [{"Names": [mesh], "Range": [1, 2]}]}))


# ---------------------------------------------------------------- over gRPC, in an engine process


@pytest.fixture(scope="module")
def address() -> Iterator[str]:
    """One real `neuroloop engine` process serving the MuJoCo engine for this module."""
    command = engine_command("neuroloop.plugins.engines.mujoco_engine:MujocoEngine", NAME)
    with Launcher(echo_stdout=False) as launcher:
        process = launcher.start(NAME, command)
        yield launcher.wait_announced(process, TIMEOUT_S)


@pytest.fixture
def client(address: str) -> Iterator[EngineClient]:
    engine = EngineClient(NAME, address, TIMEOUT_S)
    engine.wait_ready(TIMEOUT_S)
    yield engine
    engine.close()


def test_same_seed_same_draws_other_seed_other_draws(client: EngineClient) -> None:
    client.initialize(config(worlds=3, DomainRandomization={**DR, "Mass": [MASS]}))

    def draws(seed: int) -> np.ndarray:
        client.reset(seed)
        return np.asarray(client.get_datapacks(["domain_randomization"])["domain_randomization"])

    first, again, other = draws(5), draws(5), draws(6)
    np.testing.assert_array_equal(first, again)
    assert not np.any(first == other)
    assert len({row.tobytes() for row in first}) == 3  # every world its own draw


def test_action_delay_applies_the_control_sent_k_steps_before(client: EngineClient) -> None:
    client.initialize(config(worlds=4, DomainRandomization={"ActionDelay": {"Range": [0, 3]}}))
    client.reset(2)
    delays = np.asarray(client.get_datapacks(["domain_randomization"])["domain_randomization"])
    delays = delays[:, 0].astype(int)
    hold = np.asarray(client.get_datapacks(["ctrl"])["ctrl"])
    ranges = np.asarray(client.get_datapacks(["actuator_ctrlrange"])["actuator_ctrlrange"])
    rng = np.random.default_rng(0)
    sent = [rng.uniform(ranges[:, 0], ranges[:, 1], (4, len(ranges))) for _ in range(8)]

    assert len(set(delays.tolist())) > 1, delays  # seed 2 gives the worlds different delays
    for t, ctrl in enumerate(sent):
        applied = np.asarray(client.step({"ctrl": ctrl}, CONTROL_DT_NS, ["ctrl"])["ctrl"])
        for world, k in enumerate(delays):
            expected = sent[t - k][world] if t >= k else hold[world]
            np.testing.assert_array_equal(applied[world], expected)


def test_observation_noise_has_its_declared_offset_and_spread(client: EngineClient) -> None:
    noise = {"joint_positions": {"Std": 0.01, "EpisodeStd": 0.05}}
    client.initialize(
        config(model="reach", worlds=2, DomainRandomization={"ObservationNoise": noise})
    )
    reads = 400

    def episode(seed: int) -> tuple[np.ndarray, np.ndarray]:
        client.reset(seed)
        # reach has only hinge joints: joint_positions is qpos, read here without noise.
        true = np.asarray(client.get_datapacks(["qpos"])["qpos"])
        noisy = [client.get_datapacks(["joint_positions"])["joint_positions"] for _ in range(reads)]
        errors = np.asarray(noisy) - true
        return errors.mean(axis=0), errors.std(axis=0)

    offset, spread = episode(1)
    again, _ = episode(1)
    other, _ = episode(2)
    # Fresh noise per read: sd 0.01 in every entry (400 reads: within 20 %).
    np.testing.assert_allclose(spread, 0.01, rtol=0.2)
    # A constant offset per episode with sd 0.05 across the 2 x 24 entries, repeated by the
    # same seed up to the fresh noise's mean (sd 0.01 / sqrt(400) = 0.0005).
    assert 0.03 < offset.std() < 0.07
    np.testing.assert_allclose(again, offset, atol=0.003)
    assert np.abs(other - offset).mean() > 0.02
