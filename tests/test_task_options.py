"""Tasks as objects with options: validation, reward weights, configs, -o, --grid, own files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neuroloop.batch import Sweep, parse_grid, plan, resolved_document
from neuroloop.cli import EXIT_USER_ERROR, main
from neuroloop.config import load_config
from neuroloop.datapack import DataPackIdentifier
from neuroloop.errors import ConfigError
from neuroloop.plugins.experiments import total_reward
from neuroloop.plugins.experiments.freereach import FreeReachTask
from neuroloop.plugins.experiments.manipulate_block import ManipulateBlockTask
from neuroloop.plugins.experiments.reach import EPISODE_STEPS, ReachTask
from neuroloop.simulation import Simulation
from neuroloop.tasks import build_task, task_class

REPO = Path(__file__).resolve().parents[1]
REACH = REPO / "simulation_configs" / "shadow_hand_reach.json"
ONE_FINGER = REPO / "tests" / "fixtures" / "one_finger_reach.json"
PALM = np.array([1.0, 0.96, 0.14])
FF, MF, RF, LF, TH = range(5)
OTHERS = [MF, RF, LF]


def hand_state(tips: np.ndarray) -> dict[str, np.ndarray]:
    return {"fingertip_positions": tips, "palm_position": np.tile(PALM, (len(tips), 1))}


def task_of(path: Path, *overrides: str) -> object:
    config = load_config(path, overrides)
    assert config.task is not None
    return build_task(config.task, str(config.path), config.directory)


# ---------------------------------------------------------------------------- options


def test_default_options_keep_the_shipped_task() -> None:
    task = ReachTask()
    assert task.fingers == ("ff", "mf", "rf", "lf")
    assert task.reward_weights == {"distance": 1.0, "success": 0.1}
    assert task.episode_steps == EPISODE_STEPS
    assert ManipulateBlockTask().episode_steps is None


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (
            lambda: ReachTask(fingers=["th"]),
            r"\[reach\] fingers: expected .*Received: fingers=\['th'\]",
        ),
        (lambda: ReachTask(fingers=[]), r"fingers: expected a non-empty list"),
        (lambda: ReachTask(fingers="ff"), r"fingers: .*Received: fingers='ff'"),
        (lambda: ReachTask(success_distance=-1), r"success_distance: expected a finite number > 0"),
        (lambda: ReachTask(episode_steps=0), r"episode_steps: expected an integer >= 1"),
        (lambda: FreeReachTask(zone_radius=float("nan")), r"\[freereach\] zone_radius"),
        (lambda: ManipulateBlockTask(drop_depth=True), r"drop_depth: .*Received: drop_depth=True"),
        (lambda: ReachTask(reward_weights={"sucess": 1}), r"reward config: .*'sucess'"),
    ],
)
def test_bad_options_name_the_option(make: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()  # type: ignore[operator]


def test_reward_weights_scale_each_term_exactly() -> None:
    # Every fingertip on its goal except the forefinger, 0.01 m off along x: distance 0.01 m,
    # under the success distance 0.02 m. Terms: distance -0.01, success 1.
    tips = np.tile(PALM, (1, 5, 1)) + np.arange(5)[None, :, None] * 0.01
    goal = tips.reshape(1, 15).copy()
    goal[0, 0] += 0.01
    state = hand_state(tips)
    default = ReachTask().reward(state, state, goal)
    np.testing.assert_allclose(total_reward(default), [1.0 * -0.01 + 0.1 * 1.0])
    weighted = ReachTask(reward_weights={"distance": 2.0, "success": 5.0})
    terms = weighted.reward(state, state, goal)
    np.testing.assert_allclose(terms["distance"], [2.0 * -0.01])
    np.testing.assert_allclose(terms["success"], [5.0])
    np.testing.assert_allclose(total_reward(terms), [-0.02 + 5.0])
    ablated = ReachTask(reward_weights={"success": 0.0})
    np.testing.assert_allclose(total_reward(ablated.reward(state, state, goal)), [-0.01])


def test_one_finger_goal_and_reward_use_only_that_finger() -> None:
    task = ReachTask(fingers=("ff",))
    rng = np.random.default_rng(0)
    tips = np.tile(PALM + np.array([0.0, -0.1, 0.08]), (200, 5, 1)) + rng.normal(
        0, 0.01, (200, 5, 3)
    )
    goal = task.sample_goal(np.random.default_rng(1), hand_state(tips)).reshape(200, 5, 3)
    np.testing.assert_array_equal(goal[:, OTHERS], tips[:, OTHERS])
    moved = np.any(goal != tips, axis=-1)
    assert moved[:, FF].any() and moved[:, TH].any()
    np.testing.assert_array_equal(moved[:, FF], moved[:, TH])
    # Moving the other fingertips does not change the reward; moving the forefinger does.
    flat = goal.reshape(200, 15)
    before = total_reward(task.reward(hand_state(tips), hand_state(tips), flat))
    elsewhere = tips.copy()
    elsewhere[:, OTHERS] += 0.05
    np.testing.assert_array_equal(
        total_reward(task.reward(hand_state(tips), hand_state(elsewhere), flat)), before
    )
    forefinger = tips.copy()
    forefinger[:, FF] += 0.05
    assert np.all(
        total_reward(task.reward(hand_state(tips), hand_state(forefinger), flat)) < before
    )


def test_task_classes_by_name_module_or_file() -> None:
    assert task_class("reach") is ReachTask
    assert task_class("neuroloop.plugins.experiments.freereach:FreeReachTask") is FreeReachTask
    one_finger = task_class("one_finger_reach.py:OneFingerReach", ONE_FINGER.parent)
    assert one_finger().fingers == ("ff",)
    with pytest.raises(ValueError, match="expected a subclass of Task"):
        task_class("neuroloop.plugins.experiments.reach:FINGERS")
    with pytest.raises(ValueError, match=r"expected one of .*Received: 'lift'"):
        task_class("lift")


# ---------------------------------------------------------------------------- configs


def test_the_shipped_reach_config_builds_the_default_task() -> None:
    task = task_of(REACH)
    assert isinstance(task, ReachTask)
    default = ReachTask()
    assert (task.fingers, task.reward_weights, task.episode_steps) == (
        default.fingers,
        default.reward_weights,
        default.episode_steps,
    )


def test_options_and_weights_via_overrides() -> None:
    task = task_of(
        REACH,
        'Task.Options.Fingers=["ff"]',
        "Task.Options.SuccessDistance=0.03",
        "Task.RewardWeights.success=10",
    )
    assert isinstance(task, ReachTask)
    assert task.fingers == ("ff",)
    assert task.success_distance == 0.03
    assert task.reward_weights == {"distance": 1.0, "success": 10.0}
    whole = task_of(REACH, 'Task={"Name": "freereach", "Options": {"ZoneRadius": 0.05}}')
    assert isinstance(whole, FreeReachTask) and whole.zone_radius == 0.05


def test_batch_grid_reaches_task_options(tmp_path: Path) -> None:
    grid = parse_grid(
        ['Task.Options.Fingers=[["ff"], ["ff", "mf"]]', "Task.RewardWeights.success=[1, 10]"]
    )
    runs = plan(REACH, Sweep(seeds=(0,), grid=grid), tmp_path)
    seen = set()
    for run in runs:
        section = resolved_document(run)["Task"]
        task = task_of(REACH, *run.overrides)
        assert isinstance(task, ReachTask)
        assert list(task.fingers) == section["Options"]["Fingers"]
        assert task.reward_weights["success"] == section["RewardWeights"]["success"]
        seen.add((task.fingers, task.reward_weights["success"]))
    assert seen == {(("ff",), 1.0), (("ff",), 10.0), (("ff", "mf"), 1.0), (("ff", "mf"), 10.0)}


@pytest.mark.parametrize(
    ("override", "key", "expected"),
    [
        ('Task.Options.Fingers=["th"]', "Task.Options.Fingers", "a non-empty list of distinct"),
        ("Task.Options.Fingrs=1", "Task.Options.Fingrs", "an option of ReachTask"),
        ("Task.RewardWeights.sucess=1", "Task.RewardWeights.sucess", "terms among"),
        ("Task.Name=lift", "Task.Name", "a task class"),
        ("Task.RewardWeights.success=high", "Task.RewardWeights.success", "a number"),
    ],
)
def test_a_bad_task_option_exits_2_naming_file_and_key(
    override: str, key: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["run", str(REACH), "-o", override, "--steps", "1", "--quiet"])
    assert status == EXIT_USER_ERROR
    error = capsys.readouterr().err
    assert f"{REACH}" in error and f"{key}: expected {expected}" in error


def test_functions_that_read_the_task_need_a_task_section() -> None:
    with pytest.raises(ConfigError, match=r"Task: expected a Task section: function .*reads"):
        with Simulation.from_config(REACH, ["Task=null"], local=True):
            pass


# ---------------------------------------------------------------------------- own task file


def test_the_readme_one_finger_reach_runs_in_a_real_simulation() -> None:
    """README "Write your own task": the fixture's one-file variant, through a simulation."""
    with Simulation.from_config(ONE_FINGER, local=True, echo_engine_output=False, seed=3) as sim:
        task = sim.loop.functions.task
        assert isinstance(task, ReachTask) and type(task).__name__ == "OneFingerReach"
        assert task.fingers == ("ff",)
        assert task.reward_weights == {"distance": 1.0, "success": 5.0}
        store = sim.loop.store
        rewards = []
        for step in range(6):
            # The state the functions observe in this step: the physics state before it.
            latest = store.latest(DataPackIdentifier("fingertip_positions", "physics"))
            assert latest is not None
            tips = np.asarray(latest.data)
            sim.step()
            goal = np.asarray(store.preprocessed[DataPackIdentifier("goal", "physics")].data)
            reward = np.asarray(store.preprocessed[DataPackIdentifier("reward", "physics")].data)
            goal = goal.reshape(tips.shape).astype(np.float64)
            if step == 0:
                # The goal keeps the other fingertips where the episode found them.
                np.testing.assert_allclose(goal[:, OTHERS], tips[:, OTHERS], atol=1e-6)
                start = goal
                continue
            np.testing.assert_array_equal(goal, start)
            distance = np.linalg.norm((tips - goal)[:, [FF, TH]].reshape(len(tips), -1), axis=-1)
            expected = -distance + 5.0 * (distance < task.success_distance)
            np.testing.assert_allclose(reward, expected, atol=1e-5)
            rewards.append(reward)
    assert len(rewards) == 5 and np.all(np.isfinite(rewards))
