import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import FLICKR8K_DIR
from helpers import MOBILENET_WEIGHTS as WEIGHTS
from helpers import SMALL_MOBILENET_WEIGHTS
from helpers import flickr8k_subset

from sat_keras import ShowAttendTell
from sat_keras import cli
from sat_keras.data.features import CachedFeatures
from sat_keras.data.features import extract_features
from sat_keras.data.images import load_image_files
from sat_keras.encoders import BACKBONES
from sat_keras.encoders import PretrainedEncoder
from sat_keras.encoders import build_encoder
from sat_keras.encoders import encoder_names

needs_weights = pytest.mark.needs_shared(WEIGHTS)

TINY_DECODER = {"embedding_dim": 8, "units": 8, "attention_dim": 8}


def _images(count=2, size=224):
    return np.random.default_rng(0).integers(0, 255, (count, size, size, 3)).astype("uint8")


def _reference_grid(images):
    """conv_pw_11's grid of keras.applications' own MobileNet, its own preprocessing."""
    reference = keras.applications.MobileNet(include_top=False, input_shape=(224, 224, 3),
                                             weights=str(WEIGHTS))
    grid = keras.Model(reference.input, reference.get_layer("conv_pw_11_relu").output)
    output = grid(keras.applications.mobilenet.preprocess_input(images.astype("float32")))
    return keras.ops.convert_to_numpy(output).reshape(len(images), 196, 512)


@needs_weights
def test_mobilenet_grid_equals_keras_applications_with_its_preprocessing():
    images = _images()
    encoder = PretrainedEncoder("mobilenet", weights=str(WEIGHTS))
    annotations = keras.ops.convert_to_numpy(encoder(images))
    assert annotations.shape == (2, 196, 512)
    np.testing.assert_allclose(annotations, _reference_grid(images), atol=1e-4)


@needs_weights
def test_weights_are_real_when_the_first_call_is_traced():
    # A first call inside tf.function (extraction, fit, export) once ran a
    # network whose weight file was never loaded: every feature 0.0.
    images = _images()
    encoder = PretrainedEncoder("mobilenet", weights=str(WEIGHTS))
    traced = keras.ops.convert_to_numpy(tf.function(encoder)(images))
    expected = _reference_grid(images)
    assert (expected != 0).mean() > 0.2
    np.testing.assert_allclose(traced, expected, atol=1e-4)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(encoder(images)), expected, atol=1e-4)


@needs_weights
def test_fit_on_images_with_a_fresh_encoder_runs_the_real_weights(vocabulary):
    # Keras builds an unbuilt model for fit from inside its own machinery.
    model = ShowAttendTell(vocabulary, encoder=PretrainedEncoder("mobilenet", weights=str(WEIGHTS)),
                           image_size=224, decoder=TINY_DECODER)
    model.compile(optimizer="adam")
    images = _images()
    model.fit({"images": images, "token_ids": np.array([[1, 4], [1, 5]])},
              np.array([[4, 2], [5, 2]]), epochs=1, verbose=0)
    annotations = keras.ops.convert_to_numpy(model.encode({"images": images}))
    np.testing.assert_allclose(annotations, _reference_grid(images), atol=1e-4)


@needs_weights
def test_fresh_encoder_through_extract_features_gives_its_eager_features(tmp_path):
    paths = [str(tmp_path / f"{index}.png") for index in range(3)]
    for path, image in zip(paths, _images(3)):
        tf.io.write_file(path, tf.io.encode_png(image))
    extract_features(paths, PretrainedEncoder("mobilenet", weights=str(WEIGHTS)),
                     str(tmp_path / "features"), image_size=224, dtype="float32", verbose=0,
                     print_fn=lambda _: None)
    cached = CachedFeatures(str(tmp_path / "features"))
    images, _, _ = load_image_files(paths, 224)
    eager = PretrainedEncoder("mobilenet", weights=str(WEIGHTS))(images)
    np.testing.assert_allclose(np.stack([cached.lookup(p).numpy() for p in paths]),
                               keras.ops.convert_to_numpy(eager), atol=1e-4)


@pytest.mark.needs_shared(WEIGHTS, FLICKR8K_DIR)
def test_extract_features_command_writes_real_features_of_real_photos(tmp_path):
    data_dir = flickr8k_subset(tmp_path / "flickr8k", train=3)
    assert cli.main(["extract-features", "--dataset", "flickr8k", "--data-dir", data_dir,
                     "--encoder", "mobilenet", "--encoder-weights", str(WEIGHTS),
                     "--dtype", "float32", "--output", str(tmp_path / "features")]) == 0
    cached = CachedFeatures(str(tmp_path / "features"))
    features = np.stack([cached.lookup(path).numpy() for path in cached.paths])
    images, _, _ = load_image_files(cached.paths, 224)
    assert (features != 0).mean() > 0.2
    np.testing.assert_allclose(features, _reference_grid(images), atol=1e-4)


