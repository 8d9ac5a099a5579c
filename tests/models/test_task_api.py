"""`ShowAttendTell` as a Keras task: predict(), compile() defaults, one search per setting."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from sat_keras import ShowAttendTell
from sat_keras.decoding import SearchSettings


def _features(batch_size=3, seed=0):
    return np.random.default_rng(seed).normal(size=(batch_size, 4, 8)).astype("float32")


def test_predict_on_a_fresh_model_returns_the_greedy_captions(make_model):
    model = make_model()
    features = _features()
    predicted = model.predict({"features": features}, verbose=0)
    assert sorted(predicted) == ["attention_weights", "scores", "token_ids"]
    expected = model.caption(features=features)  # greedy, 20 words: the defaults
    np.testing.assert_array_equal(predicted["token_ids"], expected["token_ids"])
    np.testing.assert_allclose(predicted["scores"], expected["scores"], rtol=1e-5)
    np.testing.assert_allclose(predicted["attention_weights"], expected["attention_weights"],
                               atol=1e-6)


def test_predict_on_a_fresh_image_model_and_from_a_dataset(make_model):
    model = make_model(with_encoder=True)
    images = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    dataset = tf.data.Dataset.from_tensor_slices({"images": images}).batch(2)
    predicted = model.predict(dataset, verbose=0)
    expected = model.caption(images=images)
    np.testing.assert_array_equal(predicted["token_ids"], expected["token_ids"])


def test_predict_uses_the_compiled_search_and_survives_loading(make_model, tmp_path):
    model = make_model()
    features = _features()
    model.compile(search={"beam_size": 3, "max_length": 6, "length_penalty": 0.5})
    predicted = model.predict({"features": features}, verbose=0)
    beam = model.caption(features=features, search=SearchSettings(
        beam_size=3, max_length=6, length_penalty=0.5))
    np.testing.assert_array_equal(predicted["token_ids"], beam["token_ids"])
    np.testing.assert_allclose(predicted["scores"], beam["scores"], rtol=1e-5)
    greedy = model.caption(features=features, beam_size=1)
    assert not np.array_equal(beam["scores"], greedy["scores"])  # the settings did matter

    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert loaded.search_settings == SearchSettings(beam_size=3, max_length=6,
                                                    length_penalty=0.5)
    reloaded = loaded.predict({"features": features}, verbose=0)
    np.testing.assert_array_equal(reloaded["token_ids"], predicted["token_ids"])
    np.testing.assert_allclose(reloaded["scores"], predicted["scores"], rtol=1e-5)


def test_the_models_decoding_travels_with_it_and_is_every_calls_default(make_model, tmp_path):
    model = make_model()
    model.build({"features": (None, 4, 8)})
    model.compile()
    model.save(tmp_path / "plain.keras")
    assert keras.models.load_model(tmp_path / "plain.keras").search_settings == SearchSettings()

    optimizer = model.optimizer
    choice = SearchSettings(max_length=7, beam_size=4, length_penalty=1.0, suppress_unknown=True)
    model.choose_search(choice)
    assert model.optimizer is optimizer  # compiled state kept
    features = _features()
    predicted = model.predict({"features": features}, verbose=0)
    assert predicted["token_ids"].shape[1] == 7
    np.testing.assert_array_equal(model.caption(features=features)["token_ids"],
                                  predicted["token_ids"])  # caption() decodes as predict()
    assert model.generate({"features": features}) == model.caption(features=features,
                                                                   search=choice)["captions"]
    model.save(tmp_path / "chosen.keras")
    assert keras.models.load_model(tmp_path / "chosen.keras").search_settings == choice
    model.save_to_preset(str(tmp_path / "preset"))  # a preset directory carries it too
    assert ShowAttendTell.from_preset(str(tmp_path / "preset")).search_settings == choice
    assert ShowAttendTell.from_config(model.get_config()).search_settings == choice

    model.compile()  # compiling again without a search keeps it: None is not given
    assert model.search_settings == choice

    uncompiled = make_model()  # the decoding is in the model's config: no compile needed
    uncompiled.build({"features": (None, 4, 8)})
    uncompiled.choose_search({"beam_size": 2})
    uncompiled.save(tmp_path / "uncompiled.keras")
    reloaded = keras.models.load_model(tmp_path / "uncompiled.keras")
    assert reloaded.search_settings == SearchSettings(beam_size=2)


def test_a_call_changes_fields_of_the_models_decoding_or_replaces_it(make_model):
    model = make_model()
    model.compile(search=SearchSettings(beam_size=3, max_length=6, suppress_unknown=True))
    own = model.search_settings
    assert model.settings_for() is own
    assert model.settings_for(beam_size=2) == own.replace(beam_size=2)
    assert model.settings_for(beam_size=None) is own  # None: not given
    assert model.settings_for({"length_penalty": 1.0}) == own.replace(length_penalty=1.0)
    assert model.settings_for(SearchSettings()) == SearchSettings()  # the whole decoding
    assert model.settings_for(SearchSettings(), max_length=5) == SearchSettings(max_length=5)
    with pytest.raises(ValueError, match=r"Unknown decoding settings \['beams'\]"):
        model.caption(features=_features(), beams=2)
    with pytest.raises(ValueError, match="beam_size must be a positive integer"):
        model.caption(features=_features(), beam_size=0)
    model.search_settings = {"beam_size": 2}  # a dict merges into the model's own
    assert model.search_settings == own.replace(beam_size=2)


def test_generate_takes_files_bytes_arrays_and_dicts(make_model, tmp_path):
    from helpers import encode_image

    model = make_model(with_encoder=True)
    model.choose_search({"beam_size": 2, "max_length": 6, "num_captions": 2})
    photos = [tmp_path / "a.jpg", tmp_path / "b.png"]
    photos[0].write_bytes(encode_image("jpeg", 40, 50, seed=1))
    photos[1].write_bytes(encode_image("png", 32, 32, seed=2))
    from sat_keras.data import load_image_files

    images, _, _ = load_image_files([str(p) for p in photos], model.image_size)
    expected = [best[0] for best in model.caption(images=images)["captions"]]
    assert model.generate(photos) == expected  # path-likes; the best of the n best
    assert model.generate([str(p) for p in photos]) == expected
    assert model.generate([p.read_bytes() for p in photos]) == expected
    assert model.generate(images) == expected
    assert model.generate({"images": images}) == expected
    greedy = model.search_settings.one_caption_each().replace(beam_size=1)
    assert model.generate(images, beam_size=1) == model.caption(images=images,
                                                                search=greedy)["captions"]
    with pytest.raises(ValueError, match=r"missing\.jpg: file not found; inputs\[2\]: "
                                         "not a decodable image"):
        model.generate([photos[0], str(tmp_path / "missing.jpg"), b"not an image"])
    with pytest.raises(ValueError, match="generate takes image files or bytes"):
        model.generate(np.zeros((2, 32, 32), "float32"))


def test_predict_on_a_loaded_model_that_was_never_compiled(make_model, tmp_path):
    model = make_model()
    features = _features()
    model.build({"features": (None, 4, 8)})
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    predicted = loaded.predict({"features": features}, verbose=0)
    np.testing.assert_array_equal(predicted["token_ids"],
                                  model.caption(features=features)["token_ids"])


def test_compile_defaults_to_adam(make_model):
    model = make_model()
    model.compile()
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)
    model.compile(optimizer="sgd")
    assert isinstance(model.optimizer, keras.optimizers.SGD)


def test_each_setting_keeps_its_own_traced_search(make_model):
    model = make_model()
    features = _features()
    greedy = model.caption(features=features)
    beam = model.caption(features=features, beam_size=2)
    greedy_function = model.search_function(SearchSettings())
    traces = greedy_function.experimental_get_tracing_count()
    again = model.caption(features=features)
    assert greedy_function.experimental_get_tracing_count() == traces  # not retraced
    np.testing.assert_array_equal(again["token_ids"], greedy["token_ids"])
    assert model.search_function({"beam_size": 2}) is model.search_function(
        SearchSettings(beam_size=2))
    assert beam["token_ids"].shape == greedy["token_ids"].shape


@pytest.mark.parametrize("settings, message", [
    ({"beam_size": 0}, "beam_size"),
    ({"max_length": 0}, "max_length"),
    ({"temperature": 0.0}, "temperature"),
    ({"beam_size": 2, "num_captions": 3}, "num_captions"),
    ({"beam_size": 2, "num_captions": 2, "temperature": 1.0}, "temperature sampling"),
])
def test_search_settings_are_checked(make_model, settings, message):
    with pytest.raises(ValueError, match=message):
        SearchSettings(**settings)
    with pytest.raises(ValueError, match=message):
        make_model().compile(search=settings)


def test_the_model_takes_a_dozen_arguments_and_serializes_each_once(make_model):
    import inspect

    from sat_keras import ShowAttendTell

    parameters = [p for p in inspect.signature(ShowAttendTell.__init__).parameters.values()
                  if p.name != "self" and p.kind is not p.VAR_KEYWORD]
    assert len(parameters) <= 14
    config = make_model().get_config()
    decoder_config = config["decoder"]["config"]
    keras_keys = {"name", "trainable", "dtype"}
    assert (set(config) - keras_keys) & (set(decoder_config) - keras_keys) == set()


def test_a_decoder_dict_a_decoder_given_and_the_deprecated_keywords_build_one_model(
        vocabulary, batch):
    from sat_keras import AttentiveLSTMCell
    from sat_keras import ShowAttendTell

    settings = dict(embedding_dim=8, units=12, attention_dim=8, dropout=0.0, gating="vector")
    inputs, _ = batch

    def logits(make):
        keras.utils.set_random_seed(0)
        model = make()
        return model, keras.ops.convert_to_numpy(model(inputs)["logits"])  # builds it

    from_dict, expected = logits(lambda: ShowAttendTell(vocabulary, decoder=settings))
    given, given_logits = logits(lambda: ShowAttendTell(
        vocabulary, decoder=AttentiveLSTMCell(len(vocabulary), **settings)))
    with pytest.warns(DeprecationWarning, match="pass decoder="):  # the 0.2 spelling
        _, keyword_logits = logits(lambda: ShowAttendTell(vocabulary, **settings))
    np.testing.assert_allclose(given_logits, expected, rtol=1e-6)
    np.testing.assert_allclose(keyword_logits, expected, rtol=1e-6)
    assert from_dict.decoder.gating == "vector" and from_dict.decoder.units == 12
    with pytest.warns(DeprecationWarning, match="read model.decoder.units"):
        assert from_dict.units == 12  # 0.2 read decoder settings through the model
    with pytest.raises(AttributeError, match="no attribute 'unitz'"):
        from_dict.unitz  # noqa: B018
    with pytest.raises(ValueError, match="decoder's arguments to the decoder"):
        ShowAttendTell(vocabulary, decoder=AttentiveLSTMCell(len(vocabulary)), units=4)
    with pytest.raises(ValueError, match=r"Unknown decoder arguments \[.unitz.\]"):
        ShowAttendTell(vocabulary, decoder={"unitz": 4})
    with pytest.raises(TypeError, match="a dict of its arguments"):
        ShowAttendTell(vocabulary, decoder="soft")
    with pytest.raises(ValueError, match="predicts 5 words; the vocabulary has"):
        ShowAttendTell(vocabulary, decoder=AttentiveLSTMCell(5))


def test_every_decoder_argument_is_in_the_decoders_config_and_nowhere_else(make_model):
    """A decoder setting is the decoder's alone: the model reads the decoder's own
    signature (`decoder_arguments`), so adding one touches `AttentiveLSTMCell` only."""
    from sat_keras.models.show_attend_tell import decoder_arguments

    config = make_model().get_config()
    assert decoder_arguments() <= set(config["decoder"]["config"])
    assert not decoder_arguments() & set(config)
