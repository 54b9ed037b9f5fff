"""Action distributions against scipy.stats, seeded sampling, and the Keras policy heads."""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np
import pytest
import scipy.optimize
import scipy.stats
import tensorflow as tf

from neuroloop.brain.distributions import (
    BETA_ACTION_EPSILON,
    DEFAULT_N_BINS,
    BetaDistribution,
    GaussianDistribution,
    MultiCategoricalDistribution,
    StateIndependentLogStd,
    get_distribution,
)

N_SAMPLES = 4000
KS_MIN_PVALUE = 1e-3
FEATURES = 5

BETA_PARAMS = [
    (np.array([[1.5, 2.0, 7.0]]), np.array([[1.5, 5.0, 1.2]])),
    (np.array([[1.01, 30.0], [3.0, 1.3]]), np.array([[2.0, 30.0], [9.0, 1.01]])),
]
GAUSSIAN_PARAMS = [
    (np.array([[0.0, 1.5, -2.0]]), np.array([[0.0, -1.0, 0.7]])),
    (np.array([[3.0], [-0.2]]), np.array([[-2.5], [1.5]])),
]
LOGITS = [
    np.array([[[0.0, 1.0, -1.0, 2.0], [3.0, 3.0, 0.0, -5.0]]]),
    np.array([[[0.1, 0.2, 0.3, 0.4]], [[-7.0, 0.0, 7.0, 1.0]]]),
]


def _probs(logits: np.ndarray) -> np.ndarray:
    return scipy.special.softmax(logits, axis=-1)


@pytest.mark.parametrize(("alpha", "beta"), BETA_PARAMS)
def test_beta_matches_scipy(alpha: np.ndarray, beta: np.ndarray) -> None:
    dist = BetaDistribution(alpha.shape[-1])
    params = {"alpha": alpha, "beta": beta}
    actions = np.clip(np.random.default_rng(0).uniform(size=alpha.shape), 0.01, 0.99)

    expected_log_prob = scipy.stats.beta.logpdf(actions, alpha, beta).sum(axis=-1)
    expected_entropy = scipy.stats.beta.entropy(alpha, beta).sum(axis=-1)
    np.testing.assert_allclose(dist.log_prob(params, actions), expected_log_prob, rtol=1e-10)
    np.testing.assert_allclose(dist.entropy(params), expected_entropy, rtol=1e-10, atol=1e-12)

    mode = dist.mode(params).numpy()
    for a, b, m in zip(alpha.ravel(), beta.ravel(), mode.ravel(), strict=True):
        peak = scipy.optimize.minimize_scalar(
            lambda x, a=a, b=b: -scipy.stats.beta.logpdf(x, a, b),
            bounds=(0.0, 1.0),
            method="bounded",
            options={"xatol": 1e-10},
        )
        assert m == pytest.approx(peak.x, abs=1e-5)


def test_beta_float32_matches_scipy() -> None:
    alpha, beta = (x.astype(np.float32) for x in BETA_PARAMS[0])
    actions = np.array([[0.3, 0.5, 0.9]], np.float32)
    dist = BetaDistribution(3)
    log_prob = dist.log_prob({"alpha": alpha, "beta": beta}, actions)
    assert log_prob.dtype == tf.float32
    expected = scipy.stats.beta.logpdf(actions, alpha, beta).sum(axis=-1)
    np.testing.assert_allclose(log_prob, expected, rtol=1e-5)


def test_beta_log_prob_is_finite_at_the_bounds() -> None:
    dist = BetaDistribution(2)
    params = {"alpha": np.array([[2.0, 3.0]]), "beta": np.array([[4.0, 1.5]])}
    log_prob = dist.log_prob(params, np.array([[0.0, 1.0]]))
    clipped = np.array([[BETA_ACTION_EPSILON, 1.0 - BETA_ACTION_EPSILON]])
    expected = scipy.stats.beta.logpdf(clipped, params["alpha"], params["beta"]).sum(axis=-1)
    assert np.isfinite(log_prob.numpy()).all()
    np.testing.assert_allclose(log_prob, expected, rtol=1e-6)


def test_beta_mode_at_the_bounds() -> None:
    dist = BetaDistribution(5)
    alpha = np.array([0.5, 3.0, 1.0, 0.5, 0.8])
    beta = np.array([3.0, 0.5, 1.0, 0.9, 0.5])
    np.testing.assert_array_equal(
        dist.mode({"alpha": alpha, "beta": beta}), [0.0, 1.0, 0.5, 0.0, 1.0]
    )


