"""neuroloop experiments: tasks a simulation config's ``Task`` section names.

Tasks by name (``TASKS``, ``get_task(name)``): ``reach``, ``freereach``,
``manipulate_block``, ``center_out``; see ``experiments.base`` for the task API and
``experiments.registry`` for how a ``Task`` section builds one.
"""

from neuroloop.plugins.experiments.base import GoalProgress, GoalStep, Task, total_reward
from neuroloop.plugins.experiments.registry import TASKS, get_task

__all__ = ["TASKS", "GoalProgress", "GoalStep", "Task", "get_task", "total_reward"]
