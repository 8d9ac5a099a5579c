import inspect

import keras
import numpy as np
import pytest

from sat_keras import CaptionEnsemble
from sat_keras import ShowAttendTell
from sat_keras import SmallCNNEncoder
from sat_keras import Vocabulary
from sat_keras.decoding import SearchSettings
from sat_keras.models.captioner import Captioner
from sat_keras.text import END_ID
from sat_keras.text import START_ID


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


@pytest.fixture
def features():
    return np.random.default_rng(1).normal(size=(3, 4, 8)).astype("float32")


@pytest.fixture
def two_models(make_model, batch):
    """Two built models of one vocabulary with different weights."""
    first, second = make_model(), make_model()
    for model in (first, second):
        model(batch[0])
    rng = np.random.default_rng(2)
    for variable in second.weights:
        variable.assign(_numpy(variable) + rng.normal(scale=0.5, size=variable.shape))
    return first, second


def _log_softmax(logits):
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


SETTINGS = [{}, {"beam_size": 3, "length_penalty": 1.0}, {"beam_size": 3, "num_captions": 2},
            {"suppress_unknown": True}, {"beam_size": 2, "suppress_unknown": True}]


@pytest.mark.parametrize("settings", SETTINGS)
def test_an_ensemble_of_one_model_searches_as_the_model(two_models, features, settings):
    model = two_models[1]
    expected = model.caption(features=features, max_length=7, **settings)
    outputs = CaptionEnsemble([model]).caption(features=features, max_length=7, **settings)
    assert outputs["captions"] == expected["captions"]
    np.testing.assert_array_equal(outputs["token_ids"], expected["token_ids"])
    np.testing.assert_allclose(outputs["scores"], expected["scores"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(outputs["attention_weights"], expected["attention_weights"],
                               atol=1e-6)


def test_copies_of_one_model_caption_as_the_model(two_models, features):
    model = two_models[1]
    expected = model.caption(features=features, beam_size=3, max_length=7)
    outputs = CaptionEnsemble([model, model, model]).caption(features=features, beam_size=3,
                                                             max_length=7)
    assert outputs["captions"] == expected["captions"]
    np.testing.assert_allclose(outputs["scores"], expected["scores"], rtol=1e-5, atol=1e-5)


def test_a_step_averages_the_word_probabilities_and_the_attention(two_models, features):
    ensemble = CaptionEnsemble(two_models)
    annotations = ensemble.encode({"features": features})
    state, memory = ensemble.start(annotations)
    assert int(ensemble.num_locations(annotations)) == 4 and len(state) == len(memory) == 2
    token_ids = np.array([START_ID, 4, 5], "int32")
    log_probs, new_state, attention = ensemble.step(token_ids, state, memory)

    singles = []
    for model in two_models:
        model_state, model_memory = model.start(model.encode({"features": features}))
        singles.append(model.step(token_ids, model_state, model_memory))
    probs = [np.exp(_log_softmax(_numpy(logits))) for logits, _, _ in singles]
    np.testing.assert_allclose(_numpy(log_probs), np.log((probs[0] + probs[1]) / 2), atol=1e-5)
    np.testing.assert_allclose(_numpy(attention),
                               (_numpy(singles[0][2]) + _numpy(singles[1][2])) / 2, atol=1e-6)
    for kept, (_, single_state, _) in zip(new_state, singles):  # each model keeps its own
        for ours, theirs in zip(keras.tree.flatten(kept), keras.tree.flatten(single_state)):
            np.testing.assert_allclose(_numpy(ours), _numpy(theirs), atol=1e-6)
    assert not np.allclose(probs[0], probs[1], atol=1e-3)  # the two models differ


def test_greedy_search_follows_the_mean_of_the_models_distributions(two_models, features):
    max_length = 6
    outputs = CaptionEnsemble(two_models).caption(features=features, max_length=max_length)
    starts = [model.start(model.encode({"features": features})) for model in two_models]
    states = [state for state, _ in starts]
    previous = np.full((len(features),), START_ID, "int32")
    finished = np.zeros(len(features), bool)
    expected = np.zeros((len(features), max_length), "int32")
    for t in range(max_length):
        probs = []
        for index, (model, (_, memory)) in enumerate(zip(two_models, starts)):
            logits, states[index], _ = model.step(previous, states[index], memory)
            probs.append(np.exp(_log_softmax(_numpy(logits))))
        chosen = np.where(finished, 0, np.argmax(np.mean(probs, axis=0), -1))
        expected[:, t] = chosen
        finished |= chosen == END_ID
        previous = chosen.astype("int32")
    np.testing.assert_array_equal(outputs["token_ids"], expected)


def test_sampling_draws_with_the_first_models_seed(two_models, features):
    model = two_models[0]
    generator = model.decoder.seed_generator
    start_state = _numpy(generator.state)
    expected = model.caption(features=features, temperature=1.0, max_length=7)
    generator.state.assign(start_state)
    outputs = CaptionEnsemble([model]).caption(features=features, temperature=1.0,
                                               max_length=7)
    np.testing.assert_array_equal(outputs["token_ids"], expected["token_ids"])


def test_images_go_through_each_models_own_encoder(make_model):
    images = np.random.default_rng(0).integers(0, 255, (2, 32, 32, 3)).astype("uint8")
    model = make_model(with_encoder=True)
    expected = model.caption(images=images, beam_size=2, max_length=6)
    outputs = CaptionEnsemble([model]).caption(images=images, beam_size=2, max_length=6)
    assert outputs["captions"] == expected["captions"]
    assert CaptionEnsemble([model]).image_size == 32


def test_grids_of_different_sizes_are_rejected(make_model, vocabulary):
    images = np.zeros((1, 32, 32, 3), "uint8")
    coarse = make_model(with_encoder=True)  # 8x8 grid
    fine = ShowAttendTell(vocabulary, encoder=SmallCNNEncoder(filters=(4, 4, 8)),  # 4x4 grid
                          decoder={"embedding_dim": 8, "units": 12, "attention_dim": 8},
                          image_size=32)
    with pytest.raises(ValueError, match="same number of locations"):
        CaptionEnsemble([coarse, fine]).caption(images=images)


def test_models_must_share_one_vocabulary(make_model):
    other = Vocabulary.build(["a green triangle", "two red circles"])
    with pytest.raises(ValueError, match="share one vocabulary; model 1's"):
        CaptionEnsemble([make_model(), make_model(vocabulary=other)])
    with pytest.raises(ValueError, match="at least one model"):
        CaptionEnsemble([])


def test_exactly_one_input_is_taken(make_model, features):
    ensemble = CaptionEnsemble([make_model()])
    with pytest.raises(ValueError, match="exactly one of images= or features="):
        ensemble.caption()
    with pytest.raises(ValueError, match="exactly one of images= or features="):
        ensemble.caption(images=np.zeros((1, 32, 32, 3), "uint8"), features=features)


def test_the_model_and_the_ensemble_share_one_captioner_contract(two_models):
    ensemble = CaptionEnsemble(two_models)
    model = two_models[0]
    for name in ("encode", "start", "step", "num_locations", "build_for", "search",
                 "search_function", "caption"):
        assert (inspect.signature(getattr(model, name)).parameters.keys()
                == inspect.signature(getattr(ensemble, name)).parameters.keys()), name
    for name in ("search", "search_function", "caption"):  # written once
        assert getattr(type(model), name) is getattr(Captioner, name)
        assert getattr(type(ensemble), name) is getattr(Captioner, name)
    assert ensemble.seed_generator is model.seed_generator is model.decoder.seed_generator


def test_encoders_of_one_class_settings_and_weights_are_shared(make_model):
    first, second = make_model(with_encoder=True), make_model(with_encoder=True)
    for model in (first, second):
        model.build({"images": (None, 32, 32, 3)})
    assert CaptionEnsemble([first, second]).encoder_owners() == (0, 1)  # own initial weights
    assert CaptionEnsemble([first, first, second]).encoder_owners() == (0, 0, 2)
    second.encoder.set_weights(first.encoder.get_weights())
    assert CaptionEnsemble([first, second]).encoder_owners() == (0, 0)
    features_only = make_model()
    assert CaptionEnsemble([features_only, first]).encoder_owners() == (0, 1)


def test_unbuilt_encoders_are_compared_once_built(make_model):
    first, second = make_model(with_encoder=True), make_model(with_encoder=True)
    ensemble = CaptionEnsemble([first, second])
    assert ensemble.encoder_owners() == (0, 1)  # no weights yet
    ensemble.build_for({"images": (None, 32, 32, 3)})
    second.encoder.set_weights(first.encoder.get_weights())
    assert ensemble.encoder_owners() == (0, 0)


def test_a_shared_encoder_encodes_the_images_once(make_model, monkeypatch):
    images = np.random.default_rng(0).integers(0, 255, (2, 32, 32, 3)).astype("uint8")
    first, second = make_model(with_encoder=True), make_model(with_encoder=True)
    for model in (first, second):
        model.build({"images": (None, 32, 32, 3)})
    second.encoder.set_weights(first.encoder.get_weights())
    apart = CaptionEnsemble([first, second], encoder_owners=(0, 1)).caption(
        images=images, beam_size=2, max_length=6)
    calls = []
    call = second.encoder.call
    monkeypatch.setattr(second.encoder, "call", lambda *a, **k: calls.append(1) or call(*a, **k))
    shared = CaptionEnsemble([first, second])
    outputs = shared.caption(images=images, beam_size=2, max_length=6)
    assert shared.encoder_owners() == (0, 0) and calls == []
    assert outputs["captions"] == apart["captions"]
    np.testing.assert_allclose(outputs["scores"], apart["scores"], rtol=1e-6)
    assert len(shared.variables) == len(first.variables) + len(second.variables) - len(
        second.encoder.variables)


def test_encoder_owners_given_must_point_to_earlier_models(two_models):
    for owners in ((0,), (1, 1), (0, 2), (-1, 0)):
        with pytest.raises(ValueError, match="encoder_owners must give each"):
            CaptionEnsemble(two_models, encoder_owners=owners)


def test_the_ensemble_decodes_as_its_first_model_until_given_its_own(two_models, features):
    first, second = two_models
    assert CaptionEnsemble([first, second]).search_settings == SearchSettings()
    first.choose_search({"beam_size": 3, "length_penalty": 1.0})
    ensemble = CaptionEnsemble([first, second])
    assert ensemble.search_settings == first.search_settings
    np.testing.assert_array_equal(
        ensemble.caption(features=features)["token_ids"],
        ensemble.caption(features=features, search=first.search_settings)["token_ids"])
    ensemble.choose_search({"beam_size": 2})  # merged into its own
    assert ensemble.search_settings == SearchSettings(beam_size=2, length_penalty=1.0)
    assert first.search_settings.beam_size == 3
