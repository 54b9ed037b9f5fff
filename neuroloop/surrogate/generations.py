"""Generations: data the current controller produces retrains ArmNet, which retrains the
controller (Bray & Vyas's "generations").

Generation 0 is ArmNet fitted on random smooth inputs and the controller trained through it.
Generation g collects sequences with controller g - 1 on the real body, half open loop (the
inputs it produces through ArmNet g - 1, replayed on the body) and half closed loop (the
controller sees the body's state), with ``noise`` on its inputs; ArmNet g continues from
ArmNet g - 1 on every generation's training sequences so far, and controller g continues
from controller g - 1 through ArmNet g. Each generation is kept in ``OUT/gen<g>/``
(``data.npz``, ``armnet/``, ``controller/`` with its closed-loop hand paths), and the table
reports every ArmNet generation's held-out fit of the position on every generation's data.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from neuroloop.errors import UsageError
from neuroloop.simulation import Simulation
from neuroloop.surrogate.armnet import ArmNet
from neuroloop.surrogate.config import SurrogateConfig
from neuroloop.surrogate.control import (
    META_FILE,
    ControllerNet,
    Loop,
    control_task,
    evaluate_closed_loop,
    make_trials,
    plot_paths,
    run_on_body,
    train_controller,
)
from neuroloop.surrogate.data import (
    NO_TIMEOUT,
    Body,
    Dataset,
    body_description,
    collect,
    engine_worlds,
    rest_state,
)
from neuroloop.surrogate.fit import evaluate, fit_armnet, split

DATA_FILE = "data.npz"
ARMNET_FOLDER = "armnet"
CONTROLLER_FOLDER = "controller"
TABLE_FILE = "generations.json"


@dataclass(frozen=True)
class IterateSettings:
    """What ``neuroloop surrogate iterate`` overrides or adds to the config."""

    generations: int
    """Generations, 0 (random inputs) to ``generations - 1``."""
    sequences: int | None
    """Sequences collected per generation; ``None``: ``Collect.Sequences``."""
    epochs: int | None
    """ArmNet epochs per generation; ``None``: ``Fit.Epochs``."""
    iterations: int | None
    """Controller iterations per generation; ``None``: ``Control.Iterations``."""
    noise: float
    """Standard deviation of the noise on the controller's inputs while collecting."""
    data: Path | None = None
    """Generation 0's dataset, if already collected."""
    armnet: Path | None = None
    """Generation 0's ArmNet, if already fitted (on ``data``)."""
    controller: Path | None = None
    """Generation 0's controller, if already trained (through ``armnet``)."""
    resume: bool = False
    """Keep the generations already complete in the output folder; run the rest."""


@dataclass(frozen=True)
class Generation:
    """One generation's data, nets and closed-loop result."""

    dataset: Dataset
    armnet: ArmNet
    controller: ControllerNet
    endpoint_error: np.ndarray
    """Closed-loop endpoint error (m) per target on the body."""


def controller_dataset(
    config: SurrogateConfig,
    armnet: ArmNet,
    controller: ControllerNet,
    sequences: int,
    noise: float,
    seed: int,
) -> Dataset:
    """Reaches of ``controller`` to random targets on the body: open loop (planned through
    ``armnet``, replayed) in even batches of worlds, closed loop in odd ones, inputs
    perturbed by Gaussian ``noise``."""
    settings = config.control
    if settings is None:
        raise UsageError(f"{config.path}: expected a Control section. Received: none")
    task = control_task(config)
    position = config.indices(settings.position, "Control.Position")
    feedback = position + config.indices(settings.velocity, "Control.Velocity")
    loop = Loop(controller, armnet, position, feedback)
    simulation = config.simulation_config([NO_TIMEOUT])
    worlds = engine_worlds(simulation, config.engine, str(config.path))
    dt_s = simulation.timestep_ns / 1e9
    steps = round(task.trial_s / dt_s)
    rng = np.random.default_rng(seed)
    inputs, states = [], []
    with Simulation(simulation, echo_engine_output=False) as sim:
        body = Body(sim, config)
        for batch in range(math.ceil(sequences / worlds)):
            sim.reset(seed * 1_000_003 + batch)
            start = body.state()
            choice = rng.integers(0, target_count(task), worlds)
            goals = np.stack([task.goals(start[w, position])[choice[w]] for w in range(worlds)])
            trials = make_trials(goals, steps, dt_s, task.hold_s, settings.movement_s)
            jitter = rng.normal(0.0, noise, (steps, worlds, armnet.n_inputs))
            planned = None
            if batch % 2 == 0:
                _, through = loop.through_surrogate(
                    armnet.normalizer.normalize(start),
                    tf.constant(trials.cue, tf.float32),
                    tf.constant(jitter, tf.float32),
                )
                planned = np.asarray(through, dtype=np.float64)
            applied, visited = run_on_body(body, loop, trials, start, noise=jitter, planned=planned)
            inputs.append(np.swapaxes(applied, 0, 1))
            states.append(np.swapaxes(visited, 0, 1))
    return Dataset(
        np.concatenate(inputs)[:sequences].astype(np.float32),
        np.concatenate(states)[:sequences].astype(np.float32),
        config.names,
        dt_s,
    )


