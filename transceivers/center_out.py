"""Center-out trials as NRP-style functions: the cue a controller sees, trial ends, metrics.

``CenterOutTrials().functions()`` builds three declared functions for a simulation whose
MuJoCo engine (``physics``) carries the arm26 body and whose config has a ``center_out``
``Task`` section (radius, targets and timing are its options):

- ``cue`` (preprocessing, physics): hand position and clock -> ``goal_cue`` ``[W, 3]`` (the
  visible target x, y: the centre while holding, the target from the go cue on; and the go
  cue, 0 or 1) and ``reset_worlds`` at the end of each trial;
- ``to_body`` (transceiver, physics): ``reset_worlds`` to the physics engine, so every trial
  starts from the central posture;
- ``status`` (status function): the reach metrics of the finished trials (success, endpoint
  error, straightness, time to target).

A function file assigns them at module level (``cue, to_body, status = ...``). Whatever
sets the excitations (``ctrl``), a controller engine or a script, reads ``goal_cue``.
"""

from __future__ import annotations

import numpy as np

from neuroloop.datapack import DataPack, DataPackIdentifier
from neuroloop.functions import (
    EngineDataPack,
    PreprocessedDataPack,
    PreprocessingFunction,
    SimulationStatus,
    SimulationTask,
    SimulationTime,
    StatusFunction,
    TransceiverFunction,
)
from neuroloop.plugins.experiments.center_out import PLANE, CenterOutTask, ReachMetrics, cue

NS_PER_S = 1e9

TRIALS_SEED = 0
"""Seed of the target draws; each simulation (re)start draws the same sequence."""


class CenterOutTrials:
    """The trials behind the three functions, over the batch of worlds.

    Args:
        physics: The MuJoCo engine's name.
        seed: Seed of the target draws.
    """

    def __init__(self, *, physics: str = "physics", seed: int = TRIALS_SEED) -> None:
        self.physics = physics
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.start_ns: int | None = None
        """Simulation time of the current trial's first observation."""
        self.last_ns: int | None = None
        self.goal: np.ndarray | None = None
        """The current trial's goal per world ``[W, 4]``: target x, y, centre x, y."""
        self.path: list[np.ndarray] = []
        """Hand positions ``[W, 2]`` observed in the current trial."""
        self.finished: list[ReachMetrics] = []

    def observe(self, now: int, task: CenterOutTask, hand_position: DataPack) -> list[DataPack]:
        """Track the trial; return the cue, and ``reset_worlds`` when the trial is over."""
        if hand_position.data is None:
            return []
        hand = np.asarray(hand_position.data, dtype=np.float64)
        if self.last_ns is not None and now <= self.last_ns:  # the simulation restarted
            self.rng = np.random.default_rng(self.seed)
            self.goal = None
        if self.goal is None:
            self.goal = task.sample_goal(self.rng, {"hand_position": hand})
            self.start_ns, self.path = now, []
        self.path.append(hand[:, PLANE])
        elapsed_s = (now - (self.start_ns or 0)) / NS_PER_S
        go = cue(elapsed_s, task.hold_s)
        visible = self.goal[:, 0:2] if go else self.goal[:, 2:4]
        goal_cue = np.concatenate([visible, np.full((hand.shape[0], 1), go)], axis=-1)
        ended = elapsed_s >= task.trial_s - 1e-9 and len(self.path) > 1
        if ended:
            dt_s = (now - (self.last_ns or now)) / NS_PER_S
            path = np.stack(self.path)
            self.finished.append(task.metrics(path, self.goal, dt_s))
            self.goal = None
        self.last_ns = now
        reset = np.full(hand.shape[0], ended)
        return [
            DataPack("goal_cue", self.physics, goal_cue.astype(np.float32)),
            DataPack("reset_worlds", self.physics, reset),
        ]

    def to_body(self, reset_worlds: DataPack) -> list[DataPack]:
        """Reset the worlds whose trial ended."""
        if reset_worlds.data is None or not np.any(reset_worlds.data):
            return []
        return [DataPack("reset_worlds", self.physics, np.asarray(reset_worlds.data))]

    def status(self) -> SimulationStatus:
        """Trials finished and the means of their reach metrics."""
        report = SimulationStatus()
        report["trials"] = sum(len(m.success) for m in self.finished)
        if self.finished:
            merged = ReachMetrics.concatenate(self.finished)
            report.update(merged.summary())
        return report

    def functions(self) -> tuple[object, object, object]:
        """The declared ``(cue, to_body, status)`` functions."""
        physics = self.physics
        observe = EngineDataPack("hand_position", DataPackIdentifier("hand_position", physics))(
            SimulationTask("task")(SimulationTime("now")(self.observe))
        )
        to_body = PreprocessedDataPack("reset_worlds", DataPackIdentifier("reset_worlds", physics))(
            self.to_body
        )
        return (
            PreprocessingFunction(physics)(observe),
            TransceiverFunction(physics)(to_body),
            StatusFunction()(self.status),
        )
