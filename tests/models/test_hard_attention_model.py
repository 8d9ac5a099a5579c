import keras
import numpy as np
import pytest

from sat_keras import ShowAttendTell
from sat_keras.models import losses


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


@pytest.fixture
def hard_model(make_model):
    return make_model(attention="hard", seed=3)


def test_training_step_moves_the_baseline_as_specified(make_model, batch):
    inputs, targets = batch
    hard_model = make_model(attention="hard", seed=3, reinforce_baseline="caption")
    hard_model.compile(optimizer=keras.optimizers.Adam(1e-3))
    logs = hard_model.train_on_batch(inputs, targets, return_dict=True)
    assert float(_numpy(hard_model.baseline)) == pytest.approx(0.1 * logs["nll"], rel=1e-5)
    before = float(_numpy(hard_model.baseline))
    logs = hard_model.train_on_batch(inputs, targets, return_dict=True)
    assert float(_numpy(hard_model.baseline)) == pytest.approx(
        0.9 * before + 0.1 * logs["nll"], rel=1e-5)
    assert {"reinforce", "entropy_bonus"} <= set(logs)


def test_the_baseline_gets_no_gradient(hard_model, batch):
    import tensorflow as tf

    inputs, targets = batch
    hard_model(inputs)
    assert all(v is not hard_model.baseline for v in hard_model.trainable_weights)
    with tf.GradientTape() as tape:
        loss = hard_model.compute_loss(y=targets, y_pred=hard_model(inputs, training=True))
    assert tape.gradient(loss, hard_model.baseline) is None


def test_evaluation_leaves_the_baseline_alone(hard_model, batch):
    inputs, targets = batch
    hard_model.compile(optimizer="adam")
    hard_model.evaluate(inputs, targets, verbose=0)
    assert float(_numpy(hard_model.baseline)) == 0.0


def test_inference_is_deterministic_and_uses_the_expected_context(hard_model, make_model, batch):
    inputs, _ = batch
    first = _numpy(hard_model(inputs)["logits"])
    np.testing.assert_array_equal(_numpy(hard_model(inputs)["logits"]), first)
    soft = make_model(attention="soft")
    soft(inputs)
    hard_variables = {v.path.split("/", 1)[1]: v for v in hard_model.weights}
    for variable in soft.weights:
        variable.assign(hard_variables[variable.path.split("/", 1)[1]])
    np.testing.assert_allclose(_numpy(soft(inputs)["logits"]), first, rtol=1e-5)
    captions = hard_model.caption(features=inputs["features"], max_length=5)
    again = hard_model.caption(features=inputs["features"], max_length=5)
    np.testing.assert_array_equal(captions["token_ids"], again["token_ids"])


def test_training_samples_differ_from_the_expected_context(hard_model, batch):
    inputs, _ = batch
    expected = _numpy(hard_model(inputs)["logits"])
    sampled = [_numpy(hard_model(inputs, training=True)["logits"]) for _ in range(4)]
    assert any(not np.allclose(s, expected) for s in sampled)
    log_probs = _numpy(hard_model(inputs, training=True)["sample_log_probs"])
    assert (log_probs <= 0).all()


def test_per_batch_mixing_makes_one_choice_for_all_images(make_model):
    model = make_model(attention="hard", sample_mixing="batch", seed=0)
    for _ in range(5):
        choice = _numpy(model.decoder._sample_choice(6))
        assert len(set(choice.tolist())) == 1
    per_image = make_model(attention="hard", seed=0)
    choices = np.stack([_numpy(per_image.decoder._sample_choice(400)) for _ in range(2)])
    assert 0.4 < choices.mean() < 0.6  # expected context with probability 0.5


@pytest.mark.parametrize("mode", ["sample", "argmax"])
def test_sampling_and_argmax_inference_options(make_model, batch, mode):
    inputs, _ = batch
    model = make_model(attention="hard", hard_inference=mode, seed=1)
    result = model.caption(features=inputs["features"], max_length=5)
    assert result["token_ids"].shape == (2, 5)