def target_count(task: Any) -> int:
    """How many targets the task has."""
    return len(task.goals(np.zeros(2)))


def concatenate(datasets: Sequence[Dataset]) -> Dataset:
    """One dataset of every sequence of ``datasets`` (same names, timestep and length)."""
    first = datasets[0]
    return Dataset(
        np.concatenate([d.inputs for d in datasets]),
        np.concatenate([d.states for d in datasets]),
        first.names,
        first.dt_s,
    )


def position_fit(
    config: SurrogateConfig, nets: Sequence[ArmNet], datasets: Sequence[Dataset]
) -> np.ndarray:
    """Held-out variance explained ``[net, dataset, 2]`` of the ``Control.Position``
    variables of every net on every dataset's held-out split."""
    assert config.control is not None
    position = config.indices(config.control.position, "Control.Position")
    table = np.zeros((len(nets), len(datasets), len(position)))
    for j, dataset in enumerate(datasets):
        _, test = split(dataset.states.shape[0], config.fit.held_out, config.fit.seed)
        for i, net in enumerate(nets):
            table[i, j] = evaluate(net, dataset, test, 0).variance_explained[position]
    return table


def format_table(fit: np.ndarray, names: Sequence[str], errors: Sequence[np.ndarray]) -> str:
    """The generation table: ArmNet generations down, data generations across (each
    position variable, %), then each controller's closed-loop endpoint errors."""
    columns = [f"data {j} {name}" for j in range(fit.shape[1]) for name in names]
    width = max(len(c) for c in columns) + 2
    lines = ["ArmNet    " + "".join(f"{c:>{width}}" for c in columns)]
    for i in range(fit.shape[0]):
        cells = "".join(f"{100 * v:>{width - 2}.2f} %" for v in fit[i].ravel())
        lines.append(f"gen {i:<6}{cells}")
    lines.append("controller  mean endpoint error (cm)  max (cm)  targets within 1 cm")
    for g, error in enumerate(errors):
        lines.append(
            f"gen {g:<8}{100 * error.mean():>24.2f}  {100 * error.max():>8.2f}  "
            f"{int(np.sum(error <= 0.01))}/{error.size}"
        )
    return "\n".join(lines)


