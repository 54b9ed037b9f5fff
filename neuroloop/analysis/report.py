"""``neuroloop analyze``: every analysis on one step recording, as an HTML report and JSON.

Layers are the recorded ``layer/*`` activations (input normalizations and concatenations
left out: they restate the inputs) next to the raw inputs ``input/*`` for reference. Task
variables are the recording's ``task/*`` arrays: integer ones are conditions (e.g.
``target_finger``), the others continuous. The recurrent state analysed by PCA, SINDy and
the fixed-point finder is the policy's (``state/policy_*``).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from neuroloop.analysis.brain_dynamics import brain_from_recording, policy_update
from neuroloop.analysis.decoding import decode
from neuroloop.analysis.dynamics import fit_sindy, principal_components
from neuroloop.analysis.fixed_points import (
    FixedPoint,
    fixed_points_among,
    linearise,
    minimise_speed,
)
from neuroloop.analysis.rsa import condition_means, rdm, rsa
from neuroloop.recording import Recording

RSA_SAMPLES = 400
"""Rows (time steps) the sample-level RDMs are built from, drawn evenly at random."""
SKIPPED_LAYERS = ("normalization", "concat")
"""Layers whose names contain these restate the inputs and are left out."""
PCS = 3
"""Principal components of the recurrent state kept for plots and SINDy."""
INPUT_PCS = 2
"""Principal components of the goal input given to SINDy as held inputs."""
FIXED_POINT_STARTS = 48
"""Starts of the fixed-point search per condition: visited states plus small noise."""
START_NOISE = 0.05
FIXED_POINT_TOLERANCE = 1e-7
"""``q`` below which a float32 brain's minimum counts as a fixed point."""
SETTLED_STEPS = 10
"""The held input of a condition: the mean input over its episodes' last this many steps."""
FIXED_POINT_ITERATIONS = 500
"""L-BFGS iterations of the search per condition."""
MAX_CONDITIONS = 8
OVER_TIME_STRIDE = 2
"""Decoding over time looks at every this many control steps."""
RECURRENT = ("lstm", "gru", "rnn")
"""Layers whose names contain these are recurrent: decoded step by step too."""
SEED = 0
FIGURE_DPI = 90
FIGURES = "figures"


@dataclass
class Report:
    """Metrics (``metrics.json``), the report's sections, and its figures (also written as
    ``figures/<name>.png`` beside the report)."""

    output: Path
    metrics: dict[str, Any] = field(default_factory=dict)
    sections: list[str] = field(default_factory=list)

    def figure(self, fig: Any, name: str) -> str:
        """Save ``fig`` as ``figures/<name>.png``; return it as an inline ``<img>``."""
        buffer = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buffer, format="png", dpi=FIGURE_DPI)
        plt.close(fig)
        folder = self.output / FIGURES
        folder.mkdir(exist_ok=True)
        (folder / f"{name}.png").write_bytes(buffer.getvalue())
        encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
        return f'<img src="data:image/png;base64,{encoded}" alt="{html.escape(name)}">'

    def add(self, title: str, *parts: str) -> None:
        self.sections.append(f"<h2>{html.escape(title)}</h2>\n" + "\n".join(parts))


def analyze_recording(recording: Recording, output: Path) -> dict[str, Any]:
    """Run every analysis on ``recording``; write ``output/report.html`` and ``metrics.json``.

    Returns:
        The metrics written to ``metrics.json``.
    """
    output.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    report = Report(output)
    rng = np.random.default_rng(SEED)
    layers = _layers(recording)
    variables, categorical = _variables(recording)
    episodes = recording.episode
    report.metrics["recording"] = {
        "file": str(recording.path),
        "rows": len(episodes),
        "episodes": len(np.unique(episodes)),
        "layers": {name: int(a.shape[1]) for name, a in layers.items()},
        "variables": sorted(variables),
    }
    timed = report.metrics["section_seconds"] = {}
    mark = time.perf_counter()

    def done(section: str) -> None:
        nonlocal mark
        timed[section] = round(time.perf_counter() - mark, 1)
        mark = time.perf_counter()

    _rsa_section(report, layers, variables, categorical, rng)
    done("rsa")
    _decoding_section(report, recording, layers, variables, categorical)
    done("decoding")
    state = _recurrent_state(recording)
    if state is not None:
        components = _pca_section(report, recording, state, variables, categorical)
        done("pca")
        _sindy_section(report, recording, state, components)
        done("sindy")
        _fixed_point_section(report, recording, state, components, variables, categorical, rng)
        done("fixed_points")
    report.metrics["seconds"] = round(time.perf_counter() - started, 1)
    (output / "metrics.json").write_text(json.dumps(_plain(report.metrics), indent=2) + "\n")
    (output / "report.html").write_text(_html(recording, report))
    return report.metrics


