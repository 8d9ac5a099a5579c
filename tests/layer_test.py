"""`run_layer_test`: the checks every layer, encoder and model of the package passes.

In the manner of keras-hub's `TestCase.run_layer_test`: a config round
trip, an eager and a symbolic call with the shapes expected, one training
step that changes every trainable weight, and a `.keras` round trip that
gives the same outputs.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import tree


@keras.saving.register_keras_serializable(package="sat_keras_tests")
class CallWrapper(keras.Model):
    """A model that calls one layer on `inputs["args"]`, for fit and `.keras` files."""

    def __init__(self, layer, **kwargs):
        super().__init__(**kwargs)
        self.layer = layer

    def call(self, inputs, training=None):
        outputs = self.layer(*inputs["args"])
        if training:  # the training step's loss: the float outputs' mean square
            self.add_loss(_squared_float_outputs(outputs))
        return outputs

    def get_config(self):
        config = super().get_config()
        config["layer"] = keras.saving.serialize_keras_object(self.layer)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layer"] = keras.saving.deserialize_keras_object(config["layer"])
        return cls(**config)


def _numpy_tree(outputs):
    return tree.map_structure(lambda x: keras.ops.convert_to_numpy(x), outputs)


def _shapes(outputs):
    """The shapes of the outputs, in `tree.flatten` order (a dict's sorted by key)."""
    return [tuple(x.shape) for x in tree.flatten(outputs)]


def _symbolic(value):
    value = np.asarray(value)
    return keras.KerasTensor(value.shape, dtype=str(value.dtype))


def _squared_float_outputs(outputs):
    floats = [x for x in tree.flatten(outputs) if "float" in str(x.dtype)]
    return sum(keras.ops.mean(keras.ops.square(keras.ops.cast(x, "float32"))) for x in floats)


def run_layer_test(make_layer, args, kwargs=None, expected_shapes=None, tmp_path=None,
                   trains=True, compare_outputs=True, unused_weights=(), config_resets=()):
    """Runs the shared checks on the layer `make_layer()` returns.

    Args:
        make_layer: builds a fresh layer (seeded by the caller if it needs to be).
        args: the positional call arguments (numpy, nested as the layer takes them).
        kwargs: keyword call arguments that are not tensors (e.g. `training`).
        expected_shapes: the outputs' shapes in `tree.flatten` order (a dict's
            sorted by key).
        tmp_path: a folder for the `.keras` file (skipped without one).
        trains: whether one fit step must change every trainable weight.
        unused_weights: names of weights this call does not use (left out of
            that check), e.g. what a decoder step takes precomputed.
        config_resets: config keys that `from_config` deliberately resets (a
            pretrained encoder's weights source: its weights come from the file).
        compare_outputs: whether two calls give equal outputs (False for
            layers that sample).
    """
    kwargs = kwargs or {}
    layer = make_layer()

    # Config round trip, before and after building.
    def round_trip(config):
        kept = {key: value for key, value in config.items() if key not in config_resets}
        again = type(layer).from_config(config).get_config()
        return {key: value for key, value in again.items() if key not in config_resets} == kept

    assert round_trip(layer.get_config())

    # Eager call.
    outputs = layer(*args, **kwargs)
    if expected_shapes is not None:
        assert _shapes(outputs) == list(expected_shapes), (_shapes(outputs), expected_shapes)
    assert round_trip(layer.get_config())

    # Symbolic call: the same shapes from KerasTensors.
    symbolic = make_layer()(*tree.map_structure(_symbolic, args), **kwargs)
    assert _shapes_compatible(symbolic, outputs), (_shapes(symbolic), _shapes(outputs))

    # One fit step changes every trainable weight.
    model = CallWrapper(make_layer())
    inputs = {"args": _as_tuples(list(args))}  # tf.data reads lists as tensors, tuples as nests
    model(inputs)
    if trains:
        assert model.trainable_weights, "nothing to train"
        before = [w.numpy().copy() for w in model.trainable_weights]
        model.compile(optimizer=keras.optimizers.SGD(0.1))
        model.fit(tf.data.Dataset.from_tensors(inputs), epochs=1, verbose=0, shuffle=False)
        unchanged = [w.path for w, b in zip(model.trainable_weights, before)
                     if np.array_equal(w.numpy(), b)
                     and not any(name in w.path for name in unused_weights)]
        assert unchanged == [], f"weights a fit step left unchanged: {unchanged}"

    # .keras round trip: the same outputs.
    if tmp_path is not None:
        path = tmp_path / f"{type(layer).__name__}.keras"
        model.save(path)
        loaded = keras.models.load_model(path)
        if compare_outputs:
            expected = _numpy_tree(model(inputs))
            found = _numpy_tree(loaded(inputs))
            for a, b in zip(tree.flatten(found), tree.flatten(expected)):
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    return outputs


def _as_tuples(value):
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuples(item) for item in value)
    if isinstance(value, dict):
        return {key: _as_tuples(item) for key, item in value.items()}
    return value


def _shapes_compatible(symbolic, outputs):
    symbolic, outputs = _shapes(symbolic), _shapes(outputs)
    return len(symbolic) == len(outputs) and all(
        len(s) == len(o) and all(a is None or a == b for a, b in zip(s, o))
        for s, o in zip(symbolic, outputs))