def iterate(
    config: SurrogateConfig,
    settings: IterateSettings,
    out: Path,
    log: Callable[[str], None],
) -> list[Generation]:
    """Run ``settings.generations`` generations into ``out``; return them.

    Raises:
        UsageError: If the config has no Control section.
    """
    if config.control is None:
        raise UsageError(f"{config.path}: expected a Control section. Received: none")
    task = control_task(config)
    start = rest_state(config)
    sequences = settings.sequences or config.collect.sequences
    generations: list[Generation] = []
    for g in range(settings.generations):
        folder = out / f"gen{g}"
        if settings.resume and (folder / CONTROLLER_FOLDER / META_FILE).is_file():
            log(f"gen {g}: kept from {folder}")
            generations.append(saved_generation(folder))
            continue
        folder.mkdir(parents=True, exist_ok=True)
        previous = generations[-1] if generations else None
        last = out / f"gen{g - 1}"
        if previous is None:
            log("gen 0: collecting random smooth inputs")
            dataset = Dataset.load(settings.data) if settings.data else collect(config, sequences)
        else:
            log(f"gen {g}: collecting with controller {g - 1}")
            dataset = controller_dataset(
                config,
                previous.armnet,
                previous.controller,
                sequences,
                settings.noise,
                config.collect.seed + g,
            )
        dataset.save(folder / DATA_FILE)
        datasets = [*(gen.dataset for gen in generations), dataset]
        if previous is None and settings.armnet is not None:
            armnet = ArmNet.load(settings.armnet)
        else:
            log(f"gen {g}: fitting ArmNet")
            armnet, _ = fit_armnet(
                concatenate(datasets),
                config.fit,
                epochs=settings.epochs,
                # Copies: training goes on in place, the kept generation stays as it was.
                initial=None if previous is None else ArmNet.load(last / ARMNET_FOLDER),
                indices=union_split(config, datasets),
            )
        armnet.body = armnet.body or body_description(config)
        armnet.save(folder / ARMNET_FOLDER)
        if previous is None and settings.controller is not None:
            controller = ControllerNet.load(settings.controller)
        else:
            log(f"gen {g}: training the controller through ArmNet {g}")
            controller, _ = train_controller(
                config,
                armnet,
                task,
                start,
                iterations=settings.iterations,
                resume=None if previous is None else ControllerNet.load(last / CONTROLLER_FOLDER),
            )
        metrics, paths, goals = evaluate_closed_loop(config, armnet, controller, task)
        controller.save(
            folder / CONTROLLER_FOLDER, {"endpoint_error": metrics.endpoint_error.tolist()}
        )
        plot_paths(
            paths,
            goals,
            folder / CONTROLLER_FOLDER / "trajectories.png",
            f"ControllerNet generation {g} on the body",
        )
        log(f"gen {g}: closed-loop endpoint error {100 * metrics.endpoint_error.mean():.2f} cm")
        generations.append(
            Generation(
                dataset,
                ArmNet.load(folder / ARMNET_FOLDER),
                ControllerNet.load(folder / CONTROLLER_FOLDER),
                metrics.endpoint_error,
            )
        )
    return generations


def saved_generation(folder: Path) -> Generation:
    """A generation ``iterate`` completed in ``folder``."""
    controller_folder = folder / CONTROLLER_FOLDER
    report = json.loads((controller_folder / META_FILE).read_text(encoding="utf-8"))["report"]
    return Generation(
        Dataset.load(folder / DATA_FILE),
        ArmNet.load(folder / ARMNET_FOLDER),
        ControllerNet.load(controller_folder),
        np.asarray(report["endpoint_error"]),
    )


def union_split(
    config: SurrogateConfig, datasets: Sequence[Dataset]
) -> tuple[np.ndarray, np.ndarray]:
    """Training and held-out indices into ``concatenate(datasets)``: each dataset's own
    ``split``, so every generation keeps the held-out sequences the table reports on."""
    train, test, offset = [], [], 0
    for dataset in datasets:
        count = dataset.states.shape[0]
        own_train, own_test = split(count, config.fit.held_out, config.fit.seed)
        train.append(own_train + offset)
        test.append(own_test + offset)
        offset += count
    return np.concatenate(train), np.concatenate(test)


def write_table(out: Path, config: SurrogateConfig, generations: Sequence[Generation]) -> str:
    """Compute, save (``generations.json``) and return the generation table."""
    assert config.control is not None
    fit = position_fit(config, [g.armnet for g in generations], [g.dataset for g in generations])
    errors = [g.endpoint_error for g in generations]
    (out / TABLE_FILE).write_text(
        json.dumps(
            {
                "position": list(config.control.position),
                "variance_explained": fit.tolist(),
                "endpoint_error": [e.tolist() for e in errors],
            },
            indent=1,
        ),
        encoding="utf-8",
    )
    return format_table(fit, config.control.position, errors)
