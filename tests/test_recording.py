"""Recording what a brain computes: layer datapacks, streamed step recordings, evaluate --record."""

from __future__ import annotations

import io
import json
from pathlib import Path

import keras
import numpy as np
import pytest

from neuroloop.brain.loading import build_brain
from neuroloop.brain.weights import assign_flat_weights
from neuroloop.plugins.experiments.reach import FINGERS, STAY, THUMB, ReachTask
from neuroloop.recording import NpzStream, Recording, StepRecorder
from tests.processes import run_neuroloop as neuroloop
from tests.test_keras_brain import WORLDS, act, engine, inputs, start

TOLERANCE = 1e-5


def test_record_publishes_the_named_layers_after_each_step() -> None:
    host = start(Record=["policy_embedding", "policy_lstm"])
    names = ["layer:policy_embedding", "layer:policy_lstm", "policy_state_h"]
    assert set(names) <= set(engine(host).datapack_names)
    sent = inputs()
    first = act(host, sent, names)
    second = act(host, sent, names)
    host.shutdown()
    # The LSTM layer's output is its new h: the state the brain carries to the next step.
    np.testing.assert_allclose(second["layer:policy_lstm"], second["policy_state_h"])
    assert not np.allclose(first["layer:policy_lstm"], second["layer:policy_lstm"])
    # The embedding, computed by the brain's own layers outside the engine.
    brain = engine(host).brain
    probe = keras.Model(brain.joint.input, brain.joint.get_layer("policy_embedding").output)
    values = {name: value[:, np.newaxis] for name, value in sent}
    values.update(brain.initial_state(WORLDS))  # the probe takes them; the embedding ignores them
    expected = probe(brain.select_inputs(probe, values))[:, 0]
    np.testing.assert_allclose(second["layer:policy_embedding"], expected, atol=TOLERANCE)
    assert second["layer:policy_embedding"].shape == (WORLDS, 8)


def test_record_all_publishes_every_layer_and_unknown_names_are_refused() -> None:
    host = start(Record="all")
    brain = engine(host).brain
    layers = [
        layer.name for layer in brain.joint.layers if not isinstance(layer, keras.layers.InputLayer)
    ]
    recorded = [name for name in engine(host).datapack_names if name.startswith("layer:")]
    assert recorded == [f"layer:{name}" for name in layers]
    out = act(host, inputs(), recorded)
    host.shutdown()
    assert all(out[name].shape[0] == WORLDS for name in recorded)
    with pytest.raises(
        ValueError, match=r"Record to be 'all' or names.*Received: \['policy_lsmt'\]"
    ):
        start(Record=["policy_lsmt"])


def test_an_npz_stream_keeps_rows_on_disk_until_it_writes_the_archive(tmp_path: Path) -> None:
    path = tmp_path / "rows.npz"
    stream = NpzStream(path)
    chunks = [np.arange(30_000, dtype=np.float32).reshape(10_000, 3) + i for i in range(3)]
    for chunk in chunks:
        stream.append("x", chunk)
    stream.put("label", np.array(["a", "b", "c"]))
    on_disk = sum(f.stat().st_size for f in tmp_path.glob(".rows.npz.*/*"))
    # Not held in memory: all but what the file buffer holds is on disk already.
    assert on_disk >= sum(chunk.nbytes for chunk in chunks) - io.DEFAULT_BUFFER_SIZE
    with pytest.raises(ValueError, match=r"x: expected rows of float32 with shape \(3,\)"):
        stream.append("x", np.zeros((1, 2), dtype=np.float32))
    stream.close()
    assert not list(tmp_path.glob(".rows.npz.*"))
    with np.load(path) as archive:
        np.testing.assert_array_equal(archive["x"], np.concatenate(chunks))
        assert archive["label"].tolist() == ["a", "b", "c"]


def test_a_step_recorder_numbers_episodes_and_labels_every_column(tmp_path: Path) -> None:
    path = tmp_path / "steps.npz"
    with StepRecorder(path) as recorder:
        for stretch in range(2):
            starts = np.zeros((4, 2), dtype=bool)
            starts[2, 1] = True  # world 1 starts a new episode at step 2
            state = np.arange(4 * 2 * 3, dtype=np.float32).reshape(4, 2, 3) + 1000 * stretch
            recorder.add({"state/h": state, "reward": np.ones((4, 2))}, starts)
        recorder.meta("brain", json.dumps({"Brain": "lstm"}))
    recording = Recording(path)
    # World-major rows: world 0's four steps, then world 1's two episodes of two steps.
    assert recording.episode.tolist() == [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 3, 3, 4, 4, 5, 5]
    assert recording.step.tolist() == [0, 1, 2, 3, 0, 1, 0, 1] * 2
    assert recording["world"].tolist() == [0, 0, 0, 0, 1, 1, 1, 1] * 2
    np.testing.assert_array_equal(recording["state/h"][4], [3, 4, 5])  # step 0, world 1
    assert recording.columns("state/h") == ["h[0]", "h[1]", "h[2]"]
    assert recording.columns("reward") == ["reward"]
    assert json.loads(str(recording.meta("brain"))) == {"Brain": "lstm"}
    assert recording.keys() == ["episode", "step", "world", "state/h", "reward"]


