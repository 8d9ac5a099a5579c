import keras
import numpy as np
import pytest

from sat_keras.layers.soft_attention import BahdanauStyleSoftAttention


def _inputs():
    rng = np.random.default_rng(0)
    return (rng.normal(size=(2, 16)).astype("float32"),
            rng.normal(size=(2, 4, 8)).astype("float32"))


def test_weights_sum_to_one_and_context_is_the_weighted_sum():
    query, annotations = _inputs()
    layer = BahdanauStyleSoftAttention(units=6)
    context, weights = layer(query, annotations)
    weights = keras.ops.convert_to_numpy(weights)
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, rtol=1e-6)
    assert (weights > 0).all()
    expected = np.einsum("bl,bld->bd", weights, annotations)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(context), expected, rtol=1e-5)


def test_weights_follow_the_equations():
    query, annotations = _inputs()
    layer = BahdanauStyleSoftAttention(units=6, activation="tanh")
    _, weights = layer(query, annotations)
    w_a, b_a = [v.numpy() for v in layer.annotation_projection.weights]
    (w_h,) = [v.numpy() for v in layer.query_projection.weights]
    v = layer.score_vector.numpy()
    scores = np.tanh(annotations @ w_a + b_a + (query @ w_h)[:, None, :]) @ v
    expected = np.exp(scores) / np.exp(scores).sum(-1, keepdims=True)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(weights), expected, rtol=1e-5)


def test_precomputed_keys_give_the_same_result():
    query, annotations = _inputs()
    layer = BahdanauStyleSoftAttention(units=6, activation="relu")
    context, weights = layer(query, annotations)
    keys = layer.project_annotations(annotations)
    context_2, weights_2 = layer(query, annotations, keys=keys)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(context_2),
                               keras.ops.convert_to_numpy(context), rtol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(weights_2),
                               keras.ops.convert_to_numpy(weights), rtol=1e-6)


def test_symbolic_call_and_output_shape():
    layer = BahdanauStyleSoftAttention(units=6)
    context, weights = layer(keras.KerasTensor((None, 16)), keras.KerasTensor((None, 4, 8)))
    assert context.shape == (None, 8) and weights.shape == (None, 4)
    assert layer.compute_output_shape((None, 16), (None, 4, 8)) == ((None, 8), (None, 4))


def test_config_round_trip():
    layer = BahdanauStyleSoftAttention(units=6, activation="relu", name="att")
    restored = BahdanauStyleSoftAttention.from_config(layer.get_config())
    assert restored.get_config() == layer.get_config()
    assert (restored.units, restored.activation) == (6, "relu")


@pytest.mark.parametrize("kwargs, message", [
    ({"units": 0}, "units must be a positive integer"),
    ({"units": 4, "activation": "sigmoid"}, "activation must be one of"),
])
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BahdanauStyleSoftAttention(**kwargs)


def test_beams_share_their_images_annotations():
    # Three queries per image against un-repeated keys and annotations give the
    # rows that repeating each image's annotations three times gives.
    rng = np.random.default_rng(1)
    queries = rng.normal(size=(6, 16)).astype("float32")  # 2 images x 3 beams
    annotations = rng.normal(size=(2, 4, 8)).astype("float32")
    layer = BahdanauStyleSoftAttention(units=6)
    context, weights = layer(queries, annotations)
    repeated_context, repeated_weights = layer(queries, np.repeat(annotations, 3, axis=0))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(weights),
                               keras.ops.convert_to_numpy(repeated_weights), rtol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(context),
                               keras.ops.convert_to_numpy(repeated_context), rtol=1e-5)
    assert layer.compute_output_shape((6, 16), (2, 4, 8)) == ((6, 8), (6, 4))
