"""The block task as the anchors define it: CGR counting on scripted trajectories, orientation
errors of known rotations, z-rotation goals, the tolerance, the trainability knobs
(ObserveObject, relative and smoothed control) and evaluate's CGR distribution."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from neuroloop.config import load_config
from neuroloop.errors import OptionError
from neuroloop.plugins.experiments.base import ControlSettings
from neuroloop.plugins.experiments.episodes import StepOutcome, TaskEpisodes
from neuroloop.plugins.experiments.manipulate_block import (
    MAX_GOALS,
    OBJECT_GOAL_SIZE,
    ManipulateBlockTask,
)
from neuroloop.plugins.experiments.rotations import (
    quat_difference,
    quat_from_axis_angle,
    quat_mul,
    random_z_rotations,
    rotation_distance,
)
from neuroloop.plugins.transceivers.shadow_hand_control import ActuatorTargets
from neuroloop.simulation import Simulation
from neuroloop.tasks import build_task
from neuroloop.training.evaluate import Evaluation, count_distribution
from neuroloop.training.recipe import load_recipe
from tests.processes import run_neuroloop as neuroloop

REPO = Path(__file__).resolve().parents[1]
IDENTITY = np.array([1.0, 0.0, 0.0, 0.0])
AXES = {"x": (1.0, 0.0, 0.0), "y": (0.0, 1.0, 0.0), "z": (0.0, 0.0, 1.0)}
PALM = np.array([1.0, 0.9, 0.2])
RESTING = PALM + np.array([0.0, 0.0, 0.03])
DROPPED = PALM - np.array([0.0, 0.0, 0.1])
DT_S = 0.04


def block_state(orientations: np.ndarray, positions: np.ndarray) -> dict[str, np.ndarray]:
    """A state of ``len(orientations)`` worlds with the cube at ``positions``."""
    orientations = np.atleast_2d(orientations)
    pose = np.concatenate([np.atleast_2d(positions), orientations], axis=1)
    return {"object_pose": pose, "palm_position": np.tile(PALM, (len(orientations), 1))}


class Script:
    """Plays a scripted trajectory of one world through ``TaskEpisodes``."""

    def __init__(self, task: ManipulateBlockTask, seed: int = 0) -> None:
        self.episodes = TaskEpisodes(task, control_dt_s=DT_S, seed=seed)
        self.outcome = self.episodes.observe(block_state(IDENTITY, RESTING))
        self.goals = [self.outcome.goal[0].copy()]

    def step(self, orientation: np.ndarray, position: np.ndarray = RESTING) -> StepOutcome:
        self.outcome = self.episodes.observe(block_state(orientation, position))
        self.goals.append(self.outcome.goal[0].copy())
        return self.outcome

    def reach_goal(self) -> StepOutcome:
        """Turn the cube exactly onto its current goal."""
        return self.step(self.outcome.goal[0])


# ------------------------------------------------------------------ CGR on trajectories


def test_reached_goals_are_counted_and_replaced_until_the_cube_drops() -> None:
    script = Script(ManipulateBlockTask())
    for reached in range(1, 4):
        goal = script.outcome.goal[0].copy()
        outcome = script.reach_goal()
        assert outcome.success.tolist() == [True]
        assert not outcome.done.any()
        assert rotation_distance(outcome.goal[0], goal) > 0.0  # a new goal each time
        assert script.episodes._progress.goals_reached.tolist() == [reached]
    # A step short of the goal counts nothing; a drop ends the episode with CGR 3.
    script.step(quat_mul(quat_from_axis_angle(AXES["x"], 1.0), script.outcome.goal[0]))
    dropped = script.step(script.outcome.goal[0], DROPPED)
    assert dropped.terminated.tolist() == [True] and not dropped.truncated.any()
    assert dropped.success.tolist() == [False]  # turned right, but on the floor: no count
    assert dropped.reward_terms["success"].tolist() == [0.0]
    assert dropped.metric.tolist() == [3.0]
    restarted = script.step(IDENTITY)
    assert restarted.episode_start.tolist() == [True]
    assert np.isnan(restarted.metric).all()
    assert script.episodes._progress.goals_reached.tolist() == [0]
    assert list(script.episodes.record.metrics) == [3.0]


def test_an_episode_ends_at_the_cap_of_fifty_goals() -> None:
    script = Script(ManipulateBlockTask())
    outcomes = [script.reach_goal() for _ in range(MAX_GOALS)]
    assert not any(o.done.any() for o in outcomes[:-1])
    assert outcomes[-1].truncated.tolist() == [True]
    assert outcomes[-1].metric.tolist() == [float(MAX_GOALS)]
    # No goal is drawn past the cap: the 50th goal stays in force until the reset.
    np.testing.assert_array_equal(outcomes[-1].goal, outcomes[-2].goal)
    assert list(script.episodes.record.metrics) == [50.0]


def test_a_goal_not_reached_in_eight_seconds_ends_the_episode() -> None:
    script = Script(ManipulateBlockTask())
    script.reach_goal()
    away = quat_mul(quat_from_axis_angle(AXES["y"], 2.0), script.outcome.goal[0])
    outcomes = [script.step(away) for _ in range(round(8.0 / DT_S))]
    assert [o.truncated[0] for o in outcomes].index(True) == len(outcomes) - 1
    assert outcomes[-1].metric.tolist() == [1.0]


def test_success_tolerance_counts_at_point_four_or_point_one_radian() -> None:
    goal_turn = quat_from_axis_angle(AXES["z"], 0.25)  # 0.25 rad from the goal
    counts = {}
    for tolerance in (0.4, 0.1):
        script = Script(ManipulateBlockTask(success_rotation=tolerance))
        outcome = script.step(quat_mul(goal_turn, script.outcome.goal[0]))
        counts[tolerance] = int(outcome.success[0])
    assert counts == {0.4: 1, 0.1: 0}


# ------------------------------------------------------------------ orientation errors


@pytest.mark.parametrize("axis", ["x", "y", "z"])
def test_orientation_error_of_turns_about_each_axis(axis: str) -> None:
    angles = np.array([0.0, 0.1, 0.4, 1.5, np.pi])
    turned = quat_from_axis_angle(np.tile(AXES[axis], (5, 1)), angles)
    np.testing.assert_allclose(rotation_distance(turned, np.tile(IDENTITY, (5, 1))), angles)
    # Two turns about the same axis differ by the difference of their angles.
    np.testing.assert_allclose(rotation_distance(turned[2], turned[3]), 1.1)
    task = ManipulateBlockTask()
    state = block_state(turned, np.tile(RESTING, (5, 1)))
    np.testing.assert_allclose(task.rotation_distance(state, np.tile(IDENTITY, (5, 1))), angles)
    assert task.success(state, np.tile(IDENTITY, (5, 1))).tolist() == [
        True,
        True,
        True,
        False,
        False,
    ]


def test_orientation_error_between_turns_about_different_axes() -> None:
    # x then y by a each: cos(theta / 2) = cos(a / 2)^2 (the w of the product).
    a = 0.5
    both = quat_mul(quat_from_axis_angle(AXES["y"], a), quat_from_axis_angle(AXES["x"], a))
    expected = 2.0 * np.arccos(np.cos(a / 2) ** 2)
    assert rotation_distance(both, IDENTITY) == pytest.approx(expected)
    x, y = quat_from_axis_angle(AXES["x"], a), quat_from_axis_angle(AXES["y"], a)
    assert rotation_distance(x, y) == pytest.approx(expected)


def test_z_goals_are_rotations_about_the_vertical_uniform_in_angle() -> None:
    goals = random_z_rotations(np.random.default_rng(3), 4000)
    np.testing.assert_allclose(np.linalg.norm(goals, axis=1), 1.0)
    np.testing.assert_array_equal(goals[:, 1:3], 0.0)  # no x or y component
    assert (goals[:, 0] >= 0.0).all()
    angles = 2.0 * np.arctan2(goals[:, 3], goals[:, 0])  # signed angle about z
    assert angles.min() >= -np.pi and angles.max() <= np.pi
    # Uniform on [-pi, pi): each quarter holds a quarter of the goals (+- 4 sigma).
    quarters = np.histogram(angles, bins=4, range=(-np.pi, np.pi))[0]
    assert np.all(np.abs(quarters - 1000) < 4 * np.sqrt(4000 * 0.25 * 0.75))
    # The goal's orientation error from the unturned cube is the turn's angle.
    np.testing.assert_allclose(rotation_distance(goals, IDENTITY), np.abs(angles), atol=1e-9)


def test_the_z_task_draws_z_goals_at_every_success_and_xyz_goals_are_not() -> None:
    script = Script(ManipulateBlockTask(goal_rotation="z"), seed=5)
    for _ in range(5):
        script.reach_goal()
    goals = np.array(script.goals)
    assert len({tuple(g) for g in goals}) == 6
    np.testing.assert_array_equal(goals[:, 1:3], 0.0)
    free = Script(ManipulateBlockTask(), seed=5)
    assert np.abs(free.outcome.goal[0, 1:3]).sum() > 0.0


# ------------------------------------------------------------------ knobs


def test_observe_object_puts_the_cube_pose_and_the_rotation_to_the_goal_in_the_goal() -> None:
    cube = quat_from_axis_angle(AXES["z"], 0.3)
    goal = quat_from_axis_angle(AXES["z"], 1.0)
    state = block_state(-cube, RESTING)  # -q: the same orientation, shown with w >= 0
    plain = ManipulateBlockTask(goal_rotation="z")
    np.testing.assert_array_equal(plain.goal_observation(state, goal[None]), goal[None])
    seen = ManipulateBlockTask(goal_rotation="z", observe_object=True)
    observed = seen.goal_observation(state, goal[None])[0]
    assert observed.shape == (OBJECT_GOAL_SIZE,)
    np.testing.assert_array_equal(observed[:4], goal)
    np.testing.assert_allclose(observed[4:7], RESTING - PALM)
    np.testing.assert_allclose(observed[7:11], cube)
    np.testing.assert_allclose(observed[11:], quat_from_axis_angle(AXES["z"], 0.7))
    np.testing.assert_allclose(observed[11:], quat_difference(goal, cube))


def test_task_options_from_the_config_and_their_errors() -> None:
    config = load_config(REPO / "simulation_configs" / "shadow_hand_manipulate_block_rotate_z.json")
    assert config.task is not None
    task = build_task(config.task, str(config.path), config.directory)
    assert isinstance(task, ManipulateBlockTask)
    assert task.goal_rotation == "z" and task.observe_object
    assert task.control == ControlSettings() and task.control.absolute
    knobs = ManipulateBlockTask(relative_control=0.1, action_smoothing=0.5).control
    assert knobs == ControlSettings(0.1, 0.5) and not knobs.absolute
    for options, option in [
        ({"goal_rotation": "y"}, "goal_rotation"),
        ({"observe_object": 1}, "observe_object"),
        ({"relative_control": 0.0}, "relative_control"),
        ({"action_smoothing": 1.0}, "action_smoothing"),
    ]:
        with pytest.raises(OptionError, match=rf"\[manipulate_block\] {option}: expected"):
            ManipulateBlockTask(**options)  # type: ignore[arg-type]


RANGE = np.array([[-1.0, 1.0], [0.0, 0.5]])
"""Two actuators' control ranges: centres 0 and 0.25."""


