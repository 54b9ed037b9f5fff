"""A swing-up and balance controller for Gymnasium's Pendulum-v1, as a transceiver function.

Far from upright it pumps energy towards the upright equilibrium's energy; near upright it
balances with a PD law. Pendulum-v1's angle is 0 upright, its dynamics
``theta'' = 3g/(2l) sin(theta) + 3/(m l^2) u``.
"""

from __future__ import annotations

import numpy as np

from neuroloop.datapack import DataPack, DataPackIdentifier
from neuroloop.functions import EngineDataPack, TransceiverFunction

ENGINE = "env"
GRAVITY_TERM = 3 * 10.0 / (2 * 1.0)  # 3 g / (2 l) for Pendulum-v1's g = 10, l = 1
"""Pendulum-v1's angular acceleration per unit sin(theta)."""
UPRIGHT_ENERGY = GRAVITY_TERM
"""Energy (per unit inertia) of resting upright: 0.5 * 0^2 + GRAVITY_TERM * cos(0)."""
MAX_TORQUE = 2.0
ENERGY_GAIN = 1.0
"""Torque per unit of energy shortfall while swinging up."""
BALANCE_COS = 0.85
"""Switch to balancing when cos(theta) exceeds this (about 32 degrees from upright)."""
KP = 12.0
KD = 2.5


def torque(cos_theta: float, sin_theta: float, theta_dot: float) -> float:
    """The controller's torque for one Pendulum-v1 observation."""
    theta = float(np.arctan2(sin_theta, cos_theta))
    if cos_theta > BALANCE_COS:
        command = -KP * theta - KD * theta_dot
    else:
        energy = 0.5 * theta_dot**2 + GRAVITY_TERM * cos_theta
        direction = 1.0 if theta_dot >= 0 else -1.0
        command = ENERGY_GAIN * (UPRIGHT_ENERGY - energy) * direction
    return float(np.clip(command, -MAX_TORQUE, MAX_TORQUE))


@EngineDataPack(keyword="observation", id=DataPackIdentifier("observation", ENGINE))
@TransceiverFunction(ENGINE)
def pendulum_controller(observation: DataPack) -> list[DataPack]:
    """Observation [cos, sin, theta_dot] -> action [torque]."""
    if observation.data is None:
        return []
    cos_theta, sin_theta, theta_dot = np.asarray(observation.data, dtype=np.float64)
    action = np.array([torque(cos_theta, sin_theta, theta_dot)], dtype=np.float32)
    return [DataPack("action", ENGINE, action)]