@pytest.mark.parametrize(("mean", "log_std"), GAUSSIAN_PARAMS)
def test_gaussian_matches_scipy(mean: np.ndarray, log_std: np.ndarray) -> None:
    dist = GaussianDistribution(mean.shape[-1])
    params = {"mean": mean, "log_std": log_std}
    actions = np.random.default_rng(1).normal(size=mean.shape) * 3.0
    std = np.exp(log_std)

    expected_log_prob = scipy.stats.norm.logpdf(actions, mean, std).sum(axis=-1)
    expected_entropy = scipy.stats.norm.entropy(mean, std).sum(axis=-1)
    np.testing.assert_allclose(dist.log_prob(params, actions), expected_log_prob, rtol=1e-10)
    np.testing.assert_allclose(dist.entropy(params), expected_entropy, rtol=1e-10)
    np.testing.assert_allclose(dist.mode(params), scipy.stats.norm.median(mean, std))


def test_gaussian_accepts_an_unbroadcast_log_std() -> None:
    dist = GaussianDistribution(2)
    mean = np.zeros((4, 3, 2))
    entropy = dist.entropy({"mean": mean, "log_std": np.array([0.0, 1.0])})
    expected = scipy.stats.norm.entropy(0.0, [1.0, math.e]).sum()
    assert entropy.shape == (4, 3)
    np.testing.assert_allclose(entropy, np.full((4, 3), expected), rtol=1e-12)


@pytest.mark.parametrize("logits", LOGITS)
def test_multicategorical_matches_scipy(logits: np.ndarray) -> None:
    *batch, action_dim, n_bins = logits.shape
    dist = MultiCategoricalDistribution(action_dim, n_bins=n_bins)
    params = {"logits": logits}
    probs = _probs(logits)
    actions = np.random.default_rng(2).integers(0, n_bins, size=(*batch, action_dim))

    one_hot = np.eye(n_bins)[actions]
    expected_log_prob = np.zeros(batch)
    expected_entropy = np.zeros(batch)
    for index in np.ndindex(*batch, action_dim):
        joint = scipy.stats.multinomial(1, probs[index])
        expected_log_prob[index[:-1]] += joint.logpmf(one_hot[index])
        expected_entropy[index[:-1]] += joint.entropy()

    np.testing.assert_allclose(dist.log_prob(params, actions), expected_log_prob, rtol=1e-10)
    np.testing.assert_allclose(dist.entropy(params), expected_entropy, rtol=1e-8)
    np.testing.assert_array_equal(dist.mode(params), probs.argmax(axis=-1))
    assert dist.mode(params).dtype == tf.int32


def test_sampling_is_seeded_and_reproducible() -> None:
    params_by_dist: dict[str, dict[str, np.ndarray]] = {
        "beta": {"alpha": np.full((3, 2), 2.0), "beta": np.full((3, 2), 3.0)},
        "gaussian": {"mean": np.zeros((3, 2)), "log_std": np.zeros((3, 2))},
        "multicategorical": {"logits": np.zeros((3, 2, DEFAULT_N_BINS))},
    }
    for name, params in params_by_dist.items():
        dist = get_distribution(name, 2)
        first = dist.sample(params, seed=(1, 2)).numpy()
        np.testing.assert_array_equal(first, dist.sample(params, seed=(1, 2)))
        assert not np.array_equal(first, dist.sample(params, seed=(1, 3)))
        assert first.shape == (3, 2)

        from_a = dist.sample(params, tf.random.Generator.from_seed(7)).numpy()
        from_b = dist.sample(params, tf.random.Generator.from_seed(7)).numpy()
        np.testing.assert_array_equal(from_a, from_b)
        generator = tf.random.Generator.from_seed(7)
        dist.sample(params, generator)
        assert not np.array_equal(from_a, dist.sample(params, generator))


def test_samples_follow_the_distribution() -> None:
    seed = 11
    beta = BetaDistribution(1).sample(
        {"alpha": np.full((N_SAMPLES, 1), 2.0), "beta": np.full((N_SAMPLES, 1), 5.0)}, seed
    )
    samples = beta.numpy().ravel()
    assert ((samples >= 0.0) & (samples <= 1.0)).all()
    assert scipy.stats.kstest(samples, scipy.stats.beta(2.0, 5.0).cdf).pvalue > KS_MIN_PVALUE

    gaussian = GaussianDistribution(1).sample(
        {"mean": np.full((N_SAMPLES, 1), 1.0), "log_std": np.full((N_SAMPLES, 1), -1.0)}, seed
    )
    norm = scipy.stats.norm(1.0, math.exp(-1.0))
    assert scipy.stats.kstest(gaussian.numpy().ravel(), norm.cdf).pvalue > KS_MIN_PVALUE

    logits = np.log([0.1, 0.6, 0.3])
    bins = MultiCategoricalDistribution(1, n_bins=3).sample(
        {"logits": np.broadcast_to(logits, (N_SAMPLES, 1, 3))}, seed
    )
    assert bins.dtype == tf.int32
    counts = np.bincount(bins.numpy().ravel(), minlength=3)
    assert scipy.stats.chisquare(counts, N_SAMPLES * np.exp(logits)).pvalue > KS_MIN_PVALUE


