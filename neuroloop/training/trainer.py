"""The PPO training loop: gather -> advantages -> epochs x minibatches -> log, per cycle.

Every process (MPI rank) runs its own orchestrated simulation with the current weights;
gradients are averaged across processes (``neuroloop.training.mpi``), so every rank applies
the same update and keeps identical weights. Rank 0 writes the monitor and checkpoints.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from neuroloop.brain.contract import Brain
from neuroloop.brain.loading import build_brain
from neuroloop.brain.normalization import (
    NORMALIZATION_EPSILON,
    REWARD_CLIP,
    RunningMeanStd,
)
from neuroloop.brain.trained import Architecture, read_architecture
from neuroloop.brain.weights import assign_flat_weights, flat_weights
from neuroloop.errors import CollectiveError, CollectiveInterrupt, UsageError
from neuroloop.simulation import Simulation
from neuroloop.training.advantages import compute_gae
from neuroloop.training.checkpoint import (
    BEST,
    CHECKPOINTS,
    LATEST,
    PERIODIC,
    TrainingState,
    save_checkpoint,
)
from neuroloop.training.gather import Gatherer, Rollout, TrainingSignals
from neuroloop.training.losses import ppo_loss
from neuroloop.training.monitor import Monitor, peak_memory_mib
from neuroloop.training.mpi import Communicator, get_communicator
from neuroloop.training.recipe import MEAN_RETURN, Recipe
from neuroloop.training.tbptt import Chunks, chunk_inputs, make_chunks, minibatches

RECIPE_FILE = "recipe.json"
SIMULATION_FILE = "simulation.json"
"""The run's simulation config as resolved (recipe brain, worlds and seeds written in, rank 0)."""
"""The metric name that means the mean return of the cycle's finished episodes."""
RETURNS = "returns"
"""Name of the discounted-return statistics in checkpoints."""
LOSS_TERMS = ("policy_loss", "value_loss", "entropy", "loss", "grad_norm")
"""The optimization figures checked for NaN and infinity first, in the loss's order."""
SEED_STRIDE = 1_000_003
"""Cycle seeds are ``seed * SEED_STRIDE + cycle * ranks + rank``: distinct per cycle and rank."""


def cycle_seed(seed: int, cycle: int, rank: int, ranks: int) -> int:
    """The reset seed of one rank's gathering in one cycle."""
    return seed * SEED_STRIDE + cycle * ranks + rank


@dataclass(frozen=True)
class FinishedEpisodes:
    """The episodes that start and finish inside a rollout, in the order they finish."""

    returns: list[float]
    """Unscaled returns."""
    lengths: list[int]
    """Transitions."""
    metrics: list[float]
    """The task metric of each (empty when the rollout carries none)."""


def episode_statistics(rollout: Rollout) -> FinishedEpisodes:
    """Returns, lengths and task metrics of the episodes that start and finish in a rollout."""
    finished = FinishedEpisodes([], [], [])
    final = rollout.terminated | rollout.truncated
    worlds = rollout.rewards.shape[1]
    total, length = np.zeros(worlds), np.zeros(worlds, np.int64)
    open_episode = np.zeros(worlds, bool)
    for t in range(rollout.rewards.shape[0]):
        start = rollout.episode_start[t]
        total = np.where(start, 0.0, total + rollout.rewards[t])
        length = np.where(start, 0, length + 1)
        open_episode |= start
        ended = final[t] & open_episode
        finished.returns.extend(total[ended].tolist())
        finished.lengths.extend(length[ended].tolist())
        if rollout.metrics is not None:
            finished.metrics.extend(rollout.metrics[t][ended].tolist())
        open_episode &= ~ended
    return finished


def discounted_returns(rewards: np.ndarray, episode_start: np.ndarray, gamma: float) -> np.ndarray:
    """Running discounted return ``[L, W]`` of each world, restarting at episode starts.

    Args:
        rewards: ``[L, W]``.
        episode_start: ``[L, W]`` bool.
        gamma: Discount factor.
    """
    running = np.zeros(rewards.shape[1:])
    out = np.zeros(rewards.shape)
    for t in range(rewards.shape[0]):
        running = np.where(episode_start[t], 0.0, gamma * running) + rewards[t]
        out[t] = running
    return out


