"""A run's decoder starts from a trained model's weights (`--init-from`)."""

import keras
import numpy as np
import pytest

from sat_keras import cli
from sat_keras.models.saving import save_captioner
from sat_keras.models.show_attend_tell import ShowAttendTell
from sat_keras.text import Vocabulary
from sat_keras.training.warm_start import warm_start

CAPTIONS = ["a red circle", "a blue square", "a green triangle"]


def _model(attention="soft", seed=0, units=16, captions=CAPTIONS):
    keras.utils.set_random_seed(seed)
    model = ShowAttendTell(Vocabulary.build(captions),
                           decoder={"embedding_dim": 8, "units": units, "attention_dim": 8,
                                    "attention": attention})
    model.build({"features": (None, 4, 8)})
    return model


@pytest.fixture
def soft_dir(tmp_path):
    directory = tmp_path / "soft"
    save_captioner(_model("soft", seed=1), str(directory))
    return str(directory)


def _values(weights):
    return [np.asarray(weight) for weight in weights]


def test_a_hard_model_starts_from_a_soft_models_decoder(soft_dir):
    soft = _model("soft", seed=1)
    hard = _model("hard", seed=0)
    before = _values(hard.decoder.trainable_weights)
    assert not all(np.array_equal(a, b) for a, b in
                   zip(before, _values(soft.decoder.trainable_weights)))
    copied = warm_start(hard, soft_dir)
    assert copied == len(hard.decoder.trainable_weights) > 10
    for target, value in zip(hard.decoder.trainable_weights, soft.decoder.trainable_weights):
        np.testing.assert_array_equal(np.asarray(target), np.asarray(value), err_msg=target.path)
    assert hard.decoder.attention == "hard"  # the run's settings stay its own
    # the same weights give the same attention and words on the expected context
    features = np.random.default_rng(0).normal(size=(2, 4, 8)).astype("float32")
    token_ids = np.array([[1, 4, 5, 2], [1, 4, 6, 2]])
    hard.decoder.hard_inference = "expected"
    got = hard({"features": features, "token_ids": token_ids}, training=False)
    want = soft({"features": features, "token_ids": token_ids}, training=False)
    np.testing.assert_allclose(got["attention_weights"], want["attention_weights"], atol=1e-6)


def test_other_decoder_sizes_are_refused_naming_the_weight(soft_dir):
    with pytest.raises(ValueError, match=r"has shape .* this run's .*same decoder sizes"):
        warm_start(_model("hard", units=24), soft_dir)


def test_another_vocabulary_is_refused(soft_dir):
    with pytest.raises(ValueError, match="vocabulary of"):
        warm_start(_model("hard", captions=CAPTIONS + ["a pink star"]), soft_dir)


def test_the_flag_sets_the_training_setting():
    args = cli.build_parser().parse_args(
        ["train", "--data-dir", "D", "--output-dir", "R", "--attention", "hard",
         "--init-from", "SOFT_RUN"])
    assert cli.preset_overrides(args)["training"]["init_from"] == "SOFT_RUN"


def _image_model(attention, seed, filters=(4, 8)):
    from sat_keras import SmallCNNEncoder

    keras.utils.set_random_seed(seed)
    model = ShowAttendTell(Vocabulary.build(CAPTIONS), encoder=SmallCNNEncoder(filters=filters),
                           decoder={"embedding_dim": 8, "units": 16, "attention_dim": 8,
                                    "attention": attention}, image_size=32)
    model.build({"images": (None, 32, 32, 3)})
    return model


def test_a_jointly_trained_encoder_starts_from_the_trained_models(tmp_path):
    soft = _image_model("soft", seed=1)
    save_captioner(soft, str(tmp_path / "soft"))
    hard = _image_model("hard", seed=0)
    assert hard.encoder.trainable_weights
    copied = warm_start(hard, str(tmp_path / "soft"))
    assert copied == len(hard.decoder.trainable_weights) + len(hard.encoder.weights)
    for target, value in zip(hard.encoder.weights, soft.encoder.weights):
        np.testing.assert_array_equal(np.asarray(target), np.asarray(value), err_msg=target.path)
    images = np.random.default_rng(0).integers(0, 255, (2, 32, 32, 3)).astype("uint8")
    hard.decoder.hard_inference = "expected"
    np.testing.assert_allclose(hard.caption(images=images, max_length=4)["scores"],
                               soft.caption(images=images, max_length=4)["scores"], rtol=1e-5)
    with pytest.raises(ValueError, match="same encoder"):
        warm_start(_image_model("hard", seed=0, filters=(6, 8)), str(tmp_path / "soft"))
    with pytest.raises(ValueError, match="has no encoder"):
        warm_start(hard, _saved_features_model(tmp_path))


def _saved_features_model(tmp_path):
    directory = str(tmp_path / "features_only")
    save_captioner(_model("soft", seed=1), directory)
    return directory


def test_an_encoder_frozen_in_the_trained_model_keeps_its_own_weights(tmp_path):
    soft = _image_model("soft", seed=1)
    soft.encoder.trainable = False  # trained on a frozen (pretrained) encoder
    save_captioner(soft, str(tmp_path / "frozen"))
    tuned = _image_model("soft", seed=0)  # this run fine-tunes the same encoder
    own = [np.asarray(weight).copy() for weight in tuned.encoder.weights]
    copied = warm_start(tuned, str(tmp_path / "frozen"))
    assert copied == len(tuned.decoder.trainable_weights)
    for weight, value in zip(tuned.encoder.weights, own):
        np.testing.assert_array_equal(np.asarray(weight), value, err_msg=weight.path)
    for target, value in zip(tuned.decoder.trainable_weights, soft.decoder.trainable_weights):
        np.testing.assert_array_equal(np.asarray(target), np.asarray(value))
