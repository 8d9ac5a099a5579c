"""Every layer, encoder and the model pass the shared checks of `layer_test.run_layer_test`."""

import keras
import numpy as np
import pytest
from helpers import SMALL_MOBILENET_WEIGHTS as SMALL_MOBILENET
from layer_test import run_layer_test

from sat_keras import AttentiveLSTMCell
from sat_keras import BahdanauStyleSoftAttention
from sat_keras import HardAttentionSampler
from sat_keras import PretrainedEncoder
from sat_keras import ShowAttendTell
from sat_keras import SmallCNNEncoder

RNG = np.random.default_rng(0)
ANNOTATIONS = RNG.normal(size=(2, 4, 3)).astype("float32")


def _seeded(make):
    def make_seeded():
        keras.utils.set_random_seed(0)
        return make()
    return make_seeded


def test_soft_attention(tmp_path):
    query = RNG.normal(size=(2, 5)).astype("float32")
    run_layer_test(_seeded(lambda: BahdanauStyleSoftAttention(6)), [query, ANNOTATIONS],
                   expected_shapes=[(2, 3), (2, 4)], tmp_path=tmp_path)


def test_hard_attention_sampler(tmp_path):
    alpha = keras.ops.convert_to_numpy(keras.ops.softmax(RNG.normal(size=(2, 4)), axis=-1))
    noise = RNG.uniform(0.01, 1.0, size=(2, 4)).astype("float32")
    outputs = run_layer_test(lambda: HardAttentionSampler(seed=1),
                             [alpha.astype("float32"), ANNOTATIONS, noise],
                             expected_shapes=[(2, 4), (2, 3), (2,)], tmp_path=tmp_path,
                             trains=False)
    one_hot = keras.ops.convert_to_numpy(outputs[0])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(outputs[1]),
                               np.einsum("bl,bld->bd", one_hot, ANNOTATIONS), rtol=1e-6)


@pytest.mark.parametrize("overrides", [{}, {"gating": "vector"}, {"gating": None},
                                       {"deep_output": False},
                                       {"prev2out": False, "ctx2out": False},
                                       {"attention": "hard", "hard_inference": "argmax"}])
def test_attentive_lstm_cell_step(tmp_path, overrides):
    def make():
        keras.utils.set_random_seed(0)
        cell = AttentiveLSTMCell(9, embedding_dim=5, units=6, attention_dim=7, **overrides)
        cell.build((None, 4, 3))
        return cell

    states = [RNG.normal(size=(2, 6)).astype("float32") for _ in range(2)]
    memory = {"annotations": ANNOTATIONS, "keys": RNG.normal(size=(2, 4, 7)).astype("float32")}
    # A step takes the annotations' projection (memory["keys"]) and the state
    # precomputed by `start`, so those weights are not the step's to train.
    run_layer_test(make, [np.array([1, 4]), states, memory],
                   expected_shapes=[(2, 9), (2, 6), (2, 6), (2, 4)], tmp_path=tmp_path,
                   unused_weights=("annotation_projection", "initial_h", "initial_c"))


def test_small_cnn_encoder(tmp_path):
    images = RNG.integers(0, 256, (2, 32, 32, 3)).astype("uint8")
    run_layer_test(_seeded(lambda: SmallCNNEncoder(filters=(4, 8))), [images],
                   expected_shapes=[(2, 64, 8)], tmp_path=tmp_path)


@pytest.mark.needs_shared(SMALL_MOBILENET)
@pytest.mark.parametrize("trainable_layers", [None, 2])
def test_pretrained_encoder(tmp_path, trainable_layers):
    images = RNG.integers(0, 256, (2, 224, 224, 3)).astype("uint8")

    def make():
        return PretrainedEncoder("mobilenet", weights=str(SMALL_MOBILENET),
                                 trainable=bool(trainable_layers),
                                 trainable_layers=trainable_layers,
                                 backbone_kwargs={"alpha": 0.25})

    run_layer_test(make, [images], expected_shapes=[(2, 196, 128)], tmp_path=tmp_path,
                   trains=bool(trainable_layers), config_resets=("weights",))


@pytest.mark.parametrize("attention", ["soft", "hard"])
def test_show_attend_tell(tmp_path, vocabulary, attention):
    inputs = {"features": ANNOTATIONS, "token_ids": np.array([[1, 4, 7], [1, 4, 0]])}

    def make():
        keras.utils.set_random_seed(0)
        return ShowAttendTell(vocabulary, decoder={"embedding_dim": 5, "units": 6,
                                                   "attention_dim": 7, "attention": attention,
                                                   "seed": 3})

    run_layer_test(make, [inputs], tmp_path=tmp_path,
                   expected_shapes=[(2, 3, 4), (2, 3, len(vocabulary)), (2, 3, 6), (2, 3)])