def cycle_episodes(comm: Communicator, rollout: Rollout, metric: str) -> dict[str, Any]:
    """A cycle's episode figures, counted once, from the same episodes, over every rank.

    Returns, lengths and the task metric all come from the episodes that finished in each
    rank's rollout (the metric ``mean_return`` is their mean return).

    Args:
        comm: The ranks' communicator.
        rollout: This rank's rollout of the cycle.
        metric: The recipe's task metric.

    Returns:
        ``episodes`` and ``steps`` (transitions) over all ranks, ``mean_return``,
        ``mean_length`` and ``metric`` (NaN without finished episodes).
    """
    finished = episode_statistics(rollout)
    metrics = finished.returns if metric == MEAN_RETURN else finished.metrics
    totals = comm.allreduce_sum(
        [
            len(finished.returns),
            sum(finished.returns),
            sum(finished.lengths),
            rollout.rewards[1:].size,
            sum(metrics),
            len(metrics),
        ]
    )
    episodes, return_sum, length_sum, steps, metric_sum, metric_episodes = (
        float(v) for v in totals
    )
    return {
        "episodes": int(episodes),
        "steps": int(steps),
        "mean_return": return_sum / episodes if episodes else math.nan,
        "mean_length": length_sum / episodes if episodes else math.nan,
        "metric": metric_sum / metric_episodes if metric_episodes else math.nan,
    }


def merge_batch(comm: Communicator, stats: RunningMeanStd, samples: np.ndarray) -> None:
    """Fold the samples ``[N, ...]`` of every rank into ``stats`` (exact parallel merge)."""
    samples = np.asarray(samples, dtype=np.float64)
    count = float(samples.shape[0])
    mean = samples.mean(axis=0) if count else np.zeros(stats.shape)
    var = samples.var(axis=0) if count else np.ones(stats.shape)
    total, mean, var = comm.merge_running_stats(count, mean, var)
    if total > 0:
        stats.merge(
            RunningMeanStd.from_state(
                {"shape": list(stats.shape), "mean": mean, "var": var, "count": total}
            )
        )


class NonFiniteLossError(CollectiveError):
    """A cycle's loss or gradient norm is NaN or infinite (every rank sees the same figures).

    Args:
        cycle: The cycle (counting from 1).
        term: The first non-finite metric.
        value: Its value.
        report: Print the error (on rank 0 only).
    """

    def __init__(self, cycle: int, term: str, value: float, report: bool) -> None:
        super().__init__(
            f"cycle {cycle}: {term} is {value} after optimizing; stopped without writing "
            "its checkpoint or progress line (lower PPO.LearningRate or PPO.MaxGradNorm, "
            "or check the rewards)",
            report=report,
        )


def check_finite(metrics: Mapping[str, float], cycle: int, report: bool = True) -> None:
    """Raise :class:`NonFiniteLossError` naming the first non-finite entry of ``metrics``.

    Args:
        metrics: A cycle's averaged optimization figures (losses, ``grad_norm``, ...).
        cycle: The cycle they belong to.
        report: Whether the error is printed (rank 0's).
    """
    ordered = [term for term in LOSS_TERMS if term in metrics]
    for term in ordered + sorted(set(metrics) - set(ordered)):
        if not math.isfinite(metrics[term]):
            raise NonFiniteLossError(cycle, term, metrics[term], report)


def build_recipe_brain(recipe: Recipe, extra: Mapping[str, Any]) -> Brain:
    """The recipe's brain, shaped by the brain engine's ``EngineExtraConfigs`` ``extra``."""
    return build_brain(
        recipe.brain,
        input_shapes={name: tuple(shape) for name, shape in extra["InputShapes"].items()},
        action_dim=int(extra["ActionDim"]),
        distribution=recipe.distribution,
        distribution_options=dict(recipe.distribution_options),
        **dict(recipe.brain_options),
    )