def test_loss_falls_with_hard_attention(hard_model, batch):
    inputs, targets = batch
    hard_model.compile(optimizer=keras.optimizers.Adam(0.01))
    history = hard_model.fit(inputs, targets, epochs=30, batch_size=2, verbose=0)
    assert history.history["nll"][-1] < 0.5 * history.history["nll"][0]


def test_save_and_reload_keep_the_baseline(hard_model, batch, tmp_path):
    inputs, targets = batch
    hard_model.compile(optimizer="adam")
    hard_model.train_on_batch(inputs, targets)
    hard_model.save(tmp_path / "hard.keras")
    restored = keras.models.load_model(tmp_path / "hard.keras")
    assert float(_numpy(restored.baseline)) == pytest.approx(float(_numpy(hard_model.baseline)))
    assert float(_numpy(restored.baseline)) != 0.0
    np.testing.assert_allclose(_numpy(restored(inputs)["logits"]),
                               _numpy(hard_model(inputs)["logits"]), rtol=1e-6)
    assert restored.decoder.attention == "hard"
    assert restored.get_config()["decoder"]["config"]["attention"] == "hard"
    assert isinstance(ShowAttendTell.from_config(restored.get_config()), ShowAttendTell)


def test_a_per_token_baseline_averages_nll_per_token_and_scales_by_length(make_model, batch):
    inputs, targets = batch  # captions of 5 and 3 tokens
    model = make_model(attention="hard", seed=3, reinforce_baseline="per_token")
    model(inputs)
    nll = keras.ops.convert_to_tensor([10.0, 6.0])
    model.baseline.assign(1.5)
    expected, observed = model._baseline_terms(nll, targets)
    np.testing.assert_allclose(_numpy(expected), [7.5, 4.5])  # 1.5 per token x length
    np.testing.assert_allclose(_numpy(observed), [2.0, 2.0])  # both 2 per token
    model.baseline.assign(0.0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.train_on_batch(inputs, targets)
    assert float(_numpy(model.baseline)) > 0.0
    restored = ShowAttendTell.from_config(model.get_config())
    assert restored.reinforce_baseline == "per_token"


def test_an_unknown_baseline_is_refused(make_model):
    with pytest.raises(ValueError, match="reinforce_baseline"):
        make_model(attention="hard", reinforce_baseline="median")


def test_the_doubly_stochastic_penalty_defaults_to_soft_attention_only(make_model, batch):
    inputs, targets = batch
    assert make_model().doubly_stochastic_weight == 1.0
    explicit = make_model(attention="hard", doubly_stochastic_weight=0.5)
    assert explicit.doubly_stochastic_weight == 0.5
    hard = make_model(attention="hard", seed=3)
    assert hard.doubly_stochastic_weight == 0.0
    outputs = hard(inputs)
    penalty = _numpy(losses.doubly_stochastic_penalty(outputs["attention_weights"], targets))
    assert penalty.min() > 0.0  # so a loss without it differs
    nll = _numpy(losses.masked_nll(targets, outputs["logits"]))
    loss = hard.compute_loss(y=targets, y_pred=outputs, training=False)
    np.testing.assert_allclose(_numpy(loss), np.mean(nll), rtol=1e-5)
    assert ShowAttendTell.from_config(hard.get_config()).doubly_stochastic_weight == 0.0


def test_leave_one_out_decodes_every_caption_along_several_paths(make_model, batch):
    inputs, targets = batch
    model = make_model(attention="hard", seed=3, reinforce_baseline="leave_one_out",
                       reinforce_samples=3)
    outputs = model(inputs, training=True)  # 3 paths x 2 captions, path-major
    assert _numpy(outputs["logits"]).shape[0] == 6
    assert _numpy(model(inputs)["logits"]).shape[0] == 2  # one (expected) path outside training
    # Each path is judged against the mean NLL of its own caption's other paths.
    nll = keras.ops.convert_to_tensor([1.0, 10.0, 2.0, 20.0, 6.0, 30.0])  # path p, caption b
    expected, observed = model._baseline_terms(nll, np.tile(targets, (3, 1)))
    np.testing.assert_allclose(_numpy(expected), [4.0, 25.0, 3.5, 20.0, 1.5, 15.0])
    np.testing.assert_allclose(_numpy(observed), _numpy(nll))
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    logs = model.train_on_batch(inputs, targets, return_dict=True)
    assert np.isfinite(logs["loss"]) and {"reinforce", "entropy_bonus"} <= set(logs)
    restored = ShowAttendTell.from_config(model.get_config())
    assert (restored.reinforce_baseline, restored.reinforce_samples) == ("leave_one_out", 3)


def test_the_leave_one_out_loss_is_its_formula(make_model, batch):
    import tensorflow as tf

    inputs, targets = batch
    model = make_model(attention="hard", seed=3, reinforce_baseline="leave_one_out",
                       reinforce_samples=2, entropy_weight=0.0)
    tf.random.set_seed(0)
    outputs = model(inputs, training=True)
    loss = float(_numpy(model.compute_loss(y=targets, y_pred=outputs)))
    both = np.tile(targets, (2, 1))
    nll = _numpy(losses.masked_nll(both, outputs["logits"]))  # (4,): path 0, then path 1
    mask = both != 0
    log_probs = (_numpy(outputs["sample_log_probs"]) * mask).sum(axis=1)
    others = np.concatenate([nll[2:], nll[:2]])  # the other path of the same caption
    reinforce = (nll - others) * log_probs
    want = np.mean(nll + model.reinforce_weight * reinforce)
    assert loss == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("baseline, samples", [("leave_one_out", 1), ("per_token", 2),
                                               ("leave_one_out", 0)])
def test_paths_and_the_leave_one_out_baseline_go_together(make_model, baseline, samples):
    with pytest.raises(ValueError, match="reinforce_samples must be at least 2"):
        make_model(attention="hard", reinforce_baseline=baseline, reinforce_samples=samples)


def _learned_model(make_model):
    model = make_model(attention="hard", seed=3, reinforce_baseline="learned", entropy_weight=0.0)
    model.build({"features": (None, 4, 8)})
    rng = np.random.default_rng(5)
    model.baseline_head.kernel.assign(rng.normal(size=(12, 1)).astype("float32"))
    model.baseline_head.bias.assign([0.25])
    model.baseline.assign(1.5)
    return model


def test_the_learned_baseline_loss_is_its_formula(make_model, batch):
    import tensorflow as tf

    inputs, targets = batch  # captions of 5 and 3 tokens
    model = _learned_model(make_model)
    tf.random.set_seed(0)
    outputs = model(inputs, training=True)
    loss = float(_numpy(model.compute_loss(y=targets, y_pred=outputs)))
    nll = _numpy(losses.masked_nll(targets, outputs["logits"]))  # (2,)
    mask = (targets != 0).astype("float32")
    lengths = mask.sum(axis=1)
    kernel, bias = (_numpy(w) for w in model.baseline_head.weights)
    # b_t per word reads h_{t-1}, the state step t attends from
    per_word = 1.5 + _numpy(outputs["previous_hidden"]) @ kernel[:, 0] + bias[0]  # (2, T)
    advantage = nll[:, None] - per_word * lengths[:, None]  # (2, T)
    reinforce = (advantage * _numpy(outputs["sample_log_probs"]) * mask).sum(axis=1)
    regression = (((nll / lengths)[:, None] - per_word) ** 2 * mask).sum(axis=1) / lengths
    want = np.mean(nll + model.reinforce_weight * reinforce + regression)
    assert loss == pytest.approx(want, rel=1e-5)
    # A caption-level baseline, the same for every step, gives another loss.
    flat = per_word.mean(axis=1, keepdims=True) * lengths[:, None]
    other = ((nll[:, None] - flat) * _numpy(outputs["sample_log_probs"]) * mask).sum(axis=1)
    assert abs(np.mean(model.reinforce_weight * (other - reinforce))) > 1e-4


def test_the_learned_baseline_learns_from_its_error_alone(make_model, batch):
    import tensorflow as tf

    inputs, targets = batch
    model = _learned_model(make_model)
    decoder_weights = model.decoder.trainable_weights
    with tf.GradientTape(persistent=True) as tape:
        outputs = model(inputs, training=True)
        nll = losses.masked_nll(targets, outputs["logits"])
        lengths = np.maximum((targets != 0).sum(axis=1), 1).astype("float32")
        regression = keras.ops.mean(losses.baseline_regression(
            nll / lengths, model._learned_baseline(outputs), targets))
        loss = model.compute_loss(y=targets, y_pred=outputs)
    # the head's gradient is the regression's; nothing reaches the decoder through it
    for from_loss, from_regression in zip(tape.gradient(loss, model.baseline_head.weights),
                                          tape.gradient(regression, model.baseline_head.weights)):
        np.testing.assert_allclose(_numpy(from_loss), _numpy(from_regression), rtol=1e-5)
    assert all(g is None for g in tape.gradient(regression, decoder_weights))
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    before = _numpy(model.baseline_head.kernel).copy()
    logs = model.train_on_batch(inputs, targets, return_dict=True)
    assert {"reinforce", "entropy_bonus", "baseline_error"} <= set(logs)
    assert not np.allclose(_numpy(model.baseline_head.kernel), before)


def test_save_and_reload_keep_the_learned_baseline(make_model, batch, tmp_path):
    inputs, targets = batch
    model = _learned_model(make_model)
    model.compile(optimizer="adam")
    model.train_on_batch(inputs, targets)
    model.save(tmp_path / "learned.keras")
    restored = keras.models.load_model(tmp_path / "learned.keras")
    assert restored.reinforce_baseline == "learned"
    for saved, loaded in zip(model.baseline_head.weights, restored.baseline_head.weights):
        np.testing.assert_array_equal(_numpy(loaded), _numpy(saved))


def test_a_soft_model_has_no_baseline_head(make_model):
    assert make_model(attention="soft", reinforce_baseline="learned").baseline_head is None


def test_the_default_per_token_loss_is_its_formula(make_model, batch):
    import tensorflow as tf

    inputs, targets = batch  # captions of 5 and 3 tokens
    model = make_model(attention="hard", seed=3, entropy_weight=0.0,
                       expected_context_probability=0.0)
    assert model.reinforce_baseline == "per_token"  # the authors' choice, the default
    model(inputs)
    model.baseline.assign(1.5)
    tf.random.set_seed(0)
    outputs = model(inputs, training=True)
    loss = float(_numpy(model.compute_loss(y=targets, y_pred=outputs)))
    nll = _numpy(losses.masked_nll(targets, outputs["logits"]))  # (2,)
    mask = targets != 0
    log_probs = (_numpy(outputs["sample_log_probs"]) * mask).sum(axis=1)  # each caption's own
    reinforce = (nll - 1.5 * mask.sum(axis=1)) * log_probs
    assert np.all(log_probs != 0)  # every caption sampled, so both terms count
    want = np.mean(nll + model.reinforce_weight * reinforce)
    assert loss == pytest.approx(want, rel=1e-5)
    # Without the baseline, or with the captions' samples swapped, the loss differs.
    no_baseline = np.mean(nll + model.reinforce_weight * nll * log_probs)
    swapped = np.mean(nll + model.reinforce_weight
                      * (nll - 1.5 * mask.sum(axis=1)) * log_probs[::-1])
    assert loss != pytest.approx(no_baseline, rel=1e-4)
    assert loss != pytest.approx(swapped, rel=1e-4)
