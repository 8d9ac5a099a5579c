import numpy as np
import pytest

from sat_keras.models import losses


def _numpy(x):
    return np.asarray(x)


def test_masked_nll_sums_over_real_tokens_only():
    logits = np.log(np.array([[[0.5, 0.25, 0.25], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]]],
                             "float32"))
    targets = np.array([[1, 1, 0]])  # the last step is padding
    nll = _numpy(losses.masked_nll(targets, logits))
    np.testing.assert_allclose(nll, [-np.log(0.25) - np.log(0.8)], rtol=1e-5)
    per_token = _numpy(losses.masked_nll(targets, logits, normalization="token"))
    np.testing.assert_allclose(per_token, nll / 2, rtol=1e-6)


def test_unknown_normalization_is_rejected():
    with pytest.raises(ValueError, match="normalization must be one of"):
        losses.masked_nll(np.ones((1, 1), "int32"), np.zeros((1, 1, 3)), "batch")


def test_penalty_is_zero_when_every_location_sums_to_one_over_time():
    # T = L = 3, attention moves to a new location at every step.
    alpha = np.eye(3, dtype="float32")[None]  # (1, time, locations)
    targets = np.array([[5, 6, 2]])
    np.testing.assert_allclose(_numpy(losses.doubly_stochastic_penalty(alpha, targets)), [0.0],
                               atol=1e-7)


def test_penalty_masks_attention_at_padded_steps():
    alpha = np.full((1, 3, 2), 0.5, "float32")
    targets = np.array([[5, 2, 0]])  # two real steps: each location gets 0.5 + 0.5
    np.testing.assert_allclose(_numpy(losses.doubly_stochastic_penalty(alpha, targets)), [0.0],
                               atol=1e-7)
    targets = np.array([[2, 0, 0]])  # one real step: (1 - 0.5)^2 * 2 locations
    np.testing.assert_allclose(_numpy(losses.doubly_stochastic_penalty(alpha, targets)), [0.5],
                               rtol=1e-6)


def test_masked_nll_gradient_is_softmax_minus_one_hot_on_real_tokens():
    import tensorflow as tf

    logits = tf.constant(np.random.default_rng(0).normal(size=(1, 3, 4)), tf.float32)
    targets = np.array([[3, 2, 0]])  # the last step is padding
    with tf.GradientTape() as tape:
        tape.watch(logits)
        nll = losses.masked_nll(targets, logits)
    gradient = tape.gradient(nll, logits).numpy()
    softmax = tf.nn.softmax(logits).numpy()
    expected = softmax - np.eye(4)[targets]
    expected[0, 2] = 0.0
    np.testing.assert_allclose(gradient, expected, rtol=1e-5, atol=1e-7)


def test_uniform_cross_entropy_is_the_mean_negative_log_probability_over_words():
    probabilities = np.array([[[0.5, 0.25, 0.25], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]]], "float32")
    logits = np.log(probabilities) + 3.0  # softmax ignores the shift
    targets = np.array([[1, 1, 0]])  # the last step is padding
    expected = -np.log(probabilities[0, :2]).mean(axis=-1).sum()
    np.testing.assert_allclose(_numpy(losses.uniform_cross_entropy(targets, logits)),
                               [expected], rtol=1e-5)
    np.testing.assert_allclose(
        _numpy(losses.uniform_cross_entropy(targets, logits, normalization="token")),
        [expected / 2], rtol=1e-5)


def test_leave_one_out_compares_each_path_with_its_captions_other_paths():
    # 3 paths of 2 captions, path-major: path p of caption b is row p * 2 + b
    nll = np.array([1.0, 10.0, 2.0, 20.0, 6.0, 30.0], "float32")
    baseline = _numpy(losses.leave_one_out_baseline(nll, 3))
    np.testing.assert_allclose(baseline, [4.0, 25.0, 3.5, 20.0, 1.5, 15.0])