def _hparams(document: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """The recipe's values as flat TensorBoard hyperparameters (``PPO.LearningRate``, ...)."""
    flat: dict[str, Any] = {}
    for key, value in document.items():
        if isinstance(value, Mapping):
            flat.update(_hparams(value, f"{prefix}{key}."))
        elif isinstance(value, bool | int | float | str):
            flat[f"{prefix}{key}"] = value
        elif value is not None:
            flat[f"{prefix}{key}"] = json.dumps(value)
    return flat


def warm_start(brain: Brain, weights: Path, extra: Mapping[str, Any]) -> None:
    """Load ``InitialWeights`` into ``brain`` (built from the brain engine settings ``extra``).

    Raises:
        UsageError: If the weights' architecture file names another brain, or the weights do
            not fit.
    """
    try:
        architecture = read_architecture(weights)
    except ValueError as error:
        raise UsageError(f"InitialWeights: {error}") from None
    if architecture is not None:
        expected = dict(Architecture.from_engine(extra).settings)
        found = dict(architecture.settings)
        differing = sorted(k for k in found if json.dumps(found[k]) != json.dumps(expected.get(k)))
        if differing:
            raise UsageError(
                f"InitialWeights {weights}: expected weights of the recipe's brain. Received: "
                + ", ".join(f"{k}={found[k]!r} (recipe: {expected.get(k)!r})" for k in differing)
            )
    try:
        brain.joint.load_weights(weights)
    except (ValueError, OSError) as error:
        reason = " ".join(str(error).split("Target variable:")[0].split())
        raise UsageError(
            f"InitialWeights {weights}: expected weights that fit the recipe's brain "
            f"{brain.name!r}. Received: {reason}"
        ) from None


class Trainer:
    """Trains the brain of a recipe's simulation with PPO.

    Args:
        recipe: The training recipe.
        run_dir: Where the monitor, TensorBoard scalars and checkpoints go.
        start: The checkpoint to continue from (``None``: a new run).
        quiet: No progress lines.
        echo_engine_output: Forward the engines' stdout.
    """

    def __init__(
        self,
        recipe: Recipe,
        run_dir: Path,
        *,
        start: TrainingState | None = None,
        quiet: bool = False,
        echo_engine_output: bool = False,
    ) -> None:
        self.recipe = recipe
        self.run_dir = run_dir
        self.comm = get_communicator()
        self.quiet = quiet
        self.echo_engine_output = echo_engine_output
        self.config = recipe.simulation_config(seed_offset=self.comm.rank)
        extra = self.config.engine(recipe.brain_engine).extra
        # Same seed, same data -> same update: what lets a resumed run repeat a cycle exactly.
        tf.config.experimental.enable_op_determinism()
        keras.utils.set_random_seed(recipe.seed)
        self.brain: Brain = build_recipe_brain(recipe, extra)
        self.optimizer = keras.optimizers.Adam(learning_rate=recipe.ppo.learning_rate)
        self.optimizer.build(self.brain.joint.trainable_variables)
        # One traced graph for every minibatch (sizes differ by at most one chunk).
        self._compiled_gradients = tf.function(self._loss_gradients, reduce_retracing=True)
        # Eager apply_gradients costs ~50 ms a minibatch; compiled, ~1.5 ms.
        self._compiled_apply = tf.function(self._apply)
        # Statistics for exactly the modalities the brain normalizes: the brain decides
        # (BrainOptions.normalize_inputs), so a brain without normalization layers has none.
        self.statistics = {
            name: RunningMeanStd(tuple(extra["InputShapes"][name]))
            for name in self.brain.input_normalizers
        }
        self.statistics[RETURNS] = RunningMeanStd(())
        self.cycle = 0
        self.env_steps = 0
        self.best_return = -math.inf
        if start is not None:
            self._restore(start)
        elif recipe.initial_weights is not None:
            warm_start(self.brain, recipe.initial_weights, extra)
            # The weights' input statistics count as one cycle of observations: the new
            # task's observations shift them gradually instead of replacing them at once.
            prior = float(recipe.worlds * recipe.horizon * self.comm.size)
            for name, (mean, var) in self.brain.input_statistics().items():
                self.statistics[name] = RunningMeanStd.from_state(
                    {"shape": list(mean.shape), "mean": mean, "var": var, "count": prior}
                )
        # Every rank takes rank 0's weights at the start of each cycle (_synchronize_weights).
        self._apply_statistics()

    # -- the loop ----------------------------------------------------------------------------

    def train(
        self, cycles: int | None = None, between_cycles: Callable[[], None] | None = None
    ) -> list[dict[str, Any]]:
        """Run until ``cycles`` (default: the recipe's) cycles are done; return the records.

        Args:
            cycles: Total cycles of the run (counting those before a resume).
            between_cycles: Called after each cycle's checkpoint; may raise to stop the run.
        """
        total = self.recipe.cycles if cycles is None else cycles
        records = []
        if self.comm.is_root:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / RECIPE_FILE).write_text(
                json.dumps(dict(self.recipe.document), indent=2)
            )
            (self.run_dir / SIMULATION_FILE).write_text(
                json.dumps(self.config.document, indent=2, default=dict)
            )
        monitor = (
            Monitor(self.run_dir, total, self.quiet, hparams=_hparams(self.recipe.document))
            if self.comm.is_root
            else None
        )
        simulation = Simulation(self.config, echo_engine_output=self.echo_engine_output)
        # abort_on_error outermost: a failing rank closes its simulation, then aborts the job.
        with self.comm.abort_on_error(), simulation:
            gatherer = Gatherer(
                simulation,
                TrainingSignals(
                    self.recipe.brain_engine, *self.recipe.signals, self.recipe.metric_signal
                ),
                self.brain.state_names,
            )
            while self.cycle < total:
                record = self.run_cycle(gatherer)
                records.append(record)
                if monitor is not None:
                    self._checkpoint(record)  # first: resuming rebuilds a line lost between
                    monitor.log(record)
                if between_cycles is not None:
                    self._stop_together(between_cycles)
        return records

    def _stop_together(self, between_cycles: Callable[[], None]) -> None:
        """Run ``between_cycles``; if it stops any rank (Ctrl-C), every rank stops here.

        Raises:
            CollectiveInterrupt: On every rank, when any rank was interrupted.
        """
        try:
            between_cycles()
            asked = 0.0
        except KeyboardInterrupt:
            asked = 1.0
        if self.comm.allreduce_sum([asked])[0] > 0:
            raise CollectiveInterrupt

    def run_cycle(self, gatherer: Gatherer) -> dict[str, Any]:
        """One gather -> advantages -> optimize cycle."""
        recipe, ppo, comm = self.recipe, self.recipe.ppo, self.comm
        started = time.perf_counter()
        weights, drift = self._synchronize_weights()
        gatherer.push_weights(weights)
        seed = cycle_seed(recipe.seed, self.cycle, comm.rank, comm.size)
        rollout = gatherer.gather(recipe.horizon, seed)
        gather_s = time.perf_counter() - started

        # Advantages from scaled rewards, then chunks; all time-major [T + 1, W] until chunked.
        rewards = self._scaled_rewards(rollout)
        advantages, returns, mask = compute_gae(
            rewards,
            rollout.values,
            rollout.terminated,
            rollout.truncated,
            gamma=ppo.gamma,
            lam=ppo.lam,
        )
        chunks = self._chunks(rollout, advantages, returns, mask)

        started = time.perf_counter()
        learning_rate = self._learning_rate()
        self.optimizer.learning_rate = learning_rate
        metrics = self._optimize(chunks)
        optimize_s = time.perf_counter() - started
        check_finite(metrics, self.cycle + 1, comm.is_root)

        self._update_observation_statistics(rollout)
        episodes = cycle_episodes(comm, rollout, recipe.metric)
        # Cores the gathering kept busy: every rank's CPU seconds over its own wall time.
        gather_cpu_s, gather_cores = comm.allreduce_sum(
            [gatherer.last_cpu_s, gatherer.last_cpu_s / max(gather_s, 1e-9)]
        )
        self.env_steps += episodes["steps"]
        self.cycle += 1
        record: dict[str, Any] = {
            "cycle": self.cycle,
            "env_steps": self.env_steps,
            "episodes": episodes["episodes"],
            "mean_return": episodes["mean_return"],
            "mean_length": episodes["mean_length"],
            "metric": episodes["metric"],
            "metric_name": recipe.metric,
            **{key: float(value) for key, value in metrics.items()},
            "learning_rate": learning_rate,
            "return_std": float(np.sqrt(self.statistics[RETURNS].var)),
            "gather_s": gather_s,
            "gather_cpu_s": float(gather_cpu_s),
            "gather_cores": float(gather_cores),
            "optimize_s": optimize_s,
            "env_steps_per_s": episodes["steps"] / max(gather_s, 1e-9) / comm.size,
            "samples_per_s": float(mask.sum()) * ppo.epochs / max(optimize_s, 1e-9),
            "peak_memory_mib": peak_memory_mib(),
            "processes": comm.size,
            "weight_drift": drift,
        }
        return record

    # -- pieces ------------------------------------------------------------------------------

    def _synchronize_weights(self) -> tuple[np.ndarray, float]:
        """Take rank 0's weights; return them (flat) and how far any rank's own had drifted.

        Every rank applies the same averaged gradients, so the drift should be exactly 0
        after the first cycle (before it, ranks differ only if their builds did); the
        broadcast makes sure, and the figure shows it.
        """
        local = flat_weights(self.brain.joint)
        root = self.comm.broadcast(local)
        drift = float(np.max(np.abs(local - root))) if local.size else 0.0
        if drift:
            assign_flat_weights(self.brain.joint, root)
        return root, float(self.comm.allreduce_sum([drift])[0])

    def _learning_rate(self) -> float:
        """This cycle's learning rate: ``PPO.LearningRate``, annealed linearly to 0 over the
        recipe's cycles with ``LearningRateSchedule: linear`` (from the cycle number alone,
        so a resumed run continues the schedule)."""
        ppo = self.recipe.ppo
        if ppo.learning_rate_schedule == "constant":
            return ppo.learning_rate
        remaining = max(1.0 - self.cycle / self.recipe.cycles, 0.0)
        return ppo.learning_rate * remaining

    def _scaled_rewards(self, rollout: Rollout) -> np.ndarray:
        """Rewards ``[T + 1, W]`` divided by the running std of the discounted return."""
        if not self.recipe.normalize_rewards:
            return rollout.rewards.astype(np.float64)
        stats = self.statistics[RETURNS]
        returns = discounted_returns(rollout.rewards, rollout.episode_start, self.recipe.ppo.gamma)
        merge_batch(self.comm, stats, returns[~rollout.episode_start])
        scaled = rollout.rewards / np.sqrt(stats.var + NORMALIZATION_EPSILON)
        return np.clip(scaled, -REWARD_CLIP, REWARD_CLIP)

    def _chunks(
        self, rollout: Rollout, advantages: np.ndarray, returns: np.ndarray, mask: np.ndarray
    ) -> Chunks:
        horizon = rollout.horizon
        arrays: dict[str, np.ndarray] = {
            name: value[:horizon] for name, value in rollout.observations.items()
        }
        arrays.update(
            actions=rollout.actions[:horizon],
            old_log_probs=rollout.log_probs[:horizon],
            old_values=rollout.values[:horizon],
            advantages=advantages.astype(np.float32),
            returns=returns.astype(np.float32),
            mask=mask.astype(np.float32),
        )
        return make_chunks(
            rollout.episode_start[:horizon],
            arrays,
            {name: state[:horizon] for name, state in rollout.states.items()},
            self.recipe.ppo.chunk_length,
        )

    def _optimize(self, chunks: Chunks) -> dict[str, float]:
        ppo = self.recipe.ppo
        n_minibatches = min(ppo.minibatches, chunks.n_chunks)
        # Derived, not carried: every rank, resumed or not, draws the same minibatches.
        rng = np.random.default_rng([self.recipe.seed, self.comm.rank, self.cycle])
        sums: dict[str, float] = {}
        count = 0
        for _ in range(ppo.epochs):
            for indices in minibatches(chunks, n_minibatches, rng):
                loss, metrics, gradients = self._gradients(chunks, indices)
                averaged = self.comm.allreduce_mean([np.asarray(g) for g in gradients])
                norm = self._compiled_apply([tf.convert_to_tensor(g) for g in averaged])
                metrics = {**metrics, "loss": loss, "grad_norm": norm}
                for key, value in metrics.items():
                    sums[key] = sums.get(key, 0.0) + float(value)
                count += 1
        averaged_metrics = self.comm.allreduce_mean(
            [np.array([sums[k] / count for k in sorted(sums)])]
        )
        return dict(zip(sorted(sums), averaged_metrics[0].tolist(), strict=True))

    def _gradients(
        self, chunks: Chunks, indices: np.ndarray
    ) -> tuple[tf.Tensor, Mapping[str, tf.Tensor], list[tf.Tensor]]:
        data = chunks.select(indices)
        batch = {
            key: tf.convert_to_tensor(data.arrays[key])
            for key in ("actions", "old_log_probs", "advantages", "old_values", "returns")
        }
        batch["mask"] = tf.convert_to_tensor(data.mask)
        return self._compiled_gradients(chunk_inputs(self.brain, "joint", data), batch)

    def _loss_gradients(
        self, inputs: Mapping[str, tf.Tensor], batch: Mapping[str, tf.Tensor]
    ) -> tuple[tf.Tensor, dict[str, tf.Tensor], list[tf.Tensor]]:
        """PPO loss and its gradients on one minibatch of chunks ``[n, chunk_len, ...]``."""
        ppo = self.recipe.ppo
        distribution = self.brain.distribution
        variables = self.brain.joint.trainable_variables
        with tf.GradientTape() as tape:
            outputs = self.brain.joint(dict(inputs))
            loss, metrics = ppo_loss(
                distribution.log_prob(outputs, batch["actions"]),
                batch["old_log_probs"],
                batch["advantages"],
                outputs["value"][..., 0],
                batch["old_values"],
                batch["returns"],
                distribution.entropy(outputs),
                batch["mask"],
                clip_epsilon=ppo.clip_epsilon,
                value_clip=ppo.value_clip,
                value_coef=ppo.value_coef,
                entropy_coef=ppo.entropy_coef,
            )
        gradients = tape.gradient(loss, variables)
        return (
            loss,
            metrics,
            [
                tf.zeros_like(v) if g is None else g
                for g, v in zip(gradients, variables, strict=True)
            ],
        )

    def _apply(self, gradients: list[tf.Tensor]) -> tf.Tensor:
        """Clip the (process-averaged) gradients to the global norm and take an Adam step.

        Returns:
            The global norm before clipping.
        """
        clipped, norm = tf.clip_by_global_norm(gradients, self.recipe.ppo.max_grad_norm)
        self.optimizer.apply_gradients(
            zip(clipped, self.brain.joint.trainable_variables, strict=True)
        )
        return norm

    def _update_observation_statistics(self, rollout: Rollout) -> None:
        for name, stats in self.statistics.items():
            if name in rollout.observations:
                samples = rollout.observations[name][: rollout.horizon]
                merge_batch(self.comm, stats, samples.reshape(-1, *stats.shape))
        self._apply_statistics()

    def _apply_statistics(self) -> None:
        observed = {k: v for k, v in self.statistics.items() if k != RETURNS and v.count > 0}
        if observed:
            self.brain.set_input_statistics(observed)

    # -- checkpoints -------------------------------------------------------------------------

    def _state(self, record: Mapping[str, Any]) -> TrainingState:
        return TrainingState(
            cycle=self.cycle,
            env_steps=self.env_steps,
            best_return=self.best_return,
            weights=self.brain.joint.get_weights(),
            optimizer=[np.asarray(v) for v in self.optimizer.variables],
            statistics={name: stats.state() for name, stats in self.statistics.items()},
            recipe=dict(self.recipe.document),
            processes=self.comm.size,
            progress=dict(record),
        )

    def _restore(self, state: TrainingState) -> None:
        expected = [tuple(w.shape) for w in self.brain.joint.get_weights()]
        found = [tuple(w.shape) for w in state.weights]
        if found != expected:
            raise UsageError(
                f"resume {self.run_dir}: the checkpoint's weights do not fit the recipe's "
                f"brain. Expected shapes: {expected}. Received: {found}"
            )
        self.brain.joint.set_weights(state.weights)
        for variable, value in zip(self.optimizer.variables, state.optimizer, strict=True):
            variable.assign(value)
        for name, saved in state.statistics.items():
            self.statistics[name] = RunningMeanStd.from_state(saved)
        self.cycle = state.cycle
        self.env_steps = state.env_steps
        self.best_return = state.best_return

    def _checkpoint(self, record: Mapping[str, Any]) -> None:
        folder = self.run_dir / CHECKPOINTS
        mean_return = record["mean_return"]
        best = math.isfinite(mean_return) and mean_return > self.best_return
        if best:
            self.best_return = mean_return
        state = self._state(record)
        if best:
            save_checkpoint(folder / BEST, state)
        save_checkpoint(folder / LATEST, state)
        if self.cycle % self.recipe.checkpoint_every == 0:
            save_checkpoint(folder / PERIODIC.format(cycle=self.cycle), state)
