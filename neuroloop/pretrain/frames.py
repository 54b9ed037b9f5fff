"""Pose-labelled frames: the dataset of ``neuroloop pretrain vision``, and who makes them.

A frame generator is a plugin: an entry point of the group ``neuroloop.pose_frames`` named
after the task it knows (the config's ``Task.Name``), or a ``Generator`` given as
``module:function`` / ``file.py:function``. It is called as

    generate(config, count, seed, progress) -> PoseFrames

with the loaded simulation config, and renders ``count`` frames with the config's camera,
each labelled with the object's pose read from the physics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Protocol

import numpy as np

from neuroloop.config import SimulationConfig
from neuroloop.errors import UsageError
from neuroloop.modules import load_object

ENTRY_POINT_GROUP = "neuroloop.pose_frames"
"""Entry-point group of installed frame generators, named after the task they know."""

ARRAYS = ("frames", "positions", "rotations")
"""What a dataset file holds."""

Progress = Callable[[int, int], None]
"""``progress(done, wanted)``: called as frames are made."""


@dataclass(frozen=True)
class PoseFrames:
    """Frames and the pose of the object in each."""

    frames: np.ndarray
    """``[N, H, W, 3]`` ``uint8`` pictures."""
    positions: np.ndarray
    """``[N, 3]`` object position (m) relative to the camera's tracked body, in the camera's
    fixed axes."""
    rotations: np.ndarray
    """``[N, 3, 3]`` object orientation in the same axes."""
    seconds: float = 0.0
    """Wall time the frames took to make (0: not known)."""

    def __post_init__(self) -> None:
        n = len(self.frames)
        if (
            self.frames.ndim != 4
            or self.frames.shape[-1] != 3
            or self.frames.dtype != np.uint8
            or self.positions.shape != (n, 3)
            or self.rotations.shape != (n, 3, 3)
        ):
            raise ValueError(
                "expected frames [N, H, W, 3] uint8, positions [N, 3], rotations [N, 3, 3]. "
                f"Received: frames {self.frames.shape} {self.frames.dtype}, positions "
                f"{self.positions.shape}, rotations {self.rotations.shape}"
            )

    def __len__(self) -> int:
        return len(self.frames)

    def save(self, path: Path) -> None:
        """Write the arrays to an ``.npz`` file."""
        np.savez_compressed(
            path,
            frames=self.frames,
            positions=self.positions,
            rotations=self.rotations,
            seconds=np.float64(self.seconds),
        )

    @classmethod
    def load(cls, path: Path) -> PoseFrames:
        """Read a file ``save`` wrote (no pickled objects are read).

        Raises:
            UsageError: If it is not such a file.
        """
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in ARRAYS}
                seconds = float(archive["seconds"]) if "seconds" in archive else 0.0
            return cls(**arrays, seconds=seconds)
        except (OSError, KeyError, ValueError) as error:
            raise UsageError(
                f"{path}: expected a pose frames file (.npz with {', '.join(ARRAYS)}). "
                f"Received: {error}"
            ) from None


class Generator(Protocol):
    """Makes pose-labelled frames of a simulation config's world."""

    def __call__(
        self, config: SimulationConfig, count: int, seed: int, progress: Progress
    ) -> PoseFrames: ...


def installed_generators() -> dict[str, EntryPoint]:
    """Installed frame generators by task name."""
    return {point.name: point for point in entry_points(group=ENTRY_POINT_GROUP)}


def find_generator(config: SimulationConfig, spec: str | None = None) -> Generator:
    """The generator ``spec`` names, else the one installed for the config's task.

    Raises:
        UsageError: If there is none.
    """
    if spec is not None and ":" in spec:
        try:
            found = load_object(spec, Path.cwd())
        except ValueError as error:
            raise UsageError(f"--generator {spec}: {error}") from None
    else:
        name = spec or (config.task.name if config.task is not None else None)
        point = installed_generators().get(name) if name is not None else None
        if point is None:
            raise UsageError(
                f"{config.path}: Task.Name: expected a task with a pose frame generator "
                f"{sorted(installed_generators())} (or --generator module:function). "
                f"Received: {name!r}"
            )
        found = point.load()
    if not callable(found):
        raise UsageError(f"--generator {spec}: expected a function. Received: {found!r:.100}")
    generator: Generator = found
    return generator
