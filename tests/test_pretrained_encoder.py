import pathlib

import keras
import numpy as np
import pytest

from sat_keras import ShowAttendTell
from sat_keras.encoders import BACKBONES
from sat_keras.encoders import PretrainedEncoder
from sat_keras.encoders import build_encoder
from sat_keras.encoders import encoder_names

WEIGHTS = (pathlib.Path(__file__).resolve().parents[1] / ".." / "shared" / "weights"
           / "mobilenet_2_5_224_tf_no_top.h5")
needs_weights = pytest.mark.skipif(not WEIGHTS.exists(), reason="shared weights absent")


def _images(count=2, size=224):
    return np.random.default_rng(0).integers(0, 255, (count, size, size, 3)).astype("uint8")


@needs_weights
def test_mobilenet_grid_equals_keras_applications_with_its_preprocessing():
    encoder = PretrainedEncoder("mobilenet", weights=str(WEIGHTS),
                                backbone_kwargs={"alpha": 0.25})
    images = _images()
    annotations = keras.ops.convert_to_numpy(encoder(images))
    reference = keras.applications.MobileNet(alpha=0.25, include_top=False,
                                             input_shape=(224, 224, 3), weights=str(WEIGHTS))
    grid = keras.Model(reference.input, reference.get_layer("conv_pw_11_relu").output)
    expected = keras.ops.convert_to_numpy(
        grid(keras.applications.mobilenet.preprocess_input(images.astype("float32"))))
    assert annotations.shape == (2, 196, 128)
    np.testing.assert_allclose(annotations, expected.reshape(2, 196, 128), atol=1e-5)


@needs_weights
def test_frozen_by_default_trainable_on_request():
    frozen = PretrainedEncoder("mobilenet", weights=str(WEIGHTS), backbone_kwargs={"alpha": 0.25})
    frozen.build((None, 224, 224, 3))
    assert frozen.trainable_weights == [] and frozen.weights
    tuned = PretrainedEncoder("mobilenet", weights=str(WEIGHTS), trainable=True,
                              backbone_kwargs={"alpha": 0.25})
    tuned.build((None, 224, 224, 3))
    assert len(tuned.trainable_weights) > 0


@needs_weights
def test_saved_model_restores_encoder_weights_without_the_weights_file(tmp_path, vocabulary):
    encoder = PretrainedEncoder("mobilenet", weights=str(WEIGHTS), backbone_kwargs={"alpha": 0.25})
    model = ShowAttendTell(vocabulary, encoder=encoder, image_size=224, embedding_dim=8,
                           units=8, attention_dim=8)
    inputs = {"images": _images(1), "token_ids": np.array([[1, 4]])}
    expected = keras.ops.convert_to_numpy(model(inputs)["logits"])
    model.save(tmp_path / "m.keras")
    restored = keras.models.load_model(tmp_path / "m.keras")
    assert restored.encoder.weights_source is None
    np.testing.assert_allclose(keras.ops.convert_to_numpy(restored(inputs)["logits"]),
                               expected, atol=1e-5)


@pytest.mark.parametrize("name, grid", [("mobilenet_v2", (49, 1280)), ("resnet50", (49, 2048)),
                                        ("vgg16", (196, 512)), ("mobilenet_last", (49, 1024))])
def test_grid_shapes_with_random_weights(name, grid):
    encoder = build_encoder(name, weights=None)
    assert encoder.compute_output_shape((None, 224, 224, 3)) == (None,) + grid


@pytest.mark.slow
@pytest.mark.parametrize("name", encoder_names())
def test_every_backbone_builds(name):
    size = BACKBONES[name][1]
    annotations = build_encoder(name, weights=None)(_images(1, size))
    assert annotations.shape[0] == 1 and annotations.shape[1] >= 49


def test_config_round_trip_and_unknown_names():
    encoder = PretrainedEncoder("vgg19", weights="imagenet")
    restored = PretrainedEncoder.from_config(encoder.get_config())
    assert (restored.backbone, restored.weights_source) == ("vgg19", None)
    with pytest.raises(ValueError, match="Unknown backbone"):
        PretrainedEncoder("alexnet")
    assert build_encoder("small_cnn", filters=(4,)).filters == (4,)


def test_top_layers_fine_tune_with_their_own_learning_rate(vocabulary):
    from sat_keras.optimizers import FineTuningAdam

    def train_once(multiplier):
        keras.utils.set_random_seed(0)
        encoder = PretrainedEncoder("mobilenet", weights=None, trainable=True,
                                    trainable_layers=2, backbone_kwargs={"alpha": 0.25})
        model = ShowAttendTell(vocabulary, encoder=encoder, image_size=224, embedding_dim=8,
                               units=8, attention_dim=8)
        model.build({"images": (None, 224, 224, 3)})
        model.compile(optimizer=FineTuningAdam(1e-2, encoder_multiplier=multiplier))
        encoder_weights = [v for v in model.trainable_weights if "encoder" in v.path.split("/")]
        decoder_weights = [v for v in model.trainable_weights if "encoder" not in v.path.split("/")]
        before = [keras.ops.convert_to_numpy(v) for v in encoder_weights + decoder_weights]
        model.train_on_batch({"images": _images(2), "token_ids": np.array([[1, 4], [1, 5]])},
                             np.array([[4, 2], [5, 2]]))
        after = [keras.ops.convert_to_numpy(v) for v in encoder_weights + decoder_weights]
        steps = [np.abs(a - b).max() for a, b in zip(after, before)]
        return len(encoder_weights), steps[:len(encoder_weights)], steps[len(encoder_weights):]

    count, encoder_steps, decoder_steps = train_once(0.0)
    assert count == 2  # conv_dw_11 and conv_pw_11 kernels; batch norm stays frozen
    assert max(encoder_steps) == 0.0 and max(decoder_steps) > 0
    _, encoder_steps, _ = train_once(0.5)
    assert 0 < max(encoder_steps) <= 0.5 * 1e-2 * 1.01  # Adam's first step is ~lr
