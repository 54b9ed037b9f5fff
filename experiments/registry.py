"""The tasks that ship, by name.

They are entry points of the group ``neuroloop.tasks`` (``setup.cfg``), which is how a
config's ``Task.Name`` finds them (``neuroloop.tasks``); ``TASKS`` and ``get_task`` serve
code that uses the tasks directly.
"""

from __future__ import annotations

from neuroloop.plugins.experiments.base import Task
from neuroloop.plugins.experiments.center_out import CenterOutTask
from neuroloop.plugins.experiments.freereach import FreeReachTask
from neuroloop.plugins.experiments.manipulate_block import ManipulateBlockTask
from neuroloop.plugins.experiments.reach import ReachTask

TASKS: dict[str, type[Task]] = {
    task.name: task for task in (ReachTask, FreeReachTask, ManipulateBlockTask, CenterOutTask)
}
"""Every shipped task class by its registry name."""


def get_task(name: str) -> Task:
    """Return a new instance of the task registered as ``name``, with default options.

    Raises:
        ValueError: If no task has that name.
    """
    if name not in TASKS:
        raise ValueError(
            f"[experiments] get_task: expected one of {sorted(TASKS)}. Received: {name!r}"
        )
    return TASKS[name]()
