import os

import keras
import numpy as np
import pytest

from sat_keras.data import features as features_module
from sat_keras.data.features import CachedFeatures
from sat_keras.data.features import extract_features
from sat_keras.data.images import load_image_files
from sat_keras.data.pipeline import make_caption_dataset
from sat_keras.data.synthetic import generate_synthetic
from sat_keras.encoders import SmallCNNEncoder
from sat_keras.text import Vocabulary


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    return generate_synthetic(str(tmp_path_factory.mktemp("data")), num_images=12, seed=4)


@pytest.fixture(scope="module")
def encoder():
    keras.utils.set_random_seed(0)
    return SmallCNNEncoder(filters=(4, 8))


# float32: extraction runs the encoder as one compiled graph, which may order
# float sums differently from the eager call here (a few ulps).
@pytest.mark.parametrize("dtype, tolerance", [("float32", 1e-6), ("float16", 1e-2)])
def test_features_round_trip_through_shards(records, encoder, tmp_path, dtype, tolerance):
    paths = [r.image_path for r in records]
    report = extract_features(paths + paths[:2], encoder, str(tmp_path), image_size=64,
                              batch_size=5, shard_size=5, dtype=dtype, verbose=0,
                              print_fn=lambda _: None)
    assert report["count"] == 12 and report["shape"] == [256, 8]  # 16x16 grid
    assert sorted(f for f in os.listdir(tmp_path) if f.endswith(".tfrecord")) == [
        f"features-{i:05d}-of-00003.tfrecord" for i in range(3)]
    cached = CachedFeatures(str(tmp_path))
    images, _, _ = load_image_files(paths, 64)
    expected = keras.ops.convert_to_numpy(encoder(images))
    for index in (0, 7, 11):
        got = cached.lookup(paths[index]).numpy()
        np.testing.assert_allclose(got, expected[index], atol=tolerance, rtol=tolerance)


def test_training_on_cached_features_equals_training_on_images(records, encoder, tmp_path,
                                                               make_model):
    extract_features([r.image_path for r in records], encoder, str(tmp_path), image_size=64,
                     dtype="float32", verbose=0, print_fn=lambda _: None)
    vocabulary = Vocabulary.build(c for r in records for c in r.captions)
    cached = CachedFeatures(str(tmp_path))
    from_images = make_caption_dataset(records, vocabulary, batch_size=8, shuffle=False)
    from_features = make_caption_dataset(records, vocabulary, batch_size=8, shuffle=False,
                                         features=cached)
    image_model = make_model(with_encoder=False, vocabulary=vocabulary)
    (image_inputs, targets), (feature_inputs, feature_targets) = next(
        iter(from_images)), next(iter(from_features))
    np.testing.assert_array_equal(targets, feature_targets)
    annotations = encoder(image_inputs["images"])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(annotations),
                               feature_inputs["features"].numpy(), atol=1e-6)
    # The same decoder on either input: the same loss.
    loss_images = image_model.compute_loss(y=targets, y_pred=image_model(
        {"features": annotations, "token_ids": image_inputs["token_ids"]}))
    loss_features = image_model.compute_loss(y=targets, y_pred=image_model(feature_inputs))
    np.testing.assert_allclose(float(loss_images), float(loss_features), rtol=1e-6)


def test_missing_index_and_uncached_images_are_reported(records, encoder, tmp_path):
    with pytest.raises(FileNotFoundError, match="extract the features first"):
        CachedFeatures(str(tmp_path / "none"))
    extract_features([records[0].image_path], encoder, str(tmp_path), image_size=64,
                     verbose=0, print_fn=lambda _: None)
    with pytest.raises(ValueError, match="have no cached features"):
        make_caption_dataset(records, Vocabulary.build(["a"]),
                             features=CachedFeatures(str(tmp_path)))


class BlindEncoder(keras.layers.Layer):
    """The same annotations (zeros) for every image, like a network without its weights."""

    def call(self, images, training=None):
        return keras.ops.zeros((keras.ops.shape(images)[0], 4, 8))


@pytest.mark.parametrize("batch_size", [5, 1])
def test_extraction_refuses_an_encoder_blind_to_its_images(records, tmp_path, batch_size):
    paths = [r.image_path for r in records]
    with pytest.raises(ValueError, match="has the same features.*weights are loaded"):
        extract_features(paths, BlindEncoder(), str(tmp_path), image_size=64,
                         batch_size=batch_size, verbose=0, print_fn=lambda _: None)
    assert not os.path.exists(tmp_path / "features.json")


def test_a_folder_of_constant_features_is_refused_unless_allowed(records, tmp_path,
                                                                monkeypatch):
    # A folder written before extraction checked its output: every image 0.0.
    monkeypatch.setattr(features_module, "_all_equal", lambda arrays: False)
    paths = [r.image_path for r in records]
    extract_features(paths, BlindEncoder(), str(tmp_path), image_size=64, verbose=0,
                     print_fn=lambda _: None)
    monkeypatch.undo()
    with pytest.raises(ValueError, match="the 12 images in .* has the same features"):
        CachedFeatures(str(tmp_path))
    baseline = CachedFeatures(str(tmp_path), allow_constant=True)
    assert not baseline.lookup(paths[3]).numpy().any()


def test_images_are_found_by_file_whatever_the_spelling_of_their_path(
        records, encoder, tmp_path, monkeypatch):
    # Extracted from the data's parent folder with relative paths, then read
    # from elsewhere with absolute and dotted spellings of the same files.
    data_dir = os.path.dirname(records[0].image_path)
    monkeypatch.chdir(os.path.dirname(data_dir))
    relative = [os.path.join(os.path.basename(data_dir), os.path.basename(r.image_path))
                for r in records]
    extract_features(relative, encoder, str(tmp_path / "features"), image_size=64,
                     dtype="float32", verbose=0, print_fn=lambda _: None)
    monkeypatch.chdir(tmp_path)
    cached = CachedFeatures(str(tmp_path / "features"))
    absolute = [r.image_path for r in records]
    assert cached.keys(absolute) == relative
    dotted = os.path.join(data_dir, ".", os.path.basename(absolute[2]))
    np.testing.assert_array_equal(cached.lookup(dotted).numpy(),
                                  cached.lookup(absolute[2]).numpy())
    batch = next(iter(make_caption_dataset(records, Vocabulary.build(["a"]), batch_size=4,
                                           shuffle=False, features=cached)))
    assert batch[0]["features"].shape == (4, 256, 8)
    with pytest.raises(ValueError, match="1 images have no cached features.*elsewhere.jpg"):
        cached.keys(absolute[:2] + [os.path.join(data_dir, "elsewhere.jpg")])
