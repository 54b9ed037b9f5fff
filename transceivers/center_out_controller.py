"""A trained ControllerNet as a transceiver: the center-out cue and the hand in, excitations out.

``ControllerFunction(controller, armnet).function()`` builds one declared transceiver
function for a center-out config (``transceivers/center_out.py`` publishes ``goal_cue`` and
``reset_worlds``): each step it feeds the controller the cue and the hand's position and
velocity (``hand_position``, ``hand_velocity`` columns x, y, normalised with the ArmNet's
normaliser, as in training) and sends its excitations (``ctrl``) to the body engine, physics
or learned. A world whose trial ended starts the next one with a fresh controller state.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from neuroloop.datapack import DataPack, DataPackIdentifier
from neuroloop.functions import EngineDataPack, PreprocessedDataPack, TransceiverFunction
from neuroloop.surrogate.armnet import ArmNet
from neuroloop.surrogate.control import ControllerNet, Loop

POSITION = ("hand_x", "hand_y")
"""The ArmNet state variables the hand's x, y position fills."""
VELOCITY = ("hand_vx", "hand_vy")
"""The ArmNet state variables the hand's x, y velocity fills."""
PLANE = slice(0, 2)
"""The x, y columns of the hand datapacks."""


class ControllerFunction:
    """A ControllerNet driving the batch of worlds of one body engine.

    Args:
        controller: The folder ``neuroloop surrogate control`` wrote.
        armnet: The folder of the ArmNet it was trained through (its normaliser).
        body: The body engine's name.
    """

    def __init__(self, controller: Path, armnet: Path, *, body: str = "physics") -> None:
        net = ArmNet.load(armnet)
        self.body = body
        self.position = [net.names.index(name) for name in POSITION]
        self.velocity = [net.names.index(name) for name in VELOCITY]
        self.loop = Loop(
            ControllerNet.load(controller), net, self.position, self.position + self.velocity
        )
        self.hidden: np.ndarray | None = None

    def drive(
        self,
        goal_cue: DataPack,
        reset_worlds: DataPack,
        hand_position: DataPack,
        hand_velocity: DataPack,
    ) -> list[DataPack]:
        """One controller step: ``ctrl`` for every world."""
        if goal_cue.data is None or hand_position.data is None or hand_velocity.data is None:
            return []
        normalizer = self.loop.armnet.normalizer
        worlds = np.shape(goal_cue.data)[0]
        state = np.tile(normalizer.mean, (worlds, 1))
        state[:, self.position] = np.asarray(hand_position.data)[:, PLANE]
        state[:, self.velocity] = np.asarray(hand_velocity.data)[:, PLANE]
        if self.hidden is None or self.hidden.shape[0] != worlds:
            self.hidden = np.zeros((worlds, self.loop.controller.units), np.float32)
        observed = self.loop.observed(
            tf.constant(goal_cue.data, tf.float32), tf.constant(normalizer.normalize(state))
        )
        hidden, excitation = self.loop.controller.step(tf.constant(self.hidden), observed)
        self.hidden = hidden.numpy()
        if reset_worlds.data is not None:
            self.hidden[np.asarray(reset_worlds.data, dtype=bool)] = 0.0
        return [DataPack("ctrl", self.body, np.asarray(excitation, dtype=np.float64))]

    def function(self) -> object:
        """The declared transceiver function."""
        body = self.body
        declared = EngineDataPack("hand_velocity", DataPackIdentifier("hand_velocity", body))(
            EngineDataPack("hand_position", DataPackIdentifier("hand_position", body))(
                PreprocessedDataPack("reset_worlds", DataPackIdentifier("reset_worlds", body))(
                    PreprocessedDataPack("goal_cue", DataPackIdentifier("goal_cue", body))(
                        self.drive
                    )
                )
            )
        )
        return TransceiverFunction(body)(declared)