def test_stateful_control_sends_nothing_before_its_start_is_known() -> None:
    ctrl = np.array([[0.9, 0.4]])
    assert ActuatorTargets(ControlSettings(relative_scale=0.1))(ctrl, RANGE) is None
    assert ActuatorTargets(ControlSettings(smoothing=0.5))(ctrl, RANGE) is None
    np.testing.assert_array_equal(ActuatorTargets(ControlSettings())(ctrl, RANGE), ctrl)


def test_absolute_control_sends_the_mapped_action() -> None:
    targets = ActuatorTargets(ControlSettings())
    targets.start(np.array([True]), np.array([[0.3, 0.1]]))
    ctrl = np.array([[0.9, 0.4]])
    np.testing.assert_array_equal(targets(ctrl, RANGE), ctrl)


def test_relative_control_moves_targets_by_the_scaled_offset_from_the_centre() -> None:
    targets = ActuatorTargets(ControlSettings(relative_scale=0.1))
    targets.start(np.array([True, True]), np.array([[0.3, 0.1], [0.0, 0.25]]))
    ctrl = np.array([[1.0, 0.25], [-0.5, 0.5]])  # offsets from the centres: (1, 0), (-0.5, 0.25)
    first = targets(ctrl, RANGE)
    np.testing.assert_allclose(first, [[0.4, 0.1], [-0.05, 0.275]])
    second = targets(ctrl, RANGE)  # the offsets accumulate
    np.testing.assert_allclose(second, [[0.5, 0.1], [-0.1, 0.3]])
    # Targets stay inside the range; a world whose episode starts restarts from its position.
    for _ in range(20):
        last = targets(ctrl, RANGE)
    np.testing.assert_allclose(last, [[1.0, 0.1], [-1.0, 0.5]])
    targets.start(np.array([False, True]), np.array([[0.0, 0.0], [0.2, 0.2]]))
    np.testing.assert_allclose(targets(ctrl, RANGE), [[1.0, 0.1], [0.15, 0.225]])