def test_distributions_run_inside_tf_function() -> None:
    dist = BetaDistribution(2)
    generator = tf.random.Generator.from_seed(3)

    @tf.function
    def step(alpha: tf.Tensor, beta: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        params = {"alpha": alpha, "beta": beta}
        actions = dist.sample(params, generator)
        return actions, dist.log_prob(params, actions) + dist.entropy(params)

    actions, total = step(tf.fill((4, 2), 2.0), tf.fill((4, 2), 3.0))
    assert actions.shape == (4, 2)
    assert total.shape == (4,)
    assert np.isfinite(total.numpy()).all()


def test_beta_head_gives_concentrations_above_one() -> None:
    dist = BetaDistribution(3)
    features = keras.Input((None, FEATURES))
    model = keras.Model(features, dist.build_head(features))
    inputs = np.random.default_rng(3).normal(scale=10.0, size=(4, 2, FEATURES))
    params = model(inputs)
    assert set(params) == {"alpha", "beta"}
    for key in ("alpha", "beta"):
        assert params[key].shape == (4, 2, 3)
        assert (params[key].numpy() > 1.0).all()


def test_multicategorical_head_shapes_logits_per_joint() -> None:
    dist = MultiCategoricalDistribution(3)
    features = keras.Input((None, FEATURES))
    model = keras.Model(features, dist.build_head(features))
    logits = model(np.ones((2, 4, FEATURES), np.float32))["logits"]
    assert logits.shape == (2, 4, 3, DEFAULT_N_BINS)
    assert dist.param_shapes == {"logits": (3, DEFAULT_N_BINS)}


def test_log_std_layer_round_trips(tmp_path: Path) -> None:
    layer = StateIndependentLogStd(initial_log_std=-0.5, name="log_std")
    clone = StateIndependentLogStd.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()

    dist = GaussianDistribution(2, initial_log_std=-0.5)
    features = keras.Input((None, FEATURES))
    model = keras.Model(features, dist.build_head(features))
    log_std_layer = model.get_layer("log_std")
    assert [w.shape for w in log_std_layer.trainable_weights] == [(2,)]
    log_std_layer.log_std.assign([0.25, -1.0])
    inputs = np.random.default_rng(4).normal(size=(3, 2, FEATURES)).astype(np.float32)
    before = model(inputs)
    np.testing.assert_allclose(before["log_std"], np.broadcast_to([0.25, -1.0], (3, 2, 2)))

    path = tmp_path / "gaussian_head.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    after = loaded(inputs)
    for key in ("mean", "log_std"):
        np.testing.assert_allclose(after[key], before[key], rtol=1e-6)


@pytest.mark.parametrize("value", [math.nan, math.inf, "0.0"])
def test_log_std_layer_rejects_bad_values(value: object) -> None:
    with pytest.raises(ValueError, match="initial_log_std"):
        StateIndependentLogStd(initial_log_std=value)  # type: ignore[arg-type]


def test_registry_errors() -> None:
    with pytest.raises(ValueError, match=r"expected one of \['beta', 'gaussian', 'multi"):
        get_distribution("dirichlet", 2)
    with pytest.raises(ValueError, match="action_dim"):
        get_distribution("beta", 0)
    with pytest.raises(ValueError, match="n_bins"):
        get_distribution("multicategorical", 2, n_bins=1)
    with pytest.raises(TypeError):
        get_distribution("beta", 2, n_bins=3)
    with pytest.raises(ValueError, match="initial_log_std"):
        get_distribution("gaussian", 2, initial_log_std=math.nan)
    with pytest.raises(KeyError, match="beta"):
        BetaDistribution(2).mode({"alpha": np.ones((1, 2))})
    with pytest.raises(ValueError, match="seed"):
        GaussianDistribution(1).sample({"mean": [[0.0]], "log_std": [[0.0]]}, seed=[1, 2, 3])
