import keras
import numpy as np
import tensorflow as tf

from sat_keras.layers.hard_attention import HardAttentionSampler
from sat_keras.models import losses


def test_sample_frequencies_match_alpha():
    alpha = np.array([0.1, 0.2, 0.3, 0.4], "float32")
    sampler = HardAttentionSampler(seed=0)
    one_hot, _, _ = sampler(np.tile(alpha, (2000, 1)), np.zeros((2000, 4, 2), "float32"))
    frequencies = keras.ops.convert_to_numpy(one_hot).mean(axis=0)
    np.testing.assert_allclose(frequencies, alpha, atol=0.03)


def test_log_prob_is_log_alpha_at_the_sample_and_context_is_that_annotation():
    rng = np.random.default_rng(0)
    alpha = rng.dirichlet(np.ones(5), size=6).astype("float32")
    annotations = rng.normal(size=(6, 5, 3)).astype("float32")
    one_hot, context, log_prob = HardAttentionSampler(seed=1)(alpha, annotations)
    index = keras.ops.convert_to_numpy(one_hot).argmax(-1)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(log_prob),
                               np.log(alpha[np.arange(6), index]), rtol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(context),
                               annotations[np.arange(6), index], rtol=1e-6)



def test_beams_choose_among_their_images_annotations():
    rng = np.random.default_rng(2)
    alpha = rng.dirichlet(np.ones(5), size=6).astype("float32")  # 2 images x 3 beams
    annotations = rng.normal(size=(2, 5, 3)).astype("float32")
    _, context, _ = HardAttentionSampler(seed=1)(alpha, annotations, argmax=True)
    image = np.arange(6) // 3
    np.testing.assert_allclose(keras.ops.convert_to_numpy(context),
                               annotations[image, alpha.argmax(-1)], rtol=1e-6)

def test_argmax_and_given_noise_are_deterministic():
    alpha = np.array([[0.2, 0.5, 0.3]], "float32")
    sampler = HardAttentionSampler(seed=2)
    one_hot, _, _ = sampler(alpha, np.zeros((1, 3, 1), "float32"), argmax=True)
    assert keras.ops.convert_to_numpy(one_hot).argmax() == 1
    noise = np.array([[0.999, 0.01, 0.01]], "float32")  # Gumbel noise favours location 0
    first, _, _ = sampler(alpha, np.zeros((1, 3, 1), "float32"), uniform_noise=noise)
    again, _, _ = sampler(alpha, np.zeros((1, 3, 1), "float32"), uniform_noise=noise)
    assert keras.ops.convert_to_numpy(first).argmax() == 0
    np.testing.assert_array_equal(first, again)


def test_reinforce_gradient_equals_the_score_function_gradient():
    # One caption, two steps; attention logits e_t, alpha_t = softmax(e_t).
    logits = tf.Variable([[[0.3, -0.2, 0.5], [1.0, 0.0, -1.0]]])  # (1, T=2, L=3)
    sampled = np.array([[[0, 0, 1], [1, 0, 0]]], "float32")  # the drawn one-hot samples
    nll, baseline, weight = np.array([4.0], "float32"), 2.5, 0.1
    targets = np.array([[5, 2]])
    with tf.GradientTape() as tape:
        log_alpha = tf.nn.log_softmax(logits, axis=-1)
        sample_log_probs = tf.reduce_sum(sampled * log_alpha, axis=-1)  # (1, T)
        surrogate = weight * losses.reinforce_surrogate(nll, baseline, sample_log_probs,
                                                        targets)
    gradient = tape.gradient(surrogate, logits).numpy()
    alpha = tf.nn.softmax(logits, axis=-1).numpy()
    # d/de log alpha_s = onehot(s) - alpha, scaled by weight * (reward baseline gap).
    expected = weight * (nll[0] - baseline) * (sampled - alpha)
    np.testing.assert_allclose(gradient, expected, rtol=1e-5)


def test_config_round_trip():
    sampler = HardAttentionSampler(seed=7)
    assert HardAttentionSampler.from_config(sampler.get_config()).seed == 7