# -- what is analysed ----------------------------------------------------------------------


def _layers(recording: Recording) -> dict[str, np.ndarray]:
    layers = {}
    for key in (*recording.keys("input/"), *recording.keys("layer/")):
        if any(skip in key for skip in SKIPPED_LAYERS):
            continue
        values = recording[key].reshape(len(recording.episode), -1).astype(np.float64)
        if values.std(axis=0).max() > 0:
            layers[key] = values
    return layers


def _variables(recording: Recording) -> tuple[dict[str, np.ndarray], frozenset[str]]:
    variables, categorical = {}, set()
    for key in recording.keys("task/"):
        values = recording[key].reshape(len(recording.episode), -1)
        if values.std(axis=0).max() == 0:
            continue  # e.g. the object pose of a task without an object
        name = key.removeprefix("task/")
        if np.issubdtype(values.dtype, np.integer) and values.shape[1] == 1:
            variables[name] = values[:, 0]
            categorical.add(name)
        else:
            variables[name] = values.astype(np.float64)
    return variables, frozenset(categorical)


def _recurrent_state(recording: Recording) -> np.ndarray | None:
    """The policy's recurrent state that each step produced (the next step's ``state/``):
    ``layer/policy_lstm``-like outputs are its ``h``; here ``h`` and ``c`` side by side."""
    keys = recording.keys("state/policy_")
    if not keys:
        return None
    return np.concatenate([recording[key] for key in keys], axis=1).astype(np.float64)


def _condition(variables: dict[str, np.ndarray], categorical: frozenset[str]) -> str | None:
    """The categorical variable plots colour by (the one with the most levels)."""
    names = sorted(categorical, key=lambda name: -len(np.unique(variables[name])))
    return names[0] if names else None


# -- sections --------------------------------------------------------------------------------


def _rsa_section(
    report: Report,
    layers: dict[str, np.ndarray],
    variables: dict[str, np.ndarray],
    categorical: frozenset[str],
    rng: np.random.Generator,
) -> None:
    rows = np.sort(rng.choice(len(next(iter(layers.values()))), RSA_SAMPLES, replace=False))
    result = rsa(
        {k: v[rows] for k, v in layers.items()},
        {k: v[rows] for k, v in variables.items()},
        categorical,
    )
    report.metrics["rsa"] = result
    figure = _heatmap(report, result, "Spearman correlation of layer RDM with model RDM", "rsa")
    parts = [
        f"<p>RDMs (1 - Pearson correlation) of {RSA_SAMPLES} random time steps per layer, "
        "compared with model RDMs of each task variable (Euclidean distance; 0/1 for "
        "conditions) by Spearman correlation (rsatoolbox).</p>",
        figure,
    ]
    condition = _condition(variables, categorical)
    if condition is not None:
        parts.append(_condition_rdms(report, layers, variables[condition], condition))
    report.add("Representational similarity", *parts)


def _condition_rdms(
    report: Report, layers: dict[str, np.ndarray], labels: np.ndarray, name: str
) -> str:
    shown = [key for key in layers if key.startswith("layer/")][:6]
    fig, axes = plt.subplots(1, len(shown), figsize=(2.6 * len(shown), 2.6), squeeze=False)
    for ax, key in zip(axes[0], shown, strict=True):
        conditions, means = condition_means(layers[key], labels)
        matrix = rdm(means).get_matrices()[0]
        ax.imshow(matrix, cmap="viridis")
        ax.set_title(key.removeprefix("layer/"), fontsize=8)
        ax.set_xticks(range(len(conditions)), conditions, fontsize=7)
        ax.set_yticks(range(len(conditions)), conditions, fontsize=7)
    fig.suptitle(f"RDMs of the condition means by {name}", fontsize=9)
    return report.figure(fig, "condition_rdms")


