import json

import keras
import numpy as np
import pytest

from sat_keras import ShowAttendTell
from sat_keras.models import losses


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def _as_json(config):
    return json.loads(json.dumps(config))  # tuples and lists compare equal


def _loss(model, inputs, targets):
    return float(_numpy(model.compute_loss(y=targets, y_pred=model(inputs), training=False)))


def test_teacher_forced_outputs(make_model, batch):
    inputs, _ = batch
    outputs = make_model()(inputs)
    assert tuple(outputs["logits"].shape) == (2, 5, 18)
    np.testing.assert_allclose(_numpy(outputs["attention_weights"]).sum(-1), 1.0, rtol=1e-5)


def test_images_go_through_the_encoder(make_model):
    model = make_model(with_encoder=True)
    images = np.random.default_rng(0).integers(0, 255, (2, 32, 32, 3)).astype("uint8")
    outputs = model({"images": images, "token_ids": np.array([[1, 4], [1, 5]])})
    assert tuple(outputs["attention_weights"].shape) == (2, 2, 64)  # 8x8 grid


def test_features_only_model_rejects_images(make_model):
    with pytest.raises(ValueError, match="no encoder"):
        make_model()({"images": np.zeros((1, 32, 32, 3), "uint8"),
                      "token_ids": np.array([[1]])})