def test_reach_conditions_name_the_finger_that_the_goal_moves() -> None:
    task = ReachTask()
    rng = np.random.default_rng(0)
    # Four fingertips in a row, the thumb below them: a few centimetres apart.
    spread = [[0.03, -0.1, 0.2], [0.01, -0.1, 0.2], [-0.01, -0.1, 0.2], [-0.03, -0.1, 0.2]]
    tips = np.tile([*spread, [0.03, -0.04, 0.15]], (200, 1, 1))
    state = {"fingertip_positions": tips, "palm_position": np.zeros((200, 3))}
    goal = task.sample_goal(rng, state).reshape(200, 5, 3)
    moved = ~np.isclose(goal, tips).all(axis=-1)[:, : len(FINGERS)]
    assert moved.sum(axis=1).max() == 1 and (~np.isclose(goal[:, THUMB], tips[:, THUMB])).any()
    expected = np.where(moved.any(axis=1), moved.argmax(axis=1), STAY)
    found = task.conditions(goal.reshape(200, 15))["target_finger"]
    np.testing.assert_array_equal(found, expected)
    assert set(found) == {0, 1, 2, 3, STAY}


def test_evaluate_record_reproduces_the_brains_own_steps(tmp_path: Path) -> None:
    path = tmp_path / "reach.npz"
    args = ("--weights", "reach_lstm", "--episodes", "1", "--horizon", "50", "--deterministic")
    result = neuroloop("evaluate", "reach", *args, "--record", path)
    assert result.returncode == 0, result.stderr
    recording = Recording(path)
    for key in ("input/proprioception", "action", "reward", "task/goal", "task/target_finger"):
        assert key in recording, key
    for key in ("task/fingertip_positions", "task/joint_positions", "layer/policy_lstm"):
        assert key in recording, key
    assert recording.columns("state/policy_state_h")[0] == "policy_state_h[0]"
    # Rebuild the brain from the recording alone and step it offline on world 0's episode.
    meta = json.loads(str(recording.meta("brain")))
    brain = build_brain(
        meta["Brain"],
        input_shapes={name: tuple(shape) for name, shape in meta["InputShapes"].items()},
        action_dim=meta["ActionDim"],
        distribution=meta["Distribution"],
        distribution_options=meta["DistributionOptions"],
        **meta["BrainOptions"],
    )
    assign_flat_weights(brain.joint, recording.meta("weights"))
    rows = np.flatnonzero(recording.episode == 0)
    values = {name: recording[f"input/{name}"][rows][:, np.newaxis] for name in meta["InputShapes"]}
    values.update({name: recording[f"state/{name}"][rows] for name in brain.state_names})
    out = brain.joint(brain.select_inputs(brain.joint, values), training=False)
    params = {key: out[key][:, 0] for key in brain.distribution.param_names}
    action = np.asarray(brain.distribution.mode(params))
    np.testing.assert_allclose(action, recording["action"][rows], atol=TOLERANCE)
    new_h = np.asarray(out["policy_state_h"])
    np.testing.assert_allclose(new_h, recording["layer/policy_lstm"][rows], atol=TOLERANCE)
    # The state recorded at the next step is the one this step produced.
    np.testing.assert_allclose(
        new_h[:-1], recording["state/policy_state_h"][rows][1:], atol=TOLERANCE
    )


PENDULUM_BRAIN = Path(__file__).resolve().parents[1] / "simulation_configs" / "pendulum_brain.json"


def test_run_keep_records_brain_outputs_that_no_function_reads(tmp_path: Path) -> None:
    plain, kept = tmp_path / "plain.npz", tmp_path / "kept.npz"
    common = ("run", PENDULUM_BRAIN, "--steps", "5", "--quiet", "--seed", "1")
    assert neuroloop(*common, "--record", plain).returncode == 0
    result = neuroloop(*common, "--record", kept, "--keep", "brain:value,log_prob")
    assert result.returncode == 0, result.stderr
    with np.load(plain) as without, np.load(kept) as archive:
        assert "from_engine/brain/value" not in without.files
        assert archive["from_engine/brain/value"].shape[1:] == (1,)
        assert len(archive["from_engine/brain/log_prob"]) >= 5
    wrong = neuroloop(*common, "--keep", "brain:valeu")
    assert wrong.returncode == 2
    assert "--keep brain:valeu: expected ENGINE:NAME[,NAME]" in wrong.stderr


@pytest.mark.parametrize("name", ["missing/reach.npz", "reach.txt"])
def test_evaluate_refuses_a_record_path_before_the_run(name: str, tmp_path: Path) -> None:
    result = neuroloop("evaluate", "reach", "--weights", "reach_lstm", "--record", tmp_path / name)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("neuroloop evaluate: error: --record: expected")
    assert "Traceback" not in result.stderr
