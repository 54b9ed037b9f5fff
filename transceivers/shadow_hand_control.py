"""Actuator targets from actions: absolute, relative (accumulated) and smoothed control.

``ActuatorTargets(settings)`` keeps one target per world and actuator between control steps.
``start(worlds, positions)`` sets the targets of worlds whose episode starts to the
actuators' positions; ``__call__(ctrl, ctrlrange)`` turns the policy's action, already mapped
onto the control range, into the targets to send (``ControlSettings`` says how).
"""

from __future__ import annotations

import numpy as np

from neuroloop.plugins.experiments.base import ControlSettings


class ActuatorTargets:
    """The transceiver's actuator targets under ``settings``.

    Args:
        settings: How actions become targets.
    """

    def __init__(self, settings: ControlSettings) -> None:
        self.settings = settings
        self.targets: np.ndarray | None = None
        """The targets last sent ``[W, A]``; ``None`` before the first step."""

    def start(self, worlds: np.ndarray, positions: np.ndarray) -> None:
        """Targets of the worlds in boolean mask ``worlds`` restart at ``positions [W, A]``."""
        positions = np.asarray(positions, dtype=np.float64)
        if self.targets is None or self.targets.shape != positions.shape:
            self.targets = positions.copy()
        else:
            self.targets[worlds] = positions[worlds]

    def __call__(self, ctrl: np.ndarray, ctrlrange: np.ndarray) -> np.ndarray | None:
        """The targets ``[W, A]`` to send for actions mapped onto the range, ``ctrl [W, A]``.

        Args:
            ctrl: The actions as absolute targets inside ``ctrlrange``.
            ctrlrange: Each actuator's ``[low, high]`` ``[A, 2]``.

        Returns:
            The targets, or ``None`` (send none: the servos hold) for relative or smoothed
            control before ``start`` has given every world's starting point.
        """
        ctrl = np.asarray(ctrl, dtype=np.float64)
        if self.settings.absolute:
            return ctrl
        previous = self.targets
        if previous is None or previous.shape != ctrl.shape:
            return None
        low, high = np.asarray(ctrlrange, dtype=np.float64).T
        centre = 0.5 * (low + high)
        commanded = ctrl
        if self.settings.relative_scale is not None:
            commanded = previous + self.settings.relative_scale * (ctrl - centre)
        smoothing = self.settings.smoothing
        targets = np.clip(smoothing * previous + (1.0 - smoothing) * commanded, low, high)
        self.targets = targets
        return targets