@pytest.mark.parametrize("annotation_projection", [None, 5])
def test_stepwise_decoding_fed_the_teacher_tokens_reproduces_teacher_forcing(
        make_model, batch, annotation_projection):
    inputs, _ = batch
    # dropout must be off outside training
    model = make_model(dropout=0.5, annotation_projection=annotation_projection)
    teacher = _numpy(model(inputs)["logits"])
    teacher_attention = _numpy(model(inputs)["attention_weights"])
    state, memory = model.start(model.encode(inputs))
    for t in range(inputs["token_ids"].shape[1]):
        logits, state, attention = model.step(inputs["token_ids"][:, t], state, memory)
        np.testing.assert_allclose(_numpy(logits), teacher[:, t], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(_numpy(attention), teacher_attention[:, t], rtol=1e-5,
                                   atol=1e-6)


def test_padding_does_not_change_the_loss(make_model, batch):
    inputs, targets = batch
    model = make_model()
    padded_inputs = dict(inputs, token_ids=np.pad(inputs["token_ids"], ((0, 0), (0, 3))))
    padded_targets = np.pad(targets, ((0, 0), (0, 3)))
    np.testing.assert_allclose(_loss(model, padded_inputs, padded_targets),
                               _loss(model, inputs, targets), rtol=1e-6)


def test_a_per_image_batch_gives_the_loss_of_its_captions_each_with_its_image(
        make_model, batch):
    inputs, targets = batch
    model = make_model()
    # Image 0 with captions 0 and 1, image 1 with caption 1: rows 0, 1, 2.
    grouped = {"features": inputs["features"], "caption_image": np.array([0, 0, 1]),
               "token_ids": inputs["token_ids"][[0, 1, 1]]}
    flat = {"features": inputs["features"][[0, 0, 1]], "token_ids": grouped["token_ids"]}
    np.testing.assert_allclose(_loss(model, grouped, targets[[0, 1, 1]]),
                               _loss(model, flat, targets[[0, 1, 1]]), rtol=1e-6)
    swapped = dict(grouped, caption_image=np.array([1, 1, 0]))
    assert not np.isclose(_loss(model, swapped, targets[[0, 1, 1]]),
                          _loss(model, flat, targets[[0, 1, 1]]))


def test_loss_is_nll_plus_weighted_penalty(make_model, batch):
    inputs, targets = batch
    model = make_model(doubly_stochastic_weight=0.3)
    outputs = model(inputs)
    nll = _numpy(losses.masked_nll(targets, outputs["logits"]))
    penalty = _numpy(losses.doubly_stochastic_penalty(outputs["attention_weights"], targets))
    np.testing.assert_allclose(_loss(model, inputs, targets), np.mean(nll + 0.3 * penalty),
                               rtol=1e-5)


def test_label_smoothing_mixes_the_nll_with_the_uniform_cross_entropy(make_model, batch):
    inputs, targets = batch
    model = make_model(doubly_stochastic_weight=0.3, label_smoothing=0.1)
    outputs = model(inputs)
    nll = _numpy(losses.masked_nll(targets, outputs["logits"]))
    uniform = _numpy(losses.uniform_cross_entropy(targets, outputs["logits"]))
    penalty = _numpy(losses.doubly_stochastic_penalty(outputs["attention_weights"], targets))
    np.testing.assert_allclose(_loss(model, inputs, targets),
                               np.mean(0.9 * nll + 0.1 * uniform + 0.3 * penalty), rtol=1e-5)
    assert not np.allclose(uniform, nll)  # the smoothing term changes the loss
    model.reset_metrics()
    model.compute_loss(y=targets, y_pred=outputs, training=False)
    np.testing.assert_allclose(float(model.nll_tracker.result()), np.mean(nll), rtol=1e-5)


def test_loss_falls_when_fitting_a_tiny_batch(make_model, batch):
    inputs, targets = batch
    model = make_model()
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    history = model.fit(inputs, targets, epochs=30, batch_size=2, verbose=0)
    losses_seen = history.history["loss"]
    assert losses_seen[-1] < 0.5 * losses_seen[0]
    assert {"nll", "attention_penalty"} <= set(history.history)


def test_fit_with_xla(make_model, batch):
    inputs, targets = batch
    model = make_model()
    model.compile(optimizer="adam", jit_compile=True)
    history = model.fit(inputs, targets, epochs=2, batch_size=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def test_caption_returns_words_padding_and_attention(make_model, batch):
    inputs, _ = batch
    model = make_model()
    result = model.caption(features=inputs["features"], max_length=6)
    assert len(result["captions"]) == 2
    assert result["token_ids"].shape == (2, 6)
    assert result["attention_weights"].shape == (2, 6, 4)
    for ids, caption, attention in zip(result["token_ids"], result["captions"],
                                       result["attention_weights"]):
        assert caption == model.vocabulary.decode(ids)
        ends = np.flatnonzero(ids == 2)
        if ends.size:
            assert not ids[ends[0] + 1:].any() and not attention[ends[0] + 1:].any()
    # Greedy decoding equals the argmax of the teacher-forced logits fed its own tokens.
    first = result["token_ids"][:, :3]
    token_ids = np.concatenate([np.ones((2, 1), "int32"), first[:, :2]], axis=1)
    logits = _numpy(model(dict(inputs, token_ids=token_ids))["logits"])
    np.testing.assert_array_equal(logits.argmax(-1)[first[:, 1] != 2], first[first[:, 1] != 2])


@pytest.mark.parametrize("annotation_projection", [None, 6])
def test_keras_file_round_trip_gives_identical_outputs(make_model, batch, tmp_path,
                                                       annotation_projection):
    inputs, _ = batch
    model = make_model(with_encoder=True, gating="vector",
                       annotation_projection=annotation_projection)
    images = np.random.default_rng(0).integers(0, 255, (2, 32, 32, 3)).astype("uint8")
    image_inputs = {"images": images, "token_ids": inputs["token_ids"]}
    expected = _numpy(model(image_inputs)["logits"])
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    np.testing.assert_allclose(_numpy(restored(image_inputs)["logits"]), expected, rtol=1e-6)
    assert restored.vocabulary == model.vocabulary
    assert _as_json(restored.get_config()) == _as_json(model.get_config())
    np.testing.assert_array_equal(restored.caption(images=images)["token_ids"],
                                  model.caption(images=images)["token_ids"])


def test_config_round_trip(make_model):
    model = make_model(with_encoder=True, loss_normalization="token", deep_output=False,
                       label_smoothing=0.1)
    restored = ShowAttendTell.from_config(model.get_config())
    assert restored.get_config() == model.get_config()


@pytest.mark.parametrize("overrides, message", [
    ({"attention": "hardest"}, "attention must be one of"),
    ({"sample_mixing": "step"}, "sample_mixing must be one of"),
    ({"expected_context_probability": 1.5}, "expected_context_probability"),
    ({"baseline_decay": 1.0}, "baseline_decay"),
    ({"loss_normalization": "batch"}, "loss_normalization must be one of"),
    ({"doubly_stochastic_weight": -1.0}, "doubly_stochastic_weight must be >= 0"),
    ({"label_smoothing": 1.0}, "label_smoothing must be in"),
])
def test_invalid_arguments(make_model, overrides, message):
    with pytest.raises(ValueError, match=message):
        make_model(**overrides)


def test_caption_argument_checks(make_model, batch):
    model = make_model()
    with pytest.raises(ValueError, match="exactly one of"):
        model.caption()
    with pytest.raises(ValueError, match="max_length"):
        model.caption(features=batch[0]["features"], max_length=0)


def test_beam_search_through_the_model(make_model, batch):
    model = make_model()
    features = np.random.default_rng(3).normal(size=(5, 4, 8)).astype("float32")
    greedy = model.caption(features=features, max_length=6)
    beam_1 = model.caption(features=features, max_length=6, beam_size=1)
    np.testing.assert_array_equal(beam_1["token_ids"], greedy["token_ids"])
    beam_3 = model.caption(features=features, max_length=6, beam_size=3)
    assert beam_3["token_ids"].shape == (5, 6) and len(beam_3["captions"]) == 5
    # On this seeded model, beam 3 finds captions at least as probable as greedy ones.
    assert (beam_3["scores"] >= greedy["scores"] - 1e-5).all()
    with pytest.raises(ValueError, match="beam_size"):
        model.caption(features=features, beam_size=0)



@pytest.mark.parametrize("overrides", [{}, {"attention": "hard", "hard_inference": "argmax"}])
def test_batched_beam_search_equals_image_by_image(make_model, overrides):
    # The beams of each image attend over that image's annotations only.
    model = make_model(**overrides)
    features = np.random.default_rng(5).normal(size=(4, 4, 8)).astype("float32")
    batched = model.caption(features=features, max_length=6, beam_size=3, batch_size=4)
    for index in range(4):
        alone = model.caption(features=features[index:index + 1], max_length=6, beam_size=3,
                              batch_size=1)
        np.testing.assert_array_equal(alone["token_ids"][0], batched["token_ids"][index])
        np.testing.assert_allclose(alone["attention_weights"][0],
                                   batched["attention_weights"][index], atol=1e-6)
        np.testing.assert_allclose(alone["scores"][0], batched["scores"][index], rtol=1e-5)

def test_caption_by_sampling(make_model, batch):
    model = make_model()
    features = np.repeat(batch[0]["features"][:1], 50, axis=0)
    greedy = model.caption(features=features, max_length=6)
    cold = model.caption(features=features, max_length=6, temperature=1e-3)
    np.testing.assert_array_equal(cold["token_ids"], greedy["token_ids"])
    hot = model.caption(features=features, max_length=6, temperature=5.0)
    assert len({tuple(ids) for ids in hot["token_ids"]}) > 1
    with pytest.raises(ValueError, match="temperature"):
        model.caption(features=features, temperature=0.0)


def test_n_best_captions_are_the_beams_best_scored_by_the_model(make_model):
    # Each of the n best is scored again word by word through the model's own
    # step: its score is that caption's log-probability, its attention the
    # attention the model gives when fed that caption.
    model = make_model()
    features = np.random.default_rng(7).normal(size=(3, 4, 8)).astype("float32")
    best = model.caption(features=features, max_length=6, beam_size=4)
    several = model.caption(features=features, max_length=6, beam_size=4, num_captions=3)
    assert several["token_ids"].shape == (3, 3, 6)
    assert several["attention_weights"].shape == (3, 3, 6, 4)
    assert [row[0] for row in several["captions"]] == best["captions"]
    np.testing.assert_array_equal(several["token_ids"][:, 0], best["token_ids"])
    for image in range(3):
        assert len({tuple(ids) for ids in several["token_ids"][image]}) == 3
        for slot in range(3):
            ids = several["token_ids"][image, slot]
            length = int(np.count_nonzero(ids))
            state, memory = model.start(model.encode({"features": features[image:image + 1]}))
            log_p, previous = 0.0, 1
            for t in range(length):
                logits, state, alpha = model.step(np.array([previous]), state, memory)
                log_p += float(_numpy(keras.ops.log_softmax(logits, axis=-1))[0, ids[t]])
                np.testing.assert_allclose(_numpy(alpha)[0],
                                           several["attention_weights"][image, slot, t],
                                           rtol=1e-4, atol=1e-6)
                previous = ids[t]
            np.testing.assert_allclose(several["scores"][image, slot], log_p, rtol=1e-4)
    with pytest.raises(ValueError, match="num_captions"):
        model.caption(features=features, beam_size=2, num_captions=3)
    with pytest.raises(ValueError, match="num_captions"):
        model.caption(features=features, temperature=1.0, num_captions=1)