def _decoding_section(
    report: Report,
    recording: Recording,
    layers: dict[str, np.ndarray],
    variables: dict[str, np.ndarray],
    categorical: frozenset[str],
) -> None:
    groups = recording.episode
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for layer, activations in layers.items():
        results[layer] = {}
        for name, target in variables.items():
            found = decode(activations, target, groups, name in categorical)
            results[layer][name] = {
                "score": found.score,
                "std": found.std,
                "chance": found.chance,
                "metric": found.metric,
            }
    report.metrics["decoding"] = results
    scores = {layer: {n: r["score"] for n, r in row.items()} for layer, row in results.items()}
    parts = [
        "<p>Linear decoders (logistic regression for conditions: accuracy; ridge regression "
        "for continuous variables: R² averaged over their columns), 5-fold cross-validated "
        "with folds split by episode (scikit-learn).</p>",
        _heatmap(report, scores, "held-out accuracy / R²", "decoding"),
        _table(results),
    ]
    condition = _condition(variables, categorical)
    # Step by step for the first recurrent layer (the policy's in the shipped brains).
    state_layers = [
        key for key in layers if key.startswith("layer/") and any(k in key for k in RECURRENT)
    ][:1]
    if condition is not None and state_layers:
        parts.append(
            _decoding_over_time(
                recording, layers, state_layers, variables[condition], condition, report
            )
        )
    report.add("Decoding", *parts)


def _decoding_over_time(
    recording: Recording,
    layers: dict[str, np.ndarray],
    keys: list[str],
    labels: np.ndarray,
    name: str,
    report: Report,
) -> str:
    steps = recording.step
    last = int(np.percentile(steps, 95))
    fig, ax = plt.subplots(figsize=(5, 3))
    over_time: dict[str, list[float]] = {}
    shown = range(0, last + 1, OVER_TIME_STRIDE)
    for key in keys:
        scores = []
        for step in shown:
            rows = steps == step
            scores.append(
                decode(layers[key][rows], labels[rows], recording.episode[rows], True).score
            )
        over_time[key] = scores
        ax.plot(list(shown), scores, label=key.removeprefix("layer/"))
    ax.set_xlabel("control step in the episode")
    ax.set_ylabel(f"{name} decoding accuracy")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7)
    report.metrics.setdefault("decoding_over_time", {})[name] = {"steps": list(shown), **over_time}
    return report.figure(fig, "decoding_over_time")


def _pca_section(
    report: Report,
    recording: Recording,
    state: np.ndarray,
    variables: dict[str, np.ndarray],
    categorical: frozenset[str],
) -> Any:
    components = principal_components(state, min(PCS, state.shape[1]))
    projected = components.project(state)
    report.metrics["pca"] = {"explained_variance": components.explained.tolist()}
    condition = _condition(variables, categorical)
    labels = variables[condition] if condition else np.zeros(len(state), dtype=int)
    fig, ax = plt.subplots(figsize=(5, 4))
    colours = plt.get_cmap("tab10")
    seen: set[int] = set()
    for episode in np.unique(recording.episode)[:60]:
        rows = recording.episode == episode
        label = int(labels[rows][0])
        ax.plot(
            projected[rows, 0],
            projected[rows, 1],
            color=colours(label % 10),
            lw=0.8,
            alpha=0.7,
            label=None if label in seen else f"{condition} {label}",
        )
        ax.plot(
            projected[rows, 0][-1], projected[rows, 1][-1], "o", color=colours(label % 10), ms=3
        )
        seen.add(label)
    ax.set_xlabel(f"PC1 ({components.explained[0]:.0%})")
    ax.set_ylabel(f"PC2 ({components.explained[1]:.0%})")
    ax.legend(fontsize=7)
    report.add(
        "PCA of the recurrent state",
        f"<p>The policy's recurrent state ({state.shape[1]} values: h and c) projected on its "
        f"first principal components; explained variance "
        f"{', '.join(f'{v:.1%}' for v in components.explained)}. One line per episode, "
        "coloured by condition; dots mark the episode's last step.</p>",
        report.figure(fig, "pca"),
    )
    return components


