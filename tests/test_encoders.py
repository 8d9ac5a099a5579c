import keras
import numpy as np
import pytest

from sat_keras.encoders import SmallCNNEncoder


def test_grid_shape_and_uint8_input():
    encoder = SmallCNNEncoder(filters=(4, 8, 16))
    annotations = encoder(np.zeros((2, 64, 64, 3), "uint8"))
    assert tuple(annotations.shape) == (2, 64, 16)
    assert encoder.compute_output_shape((None, 64, 64, 3)) == (None, 64, 16)
    assert encoder.compute_output_shape((None, None, None, 3)) == (None, None, 16)


def test_preprocessing_is_inside_the_encoder():
    encoder = SmallCNNEncoder(filters=(4,))
    images = np.random.default_rng(0).integers(0, 255, (1, 8, 8, 3)).astype("uint8")
    found = keras.ops.convert_to_numpy(encoder(images))

    def convolutions(x):
        for convolution in encoder.convolutions:
            x = convolution(x)
        return keras.ops.convert_to_numpy(x).reshape(1, -1, 4)

    scaled = images.astype("float32") / 127.5 - 1.0  # to [-1, 1], inside the encoder
    np.testing.assert_allclose(found, convolutions(scaled), rtol=1e-5, atol=1e-6)
    assert not np.allclose(found, convolutions(images.astype("float32")), atol=1e-3)


def test_config_round_trip():
    encoder = SmallCNNEncoder(filters=(4, 8))
    assert SmallCNNEncoder.from_config(encoder.get_config()).get_config() == encoder.get_config()


def test_invalid_filters():
    with pytest.raises(ValueError, match="filters must be"):
        SmallCNNEncoder(filters=())
