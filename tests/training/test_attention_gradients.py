"""The REINFORCE gradient of hard attention, measured per baseline."""

import keras
import numpy as np
import pytest

from sat_keras.models.show_attend_tell import ShowAttendTell
from sat_keras.text import Vocabulary
from sat_keras.training import attention_gradients as gradients

CAPTIONS = ["a red circle on the left", "a blue square at the top", "a green triangle"]


@pytest.fixture(scope="module")
def batch():
    keras.utils.set_random_seed(0)
    vocabulary = Vocabulary.build(CAPTIONS)
    soft = ShowAttendTell(vocabulary, decoder={"embedding_dim": 8, "units": 16,
                                               "attention_dim": 8, "dropout": 0.5})
    soft.build({"features": (None, 4, 8)})
    features = np.random.default_rng(0).normal(size=(3, 4, 8)).astype("float32")
    sequences = np.zeros((3, 8), "int32")
    for row, caption in enumerate(CAPTIONS):
        ids = vocabulary.encode(caption)
        sequences[row, :len(ids)] = ids
    return soft, gradients.sampling_copy(soft), features, sequences


def test_the_copy_samples_every_location_without_dropout_and_keeps_the_weights(batch):
    soft, model, _, _ = batch
    decoder = model.decoder
    assert (decoder.attention, decoder.dropout, decoder.expected_context_probability) == (
        "hard", 0.0, 0.0)
    assert soft.decoder.attention == "soft" and soft.decoder.dropout == 0.5  # untouched
    for copied, original in zip(decoder.trainable_weights, soft.decoder.trainable_weights):
        np.testing.assert_array_equal(np.asarray(copied), np.asarray(original))


def test_every_draw_samples_anew_and_only_the_attention_layer_is_differentiated(batch):
    _, model, features, sequences = batch
    draws = gradients.gradient_draws(model, features, sequences, "none", draws=3)
    size = sum(int(np.prod(w.shape)) for w in model.decoder.soft_attention.trainable_weights)
    assert draws.shape == (3, size) and np.all(np.isfinite(draws))
    assert not np.allclose(draws[0], draws[1])  # new locations every draw
    again = gradients.gradient_draws(model, features, sequences, "none", draws=3)
    np.testing.assert_allclose(draws, again, rtol=1e-5)  # the seed fixes the draws


def test_baselines_cut_the_variance_and_keep_the_expectation(batch):
    _, model, features, sequences = batch
    figures = {}
    for estimator in gradients.ESTIMATORS:
        draws = gradients.gradient_draws(model, features, sequences, estimator, draws=24,
                                         calibration=(features, sequences))
        paths = 4 if estimator == "leave_one_out" else 1
        figures[estimator] = gradients.summarize(draws, paths)
    none = figures["none"]["variance"]
    # Without a baseline the whole caption NLL multiplies the score: the noisiest.
    for estimator in ("moving_average", "greedy", "leave_one_out", "learned"):
        assert figures[estimator]["variance"] < none / 20, (estimator, figures)
    # Per-word baselines scaled by length beat one mean for every caption length.
    assert figures["moving_average"]["variance"] < figures["caption_mean"]["variance"]
    # Four paths a draw: their variance at equal compute is the variance times 4.
    # Each path is compared with the other paths of its own caption: paired with
    # other captions' paths, it would compare captions of other lengths, noisier
    # than one mean for all (173 against 89 here).
    loo = figures["leave_one_out"]
    assert loo["variance_per_sample"] == pytest.approx(4 * loo["variance"])
    assert loo["variance_per_sample"] < figures["caption_mean"]["variance"] / 5, figures


def test_summarize_removes_the_noise_from_the_signal():
    rng = np.random.default_rng(0)
    mean = np.array([1.0, -2.0, 0.5])
    quiet = gradients.summarize(mean + 0.01 * rng.normal(size=(2000, 3)))
    noisy = gradients.summarize(mean + 3.0 * rng.normal(size=(2000, 3)))
    assert quiet["signal"] == pytest.approx(5.25, rel=0.01)
    assert noisy["signal"] == pytest.approx(5.25, rel=0.15)  # not 5.25 + 27 / 2000 * ...
    assert noisy["variance"] == pytest.approx(27.0, rel=0.05)
    with pytest.raises(ValueError, match="at least 2 draws"):
        gradients.summarize(mean[None])


def test_an_unknown_estimator_is_refused(batch):
    _, model, features, sequences = batch
    with pytest.raises(ValueError, match="estimator must be one of"):
        gradients.gradient_draws(model, features, sequences, "vimco", draws=2)


def test_the_learned_baseline_is_fitted_on_other_captions(batch):
    _, model, features, sequences = batch
    with pytest.raises(ValueError, match="needs calibration captions"):
        gradients.gradient_draws(model, features, sequences, "learned", draws=2)
    kernel, bias = gradients.fit_learned_baseline(model, features, sequences, draws=2)
    assert kernel.shape == (16,) and np.isfinite(bias)
    # Its fit reads h_{t-1}: it predicts each caption's NLL per word from the states.
    nll, _, previous = gradients.teacher_forced(model, features, sequences)
    per_word = np.asarray(nll) / np.asarray(gradients.caption_lengths(sequences))
    mask = sequences[:, 1:] != 0
    predicted = np.asarray(previous)[mask] @ kernel + bias
    actual = np.broadcast_to(per_word[:, None], mask.shape)[mask]
    assert np.mean((predicted - actual) ** 2) < np.var(actual)
