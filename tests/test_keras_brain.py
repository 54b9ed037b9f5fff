"""KerasBrainEngine: real TensorFlow brains, driven in-process through EngineHost."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from neuroloop.engine import EngineHost
from neuroloop.plugins.engines.keras_brain import KerasBrainEngine, flat_weights

NAME = "brain"
WORLDS = 3
ACTION_DIM = 2
STEP_NS = 20_000_000
INPUT_SHAPES = {"proprioception": [5], "goal": [3]}
TINY: dict[str, dict[str, Any]] = {
    "lstm": {"embedding_units": 8, "recurrent_units": 6},
    "mlp": {"hidden_units": [8]},
}
LSTM_STATE_NAMES = ["policy_state_h", "policy_state_c", "value_state_h", "value_state_c"]
LSTM_STATE_SIZE = 4 * TINY["lstm"]["recurrent_units"]
"""policy h, c and value h, c."""
BETA_OUTPUTS = ["action", "log_prob", "value", "alpha", "beta", *LSTM_STATE_NAMES]
TOLERANCE = 1e-5
N_BINS = 5


def config(brain: str = "lstm", directory: Path | None = None, **extra: Any) -> dict[str, Any]:
    section: dict[str, Any] = {
        "EngineName": NAME,
        "EngineTimestep": STEP_NS / 1e9,
        "EngineExtraConfigs": {
            "Brain": brain,
            "BrainOptions": TINY.get(brain, {}),
            "InputShapes": INPUT_SHAPES,
            "ActionDim": ACTION_DIM,
            "Worlds": WORLDS,
            **extra,
        },
    }
    if directory is not None:
        section["ConfigDirectory"] = str(directory)
    return section


def start(brain: str = "lstm", directory: Path | None = None, **extra: Any) -> EngineHost:
    host = EngineHost(KerasBrainEngine(NAME))
    host.initialize(config(brain, directory, **extra))
    return host


def engine(host: EngineHost) -> KerasBrainEngine:
    assert isinstance(host.engine, KerasBrainEngine)
    return host.engine


def inputs(seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """Different inputs per world, so worlds can be told apart."""
    rng = np.random.default_rng(seed)
    return [
        (name, rng.normal(size=(WORLDS, *shape)).astype(np.float32))
        for name, shape in INPUT_SHAPES.items()
    ]


def act(
    host: EngineHost, sets: list[tuple[str, Any]], names: list[str] | None = None
) -> dict[str, Any]:
    return host.step(sets, STEP_NS, BETA_OUTPUTS if names is None else names)[1]


def read(host: EngineHost, names: list[str]) -> dict[str, Any]:
    """Datapacks without stepping."""
    return host.step([], 0, names)[1]


def save_weights(host: EngineHost, path: Path) -> Path:
    engine(host).brain.joint.save_weights(path)
    return path


@pytest.fixture(scope="module")
def lstm_host() -> Iterator[EngineHost]:
    """One tiny LSTM engine shared by the tests that only check errors."""
    host = start()
    yield host
    host.shutdown()


def test_lstm_steps_beta_actions_for_every_world(lstm_host: EngineHost) -> None:
    assert set(engine(lstm_host).datapack_names) == {
        *INPUT_SHAPES,
        "episode_start",
        "weights",
        "checkpoint",
        *BETA_OUTPUTS,
    }
    lstm_host.reset(0)
    assert read(lstm_host, ["action", "value"]) == {"action": None, "value": None}

    out = act(lstm_host, inputs())
    assert out["action"].shape == (WORLDS, ACTION_DIM)
    assert out["action"].dtype == np.float32
    assert np.all((out["action"] >= 0.0) & (out["action"] <= 1.0))
    assert out["log_prob"].shape == (WORLDS,)
    assert np.all(np.isfinite(out["log_prob"]))
    assert out["value"].shape == (WORLDS,)
    assert out["value"].dtype == np.float32
    assert out["alpha"].shape == out["beta"].shape == (WORLDS, ACTION_DIM)
    assert np.all(out["alpha"] > 1.0)
    state = np.concatenate([out[name] for name in LSTM_STATE_NAMES], axis=1)
    assert state.shape == (WORLDS, LSTM_STATE_SIZE)
    assert all(out[name].dtype == np.float32 for name in LSTM_STATE_NAMES)


def test_deterministic_mode_equals_the_eager_model_and_repeats() -> None:
    host = start(Deterministic=True)
    brain = engine(host).brain
    first = act(host, inputs())

    values: dict[str, Any] = {name: x[:, np.newaxis] for name, x in inputs()}
    eager = brain.joint(brain.select_inputs(brain.joint, {**values, **brain.initial_state(WORLDS)}))
    mode = brain.distribution.mode({"alpha": eager["alpha"][:, 0], "beta": eager["beta"][:, 0]})
    np.testing.assert_allclose(first["action"], mode, atol=TOLERANCE)
    np.testing.assert_allclose(first["value"], eager["value"][:, 0, 0], atol=TOLERANCE)
    log_prob = brain.distribution.log_prob(first, first["action"])
    np.testing.assert_allclose(first["log_prob"], log_prob, atol=TOLERANCE)

    host.reset(None)
    again = act(host, inputs())
    for key in BETA_OUTPUTS:
        np.testing.assert_array_equal(again[key], first[key], err_msg=key)


def test_seeded_sampling_is_reproducible_across_engines(tmp_path: Path) -> None:
    first = start(Seed=7)
    weights = save_weights(first, tmp_path / "w.weights.h5")
    second = start(Seed=7, Weights=str(weights))
    other_seed = start(Seed=8, Weights=str(weights))
    runs: dict[str, list[np.ndarray]] = {"first": [], "second": [], "other": []}
    for step in range(3):
        for key, host in (("first", first), ("second", second), ("other", other_seed)):
            runs[key].append(act(host, inputs(step), ["action"])["action"])
    np.testing.assert_array_equal(runs["first"], runs["second"])
    assert not np.allclose(runs["first"], runs["other"])

    first.reset(5)
    second.reset(5)
    after_reset = [act(host, inputs(), ["action"])["action"] for host in (first, second)]
    np.testing.assert_array_equal(after_reset[0], after_reset[1])
    first.reset(5)
    np.testing.assert_array_equal(act(first, inputs(), ["action"])["action"], after_reset[0])


def test_state_is_carried_and_episode_start_resets_only_its_world(tmp_path: Path) -> None:
    host = start(Deterministic=True)
    weights = save_weights(host, tmp_path / "w.weights.h5")
    reference = start(Deterministic=True, Weights=str(weights))

    first = act(host, inputs())
    carried = act(reference, inputs())
    np.testing.assert_array_equal(carried["alpha"], first["alpha"])
    carried = act(reference, inputs())
    assert not np.allclose(carried["alpha"], first["alpha"])
    assert not np.allclose(carried["value"], first["value"])

    restart = np.array([False, True, False])
    host.step([("episode_start", restart)], 0, [])
    named = read(host, LSTM_STATE_NAMES)
    state = np.concatenate([named[name] for name in LSTM_STATE_NAMES], axis=1)
    assert np.all(state[1] == 0.0) and np.all(state[[0, 2]] != 0.0)
    second = act(host, inputs())
    for key in ("action", "alpha", "beta", "value", "log_prob"):
        np.testing.assert_allclose(second[key][1], first[key][1], atol=TOLERANCE, err_msg=key)
        np.testing.assert_allclose(
            second[key][[0, 2]], carried[key][[0, 2]], atol=TOLERANCE, err_msg=key
        )
    assert read(host, ["episode_start"])["episode_start"] is None


def test_weights_datapack_equals_loading_the_weights_file(tmp_path: Path) -> None:
    source = start(Deterministic=True)
    save_weights(source, tmp_path / "w.weights.h5")
    loaded = start(directory=tmp_path, Deterministic=True, Weights="w.weights.h5")
    pushed = start(Deterministic=True)
    checkpointed = start(directory=tmp_path, Deterministic=True)

    expected = act(loaded, inputs())
    before = act(pushed, inputs())
    assert not np.allclose(before["alpha"], expected["alpha"])

    flat = read(source, ["weights"])["weights"]
    assert flat.dtype == np.float32 and flat.ndim == 1
    np.testing.assert_array_equal(flat, flat_weights(engine(source).brain.joint))
    pushed.reset(0)
    after = act(pushed, [("weights", flat), *inputs()])
    checkpointed.reset(0)
    path = str(tmp_path / "w.weights.h5")
    from_checkpoint = act(checkpointed, [("checkpoint", path), *inputs()])
    assert read(checkpointed, ["checkpoint"])["checkpoint"] == path
    for key in ("action", "alpha", "beta", "value", *LSTM_STATE_NAMES):
        np.testing.assert_allclose(after[key], expected[key], atol=TOLERANCE, err_msg=key)
        np.testing.assert_allclose(from_checkpoint[key], expected[key], atol=TOLERANCE)


def test_wrongly_sized_weights_are_rejected(lstm_host: EngineHost) -> None:
    size = flat_weights(engine(lstm_host).brain.joint).size
    with pytest.raises(ValueError, match=rf"\[brain\] set weights: expected .* shape \({size},\)"):
        lstm_host.step([("weights", np.zeros(size + 1, np.float32))], 0, [])
    with pytest.raises(ValueError, match="expected finite weights"):
        lstm_host.step([("weights", np.full(size, np.nan, np.float32))], 0, [])


def test_missing_weights_file_names_engine_key_and_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "w.weights.h5"
    message = (
        r"\[brain\] initialize: EngineExtraConfigs.Weights: expected an existing weights file. "
        f"Received: {re.escape(str(missing))}"
    )
    with pytest.raises(ValueError, match=message):
        start(directory=tmp_path, Weights="nowhere/w.weights.h5")


def test_weights_of_another_brain_are_rejected_and_leave_the_weights(tmp_path: Path) -> None:
    weights = save_weights(start("mlp"), tmp_path / "mlp.weights.h5")
    host = start(directory=tmp_path)
    before = read(host, ["weights"])["weights"]
    with pytest.raises(ValueError, match=r"\[brain\] set checkpoint: the weights in .* do not fit"):
        host.step([("checkpoint", str(weights))], 0, [])
    np.testing.assert_array_equal(read(host, ["weights"])["weights"], before)


def test_the_checkpoint_datapack_loads_only_from_folders_the_config_allows(
    tmp_path: Path,
) -> None:
    """Only under the config's folder or CheckpointDirectories, after resolving links and
    '..'; a forbidden file and a missing one get the same error, so it probes nothing."""
    folders = {name: tmp_path / name for name in ("config", "extra", "outside")}
    source = start(Deterministic=True)
    for folder in folders.values():
        folder.mkdir()
        save_weights(source, folder / "w.weights.h5")
    (folders["config"] / "link.weights.h5").symlink_to(folders["outside"] / "w.weights.h5")
    (folders["config"] / "w.h5").write_bytes(b"")
    host = start(directory=folders["config"], CheckpointDirectories=["../extra"])
    initial = read(host, ["weights"])["weights"]
    trained = read(source, ["weights"])["weights"]
    assert not np.array_equal(initial, trained)
    allowed = (
        "w.weights.h5",
        "../extra/w.weights.h5",
        str(folders["extra"] / "w.weights.h5"),
        "../config/w.weights.h5",
    )
    for path in allowed:
        host.step([("weights", initial)], 0, [])
        host.step([("checkpoint", path)], 0, [])
        loaded = read(host, ["weights", "checkpoint"])
        np.testing.assert_array_equal(loaded["weights"], trained, err_msg=path)
        assert loaded["checkpoint"] == str((folders["config"] / path).resolve())
    refused = (
        str(folders["outside"] / "w.weights.h5"),  # exists, not allowed
        "../outside/w.weights.h5",  # the same by traversal
        "../extra/../outside/w.weights.h5",
        "link.weights.h5",  # a link in the config's folder to a file outside
        str(folders["outside"] / "missing.weights.h5"),  # missing and not allowed
        "missing.weights.h5",  # missing in an allowed folder
        "w.h5",  # not a weights file
        "/etc/passwd",
        "x" * 5000 + ".weights.h5",  # too long a name
        "nul\0.weights.h5",
    )
    roots = f"{folders['config'].resolve()}, {folders['extra'].resolve()}"
    host.step([("weights", initial)], 0, [])
    for path in refused:
        with pytest.raises(ValueError) as caught:
            host.step([("checkpoint", path)], 0, [])
        assert str(caught.value) == (
            f"[brain] set checkpoint: expected an existing .weights.h5 file under {roots} (the "
            f"config's folder and EngineExtraConfigs.CheckpointDirectories). Received: {path!r}"
        )
        np.testing.assert_array_equal(read(host, ["weights"])["weights"], initial, err_msg=path)


def test_input_errors_name_engine_modality_and_shapes(lstm_host: EngineHost) -> None:
    lstm_host.reset(0)
    proprioception, goal = inputs()
    with pytest.raises(
        ValueError,
        match=r"\[brain\] set goal: expected shape \(3, 3\) .* Received: shape \(3, 4\)",
    ):
        lstm_host.step([("goal", np.zeros((WORLDS, 4), np.float32))], 0, [])
    with pytest.raises(ValueError, match=r"\[brain\] step: expected every modality .* no goal"):
        lstm_host.step([proprioception], STEP_NS, [])
    bad = goal[1].copy()
    bad[1, 0] = np.nan
    with pytest.raises(ValueError, match=r"set goal: expected finite values.* worlds \[1\]"):
        lstm_host.step([("goal", bad)], 0, [])
    with pytest.raises(ValueError, match="one of this engine's datapacks"):
        lstm_host.step([("vision", np.zeros((WORLDS, 4, 4, 3)))], 0, [])
    with pytest.raises(ValueError, match=r"set episode_start: expected a bool array of shape"):
        lstm_host.step([("episode_start", np.array([True, False]))], 0, [])


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ValueError, match=r"Wieghts: expected a known key \(did you mean 'Weights'"):
        start(Wieghts="w.weights.h5")
    with pytest.raises(ValueError, match=r"InputShapes.goal: expected an array of exactly 1 elem"):
        start(InputShapes={"goal": [3, 2]})
    with pytest.raises(ValueError, match=r"Brain to be a registered brain \[.*'lstm'.*Brain='tr"):
        start("transformer")
    with pytest.raises(ValueError, match=r"cannot build brain 'lstm'.*recurrent_unit"):
        start(BrainOptions={"recurrent_unit": 4})


def test_multicategorical_gives_bin_indices() -> None:
    host = start(Distribution="multicategorical", DistributionOptions={"n_bins": N_BINS})
    out = act(host, inputs(), ["action", "log_prob", "logits"])
    assert out["action"].dtype == np.int32
    assert out["action"].shape == (WORLDS, ACTION_DIM)
    assert np.all((out["action"] >= 0) & (out["action"] < N_BINS))
    assert out["logits"].shape == (WORLDS, ACTION_DIM, N_BINS)
    assert np.all(out["log_prob"] <= 0.0)


def test_mlp_brain_has_the_same_interface() -> None:
    host = start("mlp", Distribution="gaussian", Deterministic=True)
    names = ["action", "log_prob", "value", "mean", "log_std"]
    first = act(host, inputs(), names)
    second = act(host, [("episode_start", np.ones(WORLDS, bool))], names)
    assert not any("_state_" in name for name in engine(host).datapack_names)
    assert first["action"].shape == first["log_std"].shape == (WORLDS, ACTION_DIM)
    for key in names:
        np.testing.assert_array_equal(second[key], first[key], err_msg=key)
    np.testing.assert_array_equal(first["action"], first["mean"])


def test_brain_builder_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "my_brain.py").write_text(
        textwrap.dedent(
            """
            from neuroloop.plugins.brains.mlp import build_mlp

            def small(input_shapes, distribution, width=4):
                return build_mlp(input_shapes, distribution, hidden_units=(width,))
            """
        )
    )
    host = EngineHost(KerasBrainEngine(NAME))
    section = config("my_brain.py:small", tmp_path)
    section["EngineExtraConfigs"]["BrainOptions"] = {"width": 3}
    host.initialize(section)
    assert act(host, inputs(), ["value"])["value"].shape == (WORLDS,)
    assert engine(host).brain.joint.get_layer("policy_dense0").units == 3
    section["EngineExtraConfigs"]["Brain"] = "my_brain.py:large"
    with pytest.raises(ValueError, match=r"Brain to name a function in .*my_brain.py"):
        host.initialize(section)


def test_the_same_seed_gives_the_same_initial_weights_and_samples() -> None:
    first, second = start(Seed=7), start(Seed=7)
    np.testing.assert_array_equal(
        read(first, ["weights"])["weights"], read(second, ["weights"])["weights"]
    )
    for _ in range(3):
        a, b = act(first, inputs()), act(second, inputs())
        np.testing.assert_array_equal(a["action"], b["action"])
    other = start(Seed=8)
    assert not np.array_equal(
        read(other, ["weights"])["weights"], read(first, ["weights"])["weights"]
    )