def test_smoothing_filters_targets_exponentially() -> None:
    targets = ActuatorTargets(ControlSettings(smoothing=0.75))
    targets.start(np.array([True]), np.array([[0.0, 0.0]]))
    ctrl = np.array([[1.0, 0.4]])
    sent = [targets(ctrl, RANGE) for _ in range(3)]
    for k, value in enumerate(sent, start=1):  # the gap to ctrl shrinks by 0.75 per step
        np.testing.assert_allclose(value, ctrl * (1.0 - 0.75**k))


# ------------------------------------------------------------------ evaluate's output


def test_count_distribution_of_known_counts() -> None:
    counts = [0] * 10 + [1] * 5 + [2] * 3 + [7] * 2  # 20 episodes
    distribution = count_distribution([float(c) for c in counts])
    assert distribution is not None
    assert distribution.n == 20
    assert distribution.mean == pytest.approx(np.mean(counts))
    assert distribution.median == 0.5
    assert distribution.interval_95 == (0, 7)
    rows = {low: n for low, high, n in distribution.histogram if low == high}
    assert rows == {0: 10, 1: 5, 2: 3, 3: 0, 4: 0, 5: 0, 6: 0, 7: 2}
    assert count_distribution([0.5, 1.0]) is None  # not counts
    assert count_distribution([]) is None