@needs_weights
def test_frozen_by_default_trainable_on_request():
    frozen = PretrainedEncoder("mobilenet", weights=str(WEIGHTS))
    frozen.build((None, 224, 224, 3))
    assert frozen.trainable_weights == [] and frozen.weights
    tuned = PretrainedEncoder("mobilenet", weights=str(WEIGHTS), trainable=True)
    tuned.build((None, 224, 224, 3))
    assert len(tuned.trainable_weights) > 0


@needs_weights
def test_saved_model_restores_encoder_weights_without_the_weights_file(tmp_path, vocabulary):
    encoder = PretrainedEncoder("mobilenet", weights=str(WEIGHTS))
    model = ShowAttendTell(vocabulary, encoder=encoder, image_size=224, decoder=TINY_DECODER)
    inputs = {"images": _images(1), "token_ids": np.array([[1, 4]])}
    expected = keras.ops.convert_to_numpy(model(inputs)["logits"])
    model.save(tmp_path / "m.keras")
    restored = keras.models.load_model(tmp_path / "m.keras")
    assert restored.encoder.weights_source is None
    np.testing.assert_allclose(keras.ops.convert_to_numpy(restored(inputs)["logits"]),
                               expected, atol=1e-5)


@pytest.mark.parametrize("name, grid", [("mobilenet_v2", (49, 1280)), ("resnet50", (49, 2048)),
                                        ("resnet50_conv4", (196, 1024)), ("vgg16", (196, 512)),
                                        ("mobilenet_last", (49, 1024))])
def test_grid_shapes_with_random_weights(name, grid):
    encoder = build_encoder(name, weights=None)
    assert encoder.compute_output_shape((None, 224, 224, 3)) == (None,) + grid


@pytest.mark.slow
@pytest.mark.parametrize("name", encoder_names())
def test_every_backbone_builds(name):
    size = BACKBONES[name][1]
    annotations = build_encoder(name, weights=None)(_images(1, size))
    assert annotations.shape[0] == 1 and annotations.shape[1] >= 49


@pytest.mark.needs_shared(SMALL_MOBILENET_WEIGHTS)
def test_config_round_trip_and_unknown_names():
    small = str(SMALL_MOBILENET_WEIGHTS)
    encoder = PretrainedEncoder("mobilenet", weights=small, backbone_kwargs={"alpha": 0.25})
    assert encoder.get_config()["weights"] == small  # where the weights came from
    restored = PretrainedEncoder.from_config(encoder.get_config())
    # A restored encoder gets its weights from the model file, not the source.
    assert (restored.backbone, restored.weights_source) == ("mobilenet", None)
    with pytest.raises(ValueError, match="Unknown backbone"):
        PretrainedEncoder("alexnet")
    assert build_encoder("small_cnn", filters=(4,)).filters == (4,)


def test_top_layers_fine_tune_with_their_own_learning_rate(vocabulary):
    from sat_keras.training.optimizers import FineTuningAdam

    def train_once(multiplier):
        keras.utils.set_random_seed(0)
        encoder = PretrainedEncoder("mobilenet", weights=None, trainable=True,
                                    trainable_layers=2, backbone_kwargs={"alpha": 0.25})
        model = ShowAttendTell(vocabulary, encoder=encoder, image_size=224,
                               decoder=TINY_DECODER)
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


def _cached_encoder(**kwargs):
    keras.utils.set_random_seed(0)
    return PretrainedEncoder("mobilenet", weights=None, backbone_kwargs={"alpha": 0.25},
                             cache_layer="conv_pw_10_relu", **kwargs)


def _cache(encoder, images):
    """What a feature cache holds: the cache layer's outputs, flattened."""
    return keras.ops.convert_to_numpy(encoder.to_cache(images))


def test_cached_features_through_the_layers_above_give_the_encoders_annotations():
    encoder = _cached_encoder()
    images = _images()
    cached = _cache(encoder, images)
    assert cached.shape[1:] == encoder.feature_shape == (196, 128)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(encoder.from_cache(cached)),
                               keras.ops.convert_to_numpy(encoder(images)), atol=1e-5)
    with pytest.raises(ValueError, match="extract the features at that layer"):
        encoder.from_cache(np.zeros((1, 49, 256), "float32"))
    with pytest.raises(ValueError, match="has no layer 'conv9'"):
        PretrainedEncoder("mobilenet", weights=None, backbone_kwargs={"alpha": 0.25},
                          cache_layer="conv9")
    # Without a cache layer the features are the annotations.
    plain = PretrainedEncoder("mobilenet", weights=None, backbone_kwargs={"alpha": 0.25})
    assert plain.feature_shape == (196, 128)
    np.testing.assert_array_equal(_cache(plain, images), plain(images))
    trunk = keras.Model(encoder.network.input, encoder.network.get_layer("conv_pw_10_relu").output)
    np.testing.assert_allclose(
        cached, keras.ops.convert_to_numpy(trunk(encoder._preprocess(images))).reshape(2, 196, 128))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(plain.from_cache(cached)), cached)


