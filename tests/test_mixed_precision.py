import keras
import numpy as np
import pytest
from helpers import tiny_image_model


@pytest.fixture
def policy():
    def set_policy(name):
        keras.mixed_precision.set_global_policy(name)

    yield set_policy
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("name", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("attention", ["soft", "hard"])
def test_16_bit_compute_trains_with_a_float32_loss(policy, name, attention):
    policy(name)
    model = tiny_image_model(attention=attention)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    rng = np.random.default_rng(0)
    x = {"images": rng.integers(0, 255, (8, 32, 32, 3)).astype("uint8"),
         "token_ids": rng.integers(1, 10, (8, 6)).astype("int32")}
    y = rng.integers(1, 10, (8, 6)).astype("int32")
    outputs = model(x, training=True)
    assert outputs["logits"].dtype.name == name.split("_")[1]
    assert model.compute_loss(x, y, outputs).dtype.name == "float32"
    assert all(weight.dtype == "float32" for weight in model.trainable_weights)
    before = [np.array(weight) for weight in model.trainable_weights]
    # 12 steps: mixed_float16 starts with a large loss scale and skips steps that overflow.
    history = model.fit(x, y, batch_size=8, epochs=12, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert all(np.all(np.isfinite(np.array(w))) for w in model.trainable_weights)
    assert any(not np.array_equal(b, np.array(w)) for b, w in zip(before, model.trainable_weights))
    if attention == "soft":  # REINFORCE adds noise to the loss
        assert history.history["loss"][-1] < history.history["loss"][0]
