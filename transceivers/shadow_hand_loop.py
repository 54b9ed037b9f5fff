"""The Shadow Hand closed loop as NRP-style functions: body -> brain -> body, with a task.

``HandTaskLoop().functions()`` builds four declared functions for a simulation with a MuJoCo
engine (``physics``), a Keras brain engine (``brain``) and a ``Task`` section (the task and
its options, passed in by ``@SimulationTask``):

- ``observe`` (preprocessing, physics): physics datapacks -> the task's step outcome
  (reward, success, episode ends) -> preprocessed datapacks: the Sensation modalities,
  ``episode_start``, ``reset_worlds``, ``reward``, ``terminated``, ``truncated`` and
  ``episode_metric`` (the task metric of each episode that ends);
- ``to_brain`` (transceiver, brain): the Sensation and ``episode_start`` to the brain;
- ``to_body`` (transceiver, physics): the brain's latest action -> ``ctrl`` in the
  actuators' control range (as the task's ``control`` says: absolute, relative or smoothed
  targets; ``ActuatorTargets``), plus ``reset_worlds`` for worlds whose episode ended, and, when
  the goal changes, where the engine's camera shows it (``markers``, ``target_pose``);
- ``status`` (status function): reports finished episodes and the task metric.

A function file assigns them at module level, which is all the loader needs::

    observe, to_brain, to_body, status = HandTaskLoop().functions()

List the file both under DataPackProcessingFunctions and as the StatusFunction: it is
loaded once, so all four share one ``HandTaskLoop``.

Physics and brain step concurrently, as in NRP-core: the action applied during
[t, t + dt] was computed from the sensation at t - dt (one control step of latency).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np

from neuroloop.brain.actions import get_actions
from neuroloop.datapack import DataPack, DataPackIdentifier
from neuroloop.functions import (
    DataPackFunction,
    EngineConstant,
    EngineDataPack,
    PreprocessedDataPack,
    PreprocessingFunction,
    SimulationStatus,
    SimulationTask,
    SimulationTime,
    StatusFunction,
    TransceiverFunction,
)
from neuroloop.plugins.experiments.base import Task
from neuroloop.plugins.experiments.episodes import StepOutcome, TaskEpisodes
from neuroloop.plugins.transceivers.shadow_hand import sensation_from_physics
from neuroloop.plugins.transceivers.shadow_hand_control import ActuatorTargets

ACTUATOR_POSITIONS = "actuator_positions"
"""Physics datapack of actuator lengths ``[W, A]``: where relative targets start."""

PHYSICS_STATE = (
    ACTUATOR_POSITIONS,
    "joint_positions",
    "joint_velocities",
    "touch",
    "fingertip_positions",
    "palm_position",
    "object_pose",
    "object_velocities",
)
"""Physics datapacks the task and the sensation read every control step."""

GOAL_MARKERS = "markers"
"""The physics engine's datapack of goal positions drawn into its camera pictures."""

GOAL_POSE = "target_pose"
"""The Shadow Hand body's held goal-marker object (manipulate models)."""

SENT_MODALITIES = ("proprioception", "touch", "goal", "asymmetric")
"""Sensation modalities the Shadow Hand loop produces; ``vision`` too when asked for."""
CAMERA = "camera"
"""The physics datapack of frames ``[W, H, W, 3]`` uint8 (the engine's ``Camera``), sent on
to the brain as ``vision`` unchanged (the brain engine casts it to float)."""
VISION = "vision"

NS_PER_S = 1e9


def state_seed(state: Mapping[str, np.ndarray]) -> int:
    """A 64-bit seed that the joint positions of every world determine."""
    digest = hashlib.sha256(np.ascontiguousarray(state["joint_positions"]).tobytes()).digest()
    return int.from_bytes(digest[:8], "little")