def test_wide_count_ranges_share_histogram_rows() -> None:
    distribution = count_distribution(list(range(200)))
    assert distribution is not None
    rows = distribution.histogram
    assert len(rows) <= 51 and sum(n for _, _, n in rows) == 200
    assert rows[0][:2] == (0, 3) and rows[-1][1] == 199
    assert distribution.interval_95 == (4, 194)


def test_evaluation_text_and_json_report_the_cgr_distribution(tmp_path: Path) -> None:
    cgr = [0.0, 0.0, 1.0, 3.0]
    distribution = count_distribution(cgr)
    assert distribution is not None
    evaluation = Evaluation(
        {"return": (-1.5, 0.7, 4), "consecutive_goals_reached": (1.0, 1.4, 4)},
        {"consecutive_goals_reached": distribution},
        {"return": [-1.0, -2.0, -1.5, -1.5], "consecutive_goals_reached": cgr},
    )
    text = "\n".join(evaluation.lines())
    assert "consecutive_goals_reached distribution over 4 episodes: mean 1.00, median 0.5" in text
    assert "95% of episodes in [0, 3]" in text
    assert "        0 | " + "#" * 40 + " 2" in text
    assert "        2 | " + " " * 40 + " 0" in text
    path = tmp_path / "evaluation.json"
    path.write_text(json.dumps(evaluation.to_json()))
    report = json.loads(path.read_text())
    cgr_report = report["consecutive_goals_reached"]
    assert cgr_report["values"] == cgr and cgr_report["episodes"] == 4
    assert cgr_report["distribution"]["interval_95"] == [0, 3]
    assert cgr_report["distribution"]["histogram"][3] == {"low": 3, "high": 3, "episodes": 1}
    assert "distribution" not in report["return"]


def test_the_rotate_z_recipe_loads_and_wires_its_simulation() -> None:
    recipe = load_recipe(REPO / "experiments" / "manipulate_block_rotate_z.yaml")
    config = recipe.simulation_config()
    brain = config.engine(recipe.brain_engine)
    assert brain.extra["Brain"] == "lstm" and brain.extra["InputShapes"]["goal"] == [15]
    assert recipe.metric == "consecutive_goals_reached"
    assert recipe.horizon > 8.0 / config.timestep_ns * 1e9  # a goal's timeout fits a cycle
    # The recipe drops the config's time penalty (a cube left lying cost as much as a drop).
    assert config.document["Task"]["RewardWeights"]["time"] == 0
    assert config.document["Task"]["RewardWeights"]["drop"] == 20.0


