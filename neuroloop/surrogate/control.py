"""ControllerNet: a GRU that turns a reach cue and the body's feedback into inputs, trained
with backpropagation through time through a frozen ArmNet, then run on the real body.

Each control step the controller sees the visible target (the centre until the go cue,
then the target; normalised like the state's positions) with the go cue, the error from the
position to the visible target (scaled by the positions' standard deviations), and the
previous step's position and velocity (normalised state variables); it outputs every input
in [0, 1] (sigmoid). The error input makes holding and correcting a matter of the feedback,
so the controller copes with a body that differs from the surrogate (the real arm); training
noise on the inputs (``Noise``) exercises that. The loss is the mean squared distance (cm^2)
of the position from a straight line to the target, travelled with a minimum-jerk profile of
``MovementS`` from the go cue (the centre before it), plus ``Effort`` times the mean squared input.

The task comes from the config's ``Control.Task``: ``goals(center) -> [K, 4]`` (target x, y,
centre x, y of its K targets), ``hold_s``, ``trial_s`` and ``metrics(path, goal, dt_s)``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from neuroloop.config import TaskConfig
from neuroloop.errors import UsageError
from neuroloop.simulation import Simulation
from neuroloop.surrogate.armnet import ArmNet, read_saved
from neuroloop.surrogate.config import ControlSettings, SurrogateConfig
from neuroloop.surrogate.data import NO_TIMEOUT, Body
from neuroloop.tasks import build_task

WEIGHTS_FILE = "controller.npz"
META_FILE = "controller.json"
CM_PER_M = 100.0
CUE_SIZE = 5
"""Visible target x, y, the go cue and the error x, y from the position to the target."""


def minimum_jerk(phase: np.ndarray) -> np.ndarray:
    """The minimum-jerk profile ``10 p^3 - 15 p^4 + 6 p^5`` of ``phase`` clipped to [0, 1]."""
    p = np.clip(phase, 0.0, 1.0)
    return 10 * p**3 - 15 * p**4 + 6 * p**5


@dataclass(frozen=True)
class Trials:
    """What a batch of reaches shows the controller and asks of it."""

    goals: np.ndarray
    """``[B, 4]``: target x, y, centre x, y."""
    cue: np.ndarray
    """``[T, B, 3]``: the visible target and the go cue seen at the start of each step."""
    reference: np.ndarray
    """``[T, B, 2]``: the straight-line position wanted after each step."""


def make_trials(
    goals: np.ndarray, steps: int, dt_s: float, hold_s: float, movement_s: float
) -> Trials:
    """Cue and straight-line reference of ``steps`` control steps toward ``goals``."""
    target, center = goals[None, :, 0:2], goals[None, :, 2:4]
    start = np.arange(steps)[:, None, None] * dt_s
    go = (start >= hold_s - 1e-9).astype(np.float64)
    visible = go * target + (1.0 - go) * center
    cue = np.concatenate([visible, np.broadcast_to(go, (*visible.shape[:2], 1))], axis=-1)
    progress = minimum_jerk((start + dt_s - hold_s) / movement_s)
    reference = center + progress * (target - center)
    return Trials(goals, cue, reference)


class ControllerNet:
    """The controller's GRU cell and sigmoid head.

    Args:
        n_feedback: Feedback variables (position and velocity).
        n_outputs: Inputs of the body it drives.
        units: GRU units.
    """

    def __init__(self, n_feedback: int, n_outputs: int, units: int) -> None:
        self.n_feedback = n_feedback
        self.n_outputs = n_outputs
        self.units = units
        self.cell = keras.layers.GRUCell(units, name="controller_gru")
        self.head = keras.layers.Dense(n_outputs, activation="sigmoid", name="controller_head")
        hidden, _ = self.cell(tf.zeros((1, CUE_SIZE + n_feedback)), [tf.zeros((1, units))])
        self.head(hidden)

    @property
    def trainable_weights(self) -> list[tf.Variable]:
        return [*self.cell.trainable_weights, *self.head.trainable_weights]

    def step(self, hidden: tf.Tensor, observed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """``(next hidden [B, units], inputs [B, n_outputs])`` for cue + feedback ``[B, 3 + F]``."""
        output, _ = self.cell(observed, [hidden])
        return output, self.head(output)

    def save(self, folder: Path, report: dict[str, Any]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        weights = [w.numpy() for w in self.trainable_weights]
        np.savez(folder / WEIGHTS_FILE, *weights)
        meta = {
            "n_feedback": self.n_feedback,
            "n_outputs": self.n_outputs,
            "units": self.units,
            "report": report,
        }
        (folder / META_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, folder: str | Path) -> ControllerNet:
        """Read a controller that ``save`` wrote.

        Raises:
            UsageError: If the folder lacks the files or they do not match.
        """

        def build(meta: dict[str, Any], folder: Path) -> ControllerNet:
            net = cls(int(meta["n_feedback"]), int(meta["n_outputs"]), int(meta["units"]))
            with np.load(folder / WEIGHTS_FILE, allow_pickle=False) as archive:
                for index, weight in enumerate(net.trainable_weights):
                    weight.assign(archive[f"arr_{index}"])
            return net

        return read_saved(folder, META_FILE, WEIGHTS_FILE, "control", build)


class Loop:
    """The controller and a body model in closed loop, with the normalisations both use.

    Args:
        controller: The controller.
        armnet: The (frozen) surrogate; its normaliser also scales the controller's cue and
            feedback.
        position: State indices of the position (x, y).
        feedback: State indices fed back (position, then velocity).
    """

    def __init__(
        self, controller: ControllerNet, armnet: ArmNet, position: list[int], feedback: list[int]
    ) -> None:
        self.controller = controller
        self.armnet = armnet
        self.position = position
        self.feedback = feedback
        normalizer = armnet.normalizer
        self.position_mean = normalizer.mean[position].astype(np.float32)
        self.position_std = normalizer.std[position].astype(np.float32)

    def observed(self, cue: tf.Tensor, normal_state: tf.Tensor) -> tf.Tensor:
        """Controller input ``[B, 5 + F]``: normalised cue, the error from the position to
        the visible target, and the fed-back state variables."""
        visible = (cue[:, 0:2] - self.position_mean) / self.position_std
        error = visible - tf.gather(normal_state, self.position, axis=1)
        fed = tf.gather(normal_state, self.feedback, axis=1)
        return tf.concat([visible, cue[:, 2:3], error, fed], axis=1)

    def through_surrogate(
        self, initial: np.ndarray, cue: tf.Tensor, noise: tf.Tensor | None = None
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """Run ``T`` steps through the surrogate from normalised initial states ``[B, S]``,
        adding ``noise`` ``[T, B, n]`` to the inputs (then clipped to [0, 1]):
        ``(positions [T, B, 2] in metres, inputs [T, B, n] as applied)``."""
        steps = tf.shape(cue)[0]
        state = tf.convert_to_tensor(initial)
        arm = self.armnet.start(state)
        hidden = tf.zeros((tf.shape(state)[0], self.controller.units))
        positions = tf.TensorArray(tf.float32, size=steps)
        inputs = tf.TensorArray(tf.float32, size=steps)
        for t in tf.range(steps):
            hidden, excitation = self.controller.step(hidden, self.observed(cue[t], state))
            if noise is not None:
                excitation = tf.clip_by_value(excitation + noise[t], 0.0, 1.0)
            arm, state = self.armnet.step(arm, excitation)
            position = tf.gather(state, self.position, axis=1) * self.position_std
            positions = positions.write(t, position + self.position_mean)
            inputs = inputs.write(t, excitation)
        return positions.stack(), inputs.stack()


def straight_line_loss(
    positions: tf.Tensor, reference: tf.Tensor, inputs: tf.Tensor, effort: float
) -> tuple[tf.Tensor, tf.Tensor]:
    """``(loss, position term)``: mean squared distance (cm^2) from the reference plus
    ``effort`` times the mean squared input. Shapes ``[T, B, 2]``, ``[T, B, 2]``, ``[T, B, n]``."""
    offset = (positions - reference) * CM_PER_M
    position_term = tf.reduce_mean(tf.reduce_sum(offset**2, axis=-1))
    return position_term + effort * tf.reduce_mean(inputs**2), position_term


def control_task(config: SurrogateConfig) -> Any:
    """The task of ``Control.Task``."""
    settings = _settings(config)
    section = TaskConfig(settings.task_name, settings.task_options, {})
    return build_task(section, str(config.path), config.path.resolve().parent)


def train_controller(
    config: SurrogateConfig,
    armnet: ArmNet,
    task: Any,
    start: np.ndarray,
    *,
    iterations: int | None = None,
    resume: ControllerNet | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> tuple[ControllerNet, list[float]]:
    """Train a controller (``resume``, or a new one) through the frozen ``armnet`` from
    state ``start`` ``[S]``.

    Returns:
        The controller, and the loss on every target (one trial each, fixed) before training
        and after every tenth iteration.
    """
    settings = _settings(config)
    keras.utils.set_random_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    position = config.indices(settings.position, "Control.Position")
    feedback = position + config.indices(settings.velocity, "Control.Velocity")
    controller = resume or ControllerNet(len(feedback), armnet.n_inputs, settings.units)
    loop = Loop(controller, armnet, position, feedback)
    steps = round(task.trial_s / armnet.dt_s)
    center = start[position]
    every_goal = task.goals(center)
    optimizer = keras.optimizers.Adam(settings.learning_rate, global_clipnorm=settings.clip_norm)
    normal_start = armnet.normalizer.normalize(start)

    def batch(goals: np.ndarray) -> tuple[np.ndarray, tf.Tensor, tf.Tensor]:
        trials = make_trials(goals, steps, armnet.dt_s, task.hold_s, settings.movement_s)
        initial = np.repeat(normal_start[None], len(goals), axis=0)
        return (
            initial,
            tf.constant(trials.cue, tf.float32),
            tf.constant(trials.reference, tf.float32),
        )

    @tf.function
    def loss_of(initial: tf.Tensor, cue: tf.Tensor, reference: tf.Tensor) -> tf.Tensor:
        positions, inputs = loop.through_surrogate(initial, cue)
        return straight_line_loss(positions, reference, inputs, settings.effort)[0]

    @tf.function
    def train_step(initial: tf.Tensor, cue: tf.Tensor, reference: tf.Tensor) -> tf.Tensor:
        shape = (tf.shape(cue)[0], tf.shape(cue)[1], armnet.n_inputs)
        noise = tf.random.normal(shape, stddev=settings.noise) if settings.noise > 0 else None
        with tf.GradientTape() as tape:
            positions, inputs = loop.through_surrogate(initial, cue, noise)
            loss, _ = straight_line_loss(positions, reference, inputs, settings.effort)
        weights = controller.trainable_weights
        optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights, strict=True))
        return loss

    fixed = batch(every_goal)
    history = [float(loss_of(*fixed))]
    for iteration in range(iterations or settings.iterations):
        chosen = every_goal[rng.integers(0, len(every_goal), settings.batch_size)]
        train_step(*batch(chosen))
        if (iteration + 1) % 10 == 0:
            history.append(float(loss_of(*fixed)))
            if progress is not None:
                progress(iteration + 1, history[-1])
    return controller, history


def evaluate_closed_loop(
    config: SurrogateConfig, armnet: ArmNet, controller: ControllerNet, task: Any
) -> tuple[Any, np.ndarray, np.ndarray]:
    """Run the controller on the real body, one world per target.

    Returns:
        The task's reach metrics (per target), the hand paths ``[T + 1, K, 2]`` and the
        goals ``[K, 4]``.
    """
    settings = _settings(config)
    position = config.indices(settings.position, "Control.Position")
    feedback = position + config.indices(settings.velocity, "Control.Velocity")
    loop = Loop(controller, armnet, position, feedback)
    targets = len(task.goals(np.zeros(2)))
    worlds = f"EngineConfigs.EngineName:{config.engine}.EngineExtraConfigs.Worlds={targets}"
    simulation = config.simulation_config([worlds, NO_TIMEOUT])
    dt_s = simulation.timestep_ns / 1e9
    if abs(dt_s - armnet.dt_s) > 1e-12:
        raise UsageError(
            f"expected the body's control timestep to be the surrogate's ({armnet.dt_s} s). "
            f"Received: {dt_s} s"
        )
    steps = round(task.trial_s / dt_s)
    with Simulation(simulation, echo_engine_output=False, seed=0) as sim:
        body = Body(sim, config)
        start = body.state()
        goals = task.goals(start[0, position])
        trials = make_trials(goals, steps, dt_s, task.hold_s, settings.movement_s)
        _, states = run_on_body(body, loop, trials, start)
    paths = states[:, :, position]
    return task.metrics(paths, goals, dt_s), paths, goals


def run_on_body(
    body: Body,
    loop: Loop,
    trials: Trials,
    start: np.ndarray,
    *,
    noise: np.ndarray | None = None,
    planned: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Drive the body through ``trials`` from its current state ``start`` ``[W, S]``:
    closed loop (the controller sees the body's state) with ``noise`` ``[T, W, n]`` added to
    its inputs (then clipped to [0, 1]), or open loop, replaying ``planned`` ``[T, W, n]``.

    Returns:
        The inputs applied ``[T, W, n]`` and the states ``[T + 1, W, S]``.
    """
    steps = trials.cue.shape[0]
    hidden = tf.zeros((start.shape[0], loop.controller.units))
    state, states, inputs = start, [start], []
    for t in range(steps):
        if planned is not None:
            applied = planned[t]
        else:
            normal = tf.constant(loop.armnet.normalizer.normalize(state))
            cue = tf.constant(trials.cue[t], tf.float32)
            hidden, excitation = loop.controller.step(hidden, loop.observed(cue, normal))
            applied = np.asarray(excitation, dtype=np.float64)
            if noise is not None:
                applied = np.clip(applied + noise[t], 0.0, 1.0)
        state = body.step(applied)
        inputs.append(applied)
        states.append(state)
    return np.stack(inputs), np.stack(states)


def plot_paths(paths: np.ndarray, goals: np.ndarray, file: Path, title: str) -> None:
    """Hand paths ``[T, K, 2]`` with their targets and centre, into a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(5, 5))
    for k in range(paths.shape[1]):
        axes.plot(paths[:, k, 0] * CM_PER_M, paths[:, k, 1] * CM_PER_M, lw=1.5)
        axes.add_patch(
            pyplot.Circle(tuple(goals[k, 0:2] * CM_PER_M), 1.0, fill=False, color="grey")
        )
    axes.plot(*(goals[0, 2:4] * CM_PER_M), "k+")
    axes.set_aspect("equal")
    axes.set_xlabel("hand x (cm)")
    axes.set_ylabel("hand y (cm)")
    axes.set_title(title)
    figure.tight_layout()
    figure.savefig(file, dpi=100)
    pyplot.close(figure)


def _settings(config: SurrogateConfig) -> ControlSettings:
    if config.control is None:
        raise UsageError(f"{config.path}: expected a Control section. Received: none")
    return config.control