class HandTaskLoop:
    """The state behind the four functions: the task's episodes over the batch of worlds.

    Args:
        physics: The MuJoCo engine's name.
        brain: The brain engine's name.
        distribution: The brain's policy distribution (how to map its action to ``ctrl``).
        n_bins: Bins per actuator of a multicategorical policy (default: ``DEFAULT_N_BINS``).
        episode_steps: Control steps per episode (``None``: only the task ends episodes).
        seed: Seed of the goal sampler at every (re)start of the simulation; by default the
            seed is taken from the initial physics state, so a seeded reset of the engines
            also repeats the goals.
        vision: Send the physics engine's ``camera`` frames to the brain as ``vision``
            (the physics engine needs a ``Camera``).
    """

    def __init__(
        self,
        *,
        physics: str = "physics",
        brain: str = "brain",
        distribution: str = "beta",
        n_bins: int | None = None,
        seed: int | None = None,
        vision: bool = False,
    ) -> None:
        self.physics = physics
        self.vision = vision
        self.brain = brain
        self.actions = get_actions(distribution, None if n_bins is None else {"n_bins": n_bins})
        self.seed = seed
        self.episodes: TaskEpisodes | None = None
        """The task's episodes, made at the first observation of the task."""
        self.last_ns: int | None = None
        self.shown_goal: np.ndarray | None = None
        """The goal the physics engine's goal markers show."""
        self.goal_display: list[DataPack] = []
        """Goal markers (and the goal object's pose) to send with the next ``to_body``."""
        self.targets = ActuatorTargets(Task.control)
        """Actuator targets as the task's ``control`` says."""

    def observe(self, now: int, task: Task, **state: DataPack) -> list[DataPack]:
        """Physics state -> task outcome -> Sensation, episode_start, reset_worlds."""
        values = {name: np.asarray(dp.data) for name, dp in state.items() if dp.data is not None}
        if len(values) < len(state):
            return []
        if self.episodes is None or self.episodes.task is not task:
            # The control timestep is learnt from the loop's clock at the second observation.
            self.episodes = TaskEpisodes(task, control_dt_s=0.0, seed=self.seed)
            self.targets = ActuatorTargets(task.control)
            self.last_ns = None
        if self.last_ns is None or now <= self.last_ns:
            # First observation, or the simulation was reset: every episode starts afresh,
            # with goals drawn from a seed that the (seeded) initial physics state fixes.
            self.episodes.restart(self.seed if self.seed is not None else state_seed(values))
            self.shown_goal = None
        else:
            self.episodes.control_dt_s = (now - self.last_ns) / NS_PER_S
        self.last_ns = now
        outcome: StepOutcome = self.episodes.observe(values)
        self.targets.start(outcome.episode_start, values[ACTUATOR_POSITIONS])
        self.goal_display = self.show_goal(task, values, outcome.goal)
        orientation = outcome.goal if task.goal_is_orientation else None
        sensation = sensation_from_physics(
            values, task.goal_observation(values, outcome.goal), orientation
        )
        physics = self.physics
        datapacks = [DataPack(m, physics, sensation[m].astype(np.float32)) for m in sensation]
        if self.vision:
            datapacks.append(DataPack(VISION, physics, values[CAMERA]))
        datapacks.append(DataPack("episode_start", physics, outcome.episode_start))
        datapacks.append(DataPack("reset_worlds", physics, outcome.done))
        datapacks.append(DataPack("reward", physics, outcome.reward))
        datapacks.append(DataPack("terminated", physics, outcome.terminated))
        datapacks.append(DataPack("truncated", physics, outcome.truncated))
        datapacks.append(DataPack("episode_metric", physics, outcome.metric))
        return datapacks

    def show_goal(
        self, task: Task, values: Mapping[str, np.ndarray], goal: np.ndarray
    ) -> list[DataPack]:
        """The task's goal markers and goal-object pose for the physics engine's pictures,
        when the goal has changed since they were last sent (nothing otherwise)."""
        if self.shown_goal is not None and np.array_equal(self.shown_goal, goal):
            return []
        self.shown_goal = np.array(goal, copy=True)
        datapacks = []
        markers = task.goal_markers(values, goal)
        if markers is not None:
            datapacks.append(DataPack(GOAL_MARKERS, self.physics, markers))
        pose = task.goal_pose(values, goal)
        if pose is not None:
            datapacks.append(DataPack(GOAL_POSE, self.physics, pose))
        return datapacks

    def to_brain(self, **inputs: DataPack) -> list[DataPack]:
        """The Sensation and episode starts, re-addressed to the brain."""
        return [
            DataPack(name, self.brain, datapack.data)
            for name, datapack in inputs.items()
            if datapack.data is not None
        ]

    def to_body(
        self, action: DataPack, ctrlrange: DataPack, reset_worlds: DataPack
    ) -> list[DataPack]:
        """The brain's action as actuator targets, and the worlds to reset."""
        datapacks, self.goal_display = self.goal_display, []
        if action.data is not None and ctrlrange.data is not None:
            mapped = self.actions.to_control(action.data, ctrlrange.data)
            ctrl = self.targets(mapped, ctrlrange.data)
            if ctrl is not None:
                datapacks.append(DataPack("ctrl", self.physics, ctrl))
        if reset_worlds.data is not None:
            datapacks.append(DataPack("reset_worlds", self.physics, reset_worlds.data))
        return datapacks

    def status(self, task: Task) -> SimulationStatus:
        """Episodes finished so far; over the most recent ``episodes_averaged`` of them, the
        task metric's mean (``success``, ``consecutive_goals_reached``, …), its sample
        standard deviation (``<metric>_sd``) and the mean return."""
        report = SimulationStatus()
        summary = self.episodes.record.summary() if self.episodes else {"episodes": 0}
        report["episodes"] = summary["episodes"]
        if summary["episodes"]:
            report["episodes_averaged"] = summary["recent"]
            report[task.metric] = summary["mean_metric"]
            report[f"{task.metric}_sd"] = summary["std_metric"]
            report["mean_return"] = summary["mean_return"]
        return report

    def functions(
        self,
    ) -> tuple[DataPackFunction, DataPackFunction, DataPackFunction, DataPackFunction]:
        """The declared ``(observe, to_brain, to_body, status)`` functions."""
        physics, brain = self.physics, self.brain

        def from_physics(name: str) -> EngineDataPack:
            return EngineDataPack(name, DataPackIdentifier(name, physics))

        def preprocessed(name: str) -> PreprocessedDataPack:
            return PreprocessedDataPack(name, DataPackIdentifier(name, physics))

        read = (*PHYSICS_STATE, CAMERA) if self.vision else PHYSICS_STATE
        sent = (*SENT_MODALITIES, VISION) if self.vision else SENT_MODALITIES
        observe = SimulationTask("task")(SimulationTime("now")(self.observe))
        for name in read:
            observe = from_physics(name)(observe)
        to_brain = DataPackFunction(self.to_brain)
        for name in (*sent, "episode_start"):
            to_brain = preprocessed(name)(to_brain)
        to_body = EngineDataPack("action", DataPackIdentifier("action", brain))(
            EngineConstant("ctrlrange", DataPackIdentifier("actuator_ctrlrange", physics))(
                preprocessed("reset_worlds")(self.to_body)
            )
        )
        return (
            PreprocessingFunction(physics)(observe),
            TransceiverFunction(brain)(to_brain),
            TransceiverFunction(physics)(to_body),
            StatusFunction()(SimulationTask("task")(self.status)),
        )