def _sindy_section(
    report: Report, recording: Recording, state: np.ndarray, components: Any
) -> None:
    projected = components.project(state)
    scale = projected.std(axis=0)
    standardized = projected / scale
    goal = recording["input/goal"].astype(np.float64) if "input/goal" in recording else None
    inputs = None
    if goal is not None:
        goal_pcs = principal_components(goal, INPUT_PCS).project(goal)
        inputs = goal_pcs / goal_pcs.std(axis=0)
    trajectories, held = [], []
    for episode in np.unique(recording.episode):
        rows = np.flatnonzero(recording.episode == episode)
        if len(rows) >= 3:
            trajectories.append(standardized[rows])
            if inputs is not None:
                held.append(inputs[rows])
    dt = float(recording.meta("control_step_s") or 1.0)
    names = [f"z{i + 1}" for i in range(projected.shape[1])] + [
        f"g{i + 1}" for i in range(INPUT_PCS if inputs is not None else 0)
    ]
    fit = fit_sindy(trajectories, dt, discrete_time=True, inputs=held or None, names=names)
    report.metrics["sindy"] = {
        "equations": fit.equations,
        "terms": int((fit.coefficients != 0).sum()),
        "one_step_r2": fit.one_step_r2,
        "persistence_r2": fit.persistence_r2,
        "rollout_r2": fit.rollout_r2,
    }
    equations = "\n".join(
        f"{name}[t+1] = {equation}" for name, equation in zip(names, fit.equations, strict=False)
    )
    report.add(
        "SINDy on the leading components",
        f"<p>Discrete-time SINDy (pysindy, STLSQ, polynomials up to degree 2) on the first "
        f"{projected.shape[1]} principal components of the recurrent state (z, "
        f"standardised), with the first {INPUT_PCS} principal components of the goal input "
        "(g, held within an episode) as inputs; fitted on 75 % of the episodes, scored on "
        "the rest.</p>",
        f"<pre>{html.escape(equations)}</pre>",
        f"<p>Held-out one-step R² {fit.one_step_r2:.3f} (a model that predicts no change: "
        f"{fit.persistence_r2:.3f}); free-rollout R² {fit.rollout_r2:.3f}.</p>",
    )


def _fixed_point_section(
    report: Report,
    recording: Recording,
    state: np.ndarray,
    components: Any,
    variables: dict[str, np.ndarray],
    categorical: frozenset[str],
    rng: np.random.Generator,
) -> None:
    if recording.meta("brain") is None:
        report.add(
            "Fixed points of the recurrent cell",
            "<p>Not searched: the recording does not say which brain made it (meta/brain and "
            "meta/weights, which neuroloop evaluate --record writes).</p>",
        )
        return
    brain = brain_from_recording(recording)
    condition = _condition(variables, categorical)
    labels = variables[condition] if condition else np.zeros(len(state), dtype=int)
    settled = recording.step >= np.percentile(recording.step, 95) - SETTLED_STEPS
    found: dict[str, list[dict[str, Any]]] = {}
    slowest: dict[str, dict[str, Any]] = {}
    fig, ax = plt.subplots(figsize=(5, 4))
    projected = components.project(state)
    ax.scatter(projected[:, 0], projected[:, 1], s=1, color="0.8")
    colours = plt.get_cmap("tab10")
    for label in np.unique(labels)[:MAX_CONDITIONS]:
        rows = labels == label
        held = {
            name: recording[f"input/{name}"][rows & settled].mean(axis=0)
            for name in brain.policy_modalities
        }
        visited = np.flatnonzero(rows)
        starts = state[rng.choice(visited, FIXED_POINT_STARTS)]
        starts = starts + START_NOISE * rng.normal(size=starts.shape)
        update = policy_update(brain, held)
        minima, speeds = minimise_speed(update, starts, FIXED_POINT_ITERATIONS)
        points = fixed_points_among(update, minima, speeds, FIXED_POINT_TOLERANCE)
        slowest[str(int(label))] = _point_metrics(linearise(update, minima[[speeds.argmin()]])[0])
        found[str(int(label))] = [_point_metrics(point) for point in points]
        for point in points:
            xy = components.project(point.state[None])[0]
            ax.plot(
                xy[0],
                xy[1],
                "o" if point.stable else "x",
                color=colours(int(label) % 10),
                ms=7,
                mfc="none" if not point.stable else colours(int(label) % 10),
            )
    ax.set_xlabel("PC1")
    ax.set_ylabel("PC2")
    ax.set_title("fixed points per condition (o stable, x unstable)", fontsize=9)
    report.metrics["fixed_points"] = {
        "condition": condition,
        "by_condition": found,
        "slowest_by_condition": slowest,
    }
    rows = "".join(
        f"<tr><td>{label}</td><td>{len(points)}</td>"
        f"<td>{sum(p['stable'] for p in points)}</td>"
        f"<td>{', '.join(format(p['max_abs_eigenvalue'], '.3f') for p in points)}</td>"
        f"<td>{slowest[label]['speed']:.3g}</td>"
        f"<td>{slowest[label]['max_abs_eigenvalue']:.3f}</td></tr>"
        for label, points in found.items()
    )
    report.add(
        "Fixed points of the recurrent cell",
        f"<p>For each {condition or 'recording'} condition, the policy's inputs are held at "
        f"their mean over the last {SETTLED_STEPS} steps of its episodes, and "
        f"½‖F(h, u) - h‖² is minimised from {FIXED_POINT_STARTS} visited states (plus noise); "
        "minima below "
        f"{FIXED_POINT_TOLERANCE:g} are fixed points, merged when closer than 1e-3. Stable: "
        "every Jacobian eigenvalue inside the unit circle.</p>",
        "<table><tr><th>condition</th><th>fixed points</th><th>stable</th>"
        "<th>largest |λ| of each</th><th>slowest q reached</th><th>largest |λ| there</th>"
        f"</tr>{rows}</table>",
        report.figure(fig, "fixed_points"),
    )