def test_only_the_layers_above_the_cache_layer_train():
    frozen = _cached_encoder()
    assert frozen.trainable_weights == []
    tuned = _cached_encoder(trainable=True)
    trained = {weight.path.split("/")[-2] for weight in tuned.trainable_weights}
    assert trained == {"conv_dw_11", "conv_pw_11"}  # batch norm stays frozen
    top = _cached_encoder(trainable=True, trainable_layers=1)
    assert {weight.path.split("/")[-2] for weight in top.trainable_weights} == {"conv_pw_11"}
    restored = PretrainedEncoder.from_config(tuned.get_config())
    assert restored.cache_layer == "conv_pw_10_relu" and len(restored.trainable_weights) == 2


def test_a_model_trains_the_stage_above_the_cache_from_cached_features(vocabulary):
    from sat_keras.training.optimizers import FineTuningAdam

    encoder = _cached_encoder(trainable=True)
    model = ShowAttendTell(vocabulary, encoder=encoder, image_size=224, decoder=TINY_DECODER)
    images = _images()
    cached = _cache(encoder, images)
    token_ids = np.array([[1, 4], [1, 5]])
    from_images = model({"images": images, "token_ids": token_ids})["logits"]
    from_cache = model({"features": cached, "token_ids": token_ids})["logits"]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(from_cache),
                               keras.ops.convert_to_numpy(from_images), atol=1e-5)
    model.compile(optimizer=FineTuningAdam(1e-2, encoder_multiplier=0.5))
    below = keras.ops.convert_to_numpy(encoder.network.get_layer("conv_pw_10").weights[0])
    above = keras.ops.convert_to_numpy(encoder.network.get_layer("conv_pw_11").weights[0])
    model.train_on_batch({"features": cached, "token_ids": token_ids},
                         np.array([[4, 2], [5, 2]]))
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(encoder.network.get_layer("conv_pw_10").weights[0]), below)
    assert np.abs(keras.ops.convert_to_numpy(
        encoder.network.get_layer("conv_pw_11").weights[0]) - above).max() > 0
    # The full network (what an export runs on images) holds the trained stage.
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model({"features": cached, "token_ids": token_ids})["logits"]),
        keras.ops.convert_to_numpy(model({"images": images, "token_ids": token_ids})["logits"]),
        atol=1e-5)


def test_a_decoder_trained_on_a_tuned_encoders_annotations_shares_it_in_an_ensemble(
        vocabulary, tmp_path):
    from sat_keras import CaptionEnsemble
    from sat_keras.export import export_captioner
    from sat_keras.models.saving import load_captioner

    tuned = ShowAttendTell(vocabulary, encoder=_cached_encoder(trainable=True), image_size=224,
                           decoder=TINY_DECODER)
    tuned.build({"images": (None, 224, 224, 3)})
    top = tuned.encoder.network.get_layer("conv_pw_11")
    top.kernel.assign(top.kernel * 3.0)  # the tuned stage
    # A second decoder on the tuned network's annotations: the same weights, no cache layer.
    plain = PretrainedEncoder("mobilenet", weights=None, backbone_kwargs={"alpha": 0.25})
    plain.network.set_weights(tuned.encoder.network.get_weights())
    keras.utils.set_random_seed(1)
    second = ShowAttendTell(vocabulary, encoder=plain, image_size=224, decoder=TINY_DECODER)
    second.build({"images": (None, 224, 224, 3)})
    ensemble = CaptionEnsemble([tuned, second])
    assert ensemble.encoder_owners() == (0, 0)  # one network stored and run
    images = _images()
    from_images = ensemble.caption(images=images, beam_size=2, max_length=6)
    from_cache = ensemble.caption(features=_cache(tuned.encoder, images), beam_size=2,
                                  max_length=6)  # the owner's cache: conv_pw_10's
    np.testing.assert_array_equal(from_cache["token_ids"], from_images["token_ids"])
    np.testing.assert_allclose(from_cache["scores"], from_images["scores"], atol=1e-4)
    # The export stores the network once and reloads as the same pair.
    loaded = load_captioner(export_captioner(ensemble, str(tmp_path / "pair" / "1"),
                                             beam_size=2, max_length=6))
    assert loaded.encoder_owners() == (0, 0)
    np.testing.assert_array_equal(
        loaded.caption(images=images, beam_size=2, max_length=6)["token_ids"],
        from_images["token_ids"])
    # Different weights are still two encoders.
    top.kernel.assign(top.kernel * 2.0)
    assert CaptionEnsemble([tuned, second]).encoder_owners() == (0, 1)