def test_evaluate_reports_the_cgr_distribution_of_a_block_run(tmp_path: Path) -> None:
    """A one-cycle rotate_z run, evaluated with a tolerance that every orientation meets
    (``--set``): each control step reaches a goal, so every episode stops at the cap."""
    run_dir = tmp_path / "run"
    tiny = (
        "-o",
        "Worlds=2",
        "-o",
        "Horizon=8",
        "-o",
        "PPO.ChunkLength=8",
        "-o",
        "PPO.Minibatches=1",
        "--quiet",
    )
    trained = neuroloop(
        "train", "manipulate_block_rotate_z", "--cycles", "1", "--run-dir", run_dir, *tiny
    )
    assert trained.returncode == 0, trained.stderr
    report = tmp_path / "evaluation.json"
    evaluated = neuroloop(
        "evaluate",
        run_dir,
        "--checkpoint",
        "latest",
        "--episodes",
        "2",
        "--horizon",
        "60",
        "--set",
        "Task.Options.SuccessRotation=3.2",
        "--json",
        report,
    )
    assert evaluated.returncode == 0, evaluated.stderr
    assert "consecutive_goals_reached distribution over 2 episodes: mean 50.00" in evaluated.stdout
    assert "95% of episodes in [50, 50]" in evaluated.stdout
    document = json.loads(report.read_text())
    cgr = document["consecutive_goals_reached"]
    assert cgr["values"] == [50.0, 50.0]
    assert cgr["distribution"]["histogram"] == [{"low": 50, "high": 50, "episodes": 2}]
    assert document["evaluated"] == {
        "source": str(run_dir),
        "checkpoint": "latest",
        "cycle": 1,
        "env_steps": 16,  # 2 worlds x 8 steps
        "deterministic": False,
        "horizon": 60,
        "overrides": ["Task.Options.SuccessRotation=3.2"],
    }
    # The recipe alone: the untrained brain its training started from, as a baseline.
    baseline = tmp_path / "untrained.json"
    untrained = neuroloop(
        "evaluate",
        run_dir / "recipe.json",
        *("--episodes", "2", "--horizon", "60", "--set", "Task.Options.SuccessRotation=3.2"),
        *("--json", baseline),
    )
    assert untrained.returncode == 0, untrained.stderr
    fresh = json.loads(baseline.read_text())
    assert fresh["evaluated"]["weights"] is None and "env_steps" not in fresh["evaluated"]
    assert fresh["consecutive_goals_reached"]["values"] == [50.0, 50.0]
    assert fresh["return"]["values"] != document["return"]["values"]  # other weights acted
    # The learning curves with the checkpoint's evaluation at its steps, the baseline a level.
    png = tmp_path / "curves.png"
    plotted = neuroloop("plot", run_dir, "--evaluations", report, baseline, "--output", png)
    assert plotted.returncode == 0, plotted.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    refused = neuroloop("plot", run_dir, "--evaluations", run_dir / "recipe.json")
    assert refused.returncode == 2
    assert f"{run_dir / 'recipe.json'}: expected the --json of neuroloop evaluate" in (
        refused.stderr
    )


def test_the_shipped_rotate_z_brain_reaches_goals_far_above_chance(tmp_path: Path) -> None:
    """The committed z-rotation brain on 16 worlds for 2,000 control steps (80 s), sampling
    as in training: an untrained-level brain reached 0.31 goals per episode (64 episodes),
    the shipped one 5.6 over the recipe's 128 worlds."""
    import yaml

    recipe = yaml.safe_load((REPO / "experiments" / "manipulate_block_rotate_z.yaml").read_text())
    recipe["Worlds"] = 16
    recipe["Simulation"] = str(REPO / "simulation_configs" / Path(recipe["Simulation"]).name)
    small = tmp_path / "rotate_z_16.yaml"
    small.write_text(yaml.safe_dump(recipe))
    report = tmp_path / "cgr.json"
    common = ("--episodes", "16", "--horizon", "2000", "--json", report)
    evaluated = neuroloop("evaluate", small, "--weights", "rotate_z", *common)
    assert evaluated.returncode == 0, evaluated.stderr
    cgr = json.loads(report.read_text())["consecutive_goals_reached"]
    assert cgr["episodes"] >= 16
    assert cgr["mean"] > 2.5, cgr["values"]


def _actuator_travel(*overrides: str) -> float:
    """How far (rad) the actuators of four worlds move in 0.4 s of the rotate_z loop, on
    average."""
    config = REPO / "simulation_configs" / "shadow_hand_manipulate_block_rotate_z.json"
    with Simulation.from_config(
        config, ("SimulationTimeout=0.4", *overrides), echo_engine_output=False, seed=3
    ) as sim:
        start = np.array(sim.datapack("actuator_positions", "physics"))
        sim.run_until_timeout()
        end = np.array(sim.datapack("actuator_positions", "physics"))
    return float(np.abs(end - start).mean())


def test_relative_control_starts_from_the_pose_in_the_closed_loop() -> None:
    """With a vanishing relative scale the targets stay where each episode started, so the
    hand holds its pose (it settles under gravity by about 0.01 rad); absolute targets follow
    the untrained brain's random actions (about 0.4 rad)."""
    assert _actuator_travel("Task.Options.RelativeControl=1e-9") < 0.03
    assert _actuator_travel() > 0.2