def _point_metrics(point: FixedPoint) -> dict[str, Any]:
    return {
        "stable": point.stable,
        "speed": point.speed,
        "found_from_starts": point.found,
        "max_abs_eigenvalue": float(np.abs(point.eigenvalues).max()),
        "leading_eigenvalues": [[float(z.real), float(z.imag)] for z in point.eigenvalues[:5]],
        "unstable_directions": point.unstable_directions,
    }


# -- output --------------------------------------------------------------------------------


def _heatmap(report: Report, table: dict[str, dict[str, float]], title: str, name: str) -> str:
    rows = list(table)
    columns = list(next(iter(table.values())))
    values = np.array([[table[r][c] for c in columns] for r in rows])
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(columns), 0.9 + 0.32 * len(rows)))
    image = ax.imshow(
        values, cmap="magma", vmin=min(0.0, float(np.nanmin(values))), vmax=1.0, aspect="auto"
    )
    ax.set_xticks(range(len(columns)), columns, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    for (i, j), value in np.ndenumerate(values):
        ax.text(
            j,
            i,
            f"{value:.2f}",
            ha="center",
            va="center",
            fontsize=7,
            color="w" if value < 0.6 else "k",
        )
    fig.colorbar(image, ax=ax)
    ax.set_title(title, fontsize=9)
    return report.figure(fig, name)


def _table(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    variables = list(next(iter(results.values())))
    head = "".join(f"<th>{html.escape(v)}</th>" for v in variables)
    body = ""
    for layer, row in results.items():
        cells = "".join(
            f"<td>{row[v]['score']:.3f} ± {row[v]['std']:.3f} "
            f"<small>(chance {row[v]['chance']:.2f})</small></td>"
            for v in variables
        )
        body += f"<tr><td>{html.escape(layer)}</td>{cells}</tr>"
    return f"<table><tr><th>layer</th>{head}</tr>{body}</table>"


def _html(recording: Recording, report: Report) -> str:
    info = report.metrics["recording"]
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
        "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>neuroloop analyze</title>"
        f"<style>{style}</style></head><body><h1>What the brain computes</h1>"
        f"<p>{html.escape(str(recording.path))}: {info['episodes']} episodes, "
        f"{info['rows']} time steps; analysed in {report.metrics['seconds']} s.</p>"
        + "\n".join(report.sections)
        + "</body></html>\n"
    )


def _plain(value: Any) -> Any:
    """JSON-ready: numpy scalars to Python numbers, NaN and infinities to null."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
