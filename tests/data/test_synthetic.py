import numpy as np
import pytest
import tensorflow as tf

from sat_keras.data.synthetic import generate_synthetic
from sat_keras.data.synthetic import make_captions
from sat_keras.data.synthetic import object_cells
from sat_keras.data.synthetic import read_synthetic
from sat_keras.data.synthetic import read_synthetic_objects


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("synthetic")
    generate_synthetic(str(path), num_images=30, seed=3)
    return str(path)


def test_records_have_five_captions_naming_every_object(data_dir):
    records = read_synthetic(data_dir)
    objects = read_synthetic_objects(data_dir)
    assert len(records) == 30
    for record in records:
        assert len(record.captions) == 5
        for obj in objects[record.image_path]:
            name = f"{obj['size']} {obj['colour']} {obj['shape']}"
            assert all(name in caption for caption in record.captions)


def test_splits_are_by_image(data_dir):
    splits = [record.split for record in read_synthetic(data_dir)]
    assert splits.count("train") == 24 and splits.count("val") == 3
    assert splits.count("test") == 3


def test_same_seed_same_data_other_seed_other_data(tmp_path, data_dir):
    again = generate_synthetic(str(tmp_path / "again"), num_images=30, seed=3)
    other = generate_synthetic(str(tmp_path / "other"), num_images=30, seed=4)
    first = read_synthetic(data_dir)
    assert [r.captions for r in again] == [r.captions for r in first]
    assert [r.captions for r in other] != [r.captions for r in first]
    image = tf.io.decode_png(tf.io.read_file(first[0].image_path)).numpy()
    image_again = tf.io.decode_png(tf.io.read_file(again[0].image_path)).numpy()
    np.testing.assert_array_equal(image, image_again)
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8


def test_objects_are_drawn_inside_their_boxes(data_dir):
    for path, objects in list(read_synthetic_objects(data_dir).items())[:10]:
        image = tf.io.decode_png(tf.io.read_file(path)).numpy().astype(int)
        for obj in objects:
            x0, y0, x1, y1 = obj["box"]
            # Shapes are bright and saturated; the background is grey ~40.
            assert image[y0:y1, x0:x1].max() > 150


def test_object_cells_cover_the_box():
    # An 8x8 grid on 64 pixels: cells of 8 pixels.
    assert object_cells([0, 0, 8, 8], 64, 8) == [0]
    assert object_cells([4, 4, 12, 10], 64, 8) == [0, 1, 8, 9]
    assert object_cells([56, 56, 64, 64], 64, 8) == [63]


def test_captions_for_two_objects_state_the_relation_both_ways():
    left = {"size": "small", "colour": "red", "shape": "circle", "row": 0, "column": 0}
    right = {"size": "large", "colour": "blue", "shape": "square", "row": 2, "column": 1}
    captions = make_captions([left, right])
    assert "a small red circle to the left of a large blue square" in captions
    assert "a large blue square to the right of a small red circle" in captions
    below = dict(right, column=0)
    assert "a small red circle above a large blue square" in make_captions([left, below])


def test_invalid_arguments_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="num_images"):
        generate_synthetic(str(tmp_path), num_images=1)
    with pytest.raises(FileNotFoundError, match="Generate the data first"):
        read_synthetic(str(tmp_path / "missing"))
