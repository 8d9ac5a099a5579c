import keras
import numpy as np
import pytest
import tensorflow as tf

from sat_keras import ShowAttendTell
from sat_keras import Vocabulary
from sat_keras import decoding
from sat_keras import metrics
from sat_keras.data.pipeline import make_per_image_dataset
from sat_keras.data.records import CaptionRecord
from sat_keras.models import losses
from sat_keras.training.fit import train
from sat_keras.training.rewards import CiderDReward
from sat_keras.training.self_critical import SelfCritical
from sat_keras.training.self_critical import SelfCriticalSettings
from sat_keras.training.self_critical import sequence_log_probs
from sat_keras.training.settings import RunSettings
from sat_keras.training.settings import TrainingSettings

TOY_CAPTIONS = [["a red circle", "one red circle"], ["a blue square", "the blue square"],
                ["two green dots", "green dots"], ["one yellow star", "a yellow star"]]
REFERENCES = [["a dog runs on the grass", "a brown dog running", "dog on grass"],
              ["two children play in the water", "kids splash in a lake"],
              ["a man rides a red bike", "a cyclist on a road", "man on a bicycle"]]


def toy_setup(attention="soft", seed=0, dropout=0.5):
    keras.utils.set_random_seed(seed)
    vocabulary = Vocabulary.build(c for refs in TOY_CAPTIONS for c in refs)
    features = np.random.default_rng(0).normal(size=(4, 3, 8)).astype("float32")
    model = ShowAttendTell(vocabulary, decoder={
        "embedding_dim": 16, "units": 32, "attention_dim": 16, "attention": attention,
        "dropout": dropout, "seed": 0})
    model.build({"features": (None, 3, 8)})
    return model, vocabulary, features


def ids_of(vocabulary, captions, length=8):
    rows = [vocabulary.encode(c, add_start=False)[:length] for c in captions]
    return np.array([row + [0] * (length - len(row)) for row in rows], "int32")


# -- the reward -------------------------------------------------------------

def test_the_reward_is_metrics_cider_d_for_the_same_captions():
    vocabulary = Vocabulary.build(c for refs in REFERENCES for c in refs)
    hypotheses = ["a dog on the grass", "children in the water", "a man on a bike"]
    reward = CiderDReward(REFERENCES, vocabulary, score_end=False)
    values = reward(np.arange(3), ids_of(vocabulary, hypotheses, 10))
    assert values.dtype == np.float32 and values.shape == (3,)
    assert float(np.mean(values)) == pytest.approx(metrics.cider_d(REFERENCES, hypotheses),
                                                   abs=1e-5)
    for index, hypothesis in enumerate(hypotheses):  # each caption alone, same frequencies
        statistics = metrics.CiderStatistics([[r.split() for r in refs] for refs in REFERENCES])
        alone = statistics.score(statistics.vectorize(hypothesis.split()),
                                 [statistics.vectorize(r.split()) for r in REFERENCES[index]])
        assert values[index] == pytest.approx(alone, abs=1e-5)
        assert values[index] > 0


def test_the_reward_scores_against_the_named_image_and_handles_empty_and_unknown_words():
    vocabulary = Vocabulary.build(c for refs in REFERENCES for c in refs)
    reward = CiderDReward(REFERENCES, vocabulary)
    dog = ids_of(vocabulary, ["a dog runs on the grass"] * 2, 10)
    right, wrong = reward(np.array([0, 1]), dog)
    assert right > 1.0 and wrong < right / 50  # only "the" is shared with image 1
    empty = np.array([[2, 0, 0]], "int32")  # <end> at once
    assert reward(np.array([0]), empty)[0] == 0.0
    unknown = ids_of(vocabulary, ["a zebra runs on the grass"], 10)
    assert 3 in unknown  # <unk>: a word that matches no reference word
    assert 0.0 < reward(np.array([0]), unknown)[0] < right


def test_the_end_of_a_caption_is_scored_as_a_word_unless_told_not_to():
    vocabulary = Vocabulary.build(c for refs in REFERENCES for c in refs)
    with_end, without_end = (CiderDReward(REFERENCES, vocabulary, score_end=flag)
                             for flag in (True, False))
    captions = ["a dog on the grass", "a dog on the"]
    finished = ids_of(vocabulary, captions, 10)
    # With the end as a word: the same as metrics' CIDEr-D of captions and
    # references that all end with one more word (the frequencies are the
    # references', so the word on every image's references weighs nothing).
    ended = [[r + " zzend" for r in refs] for refs in REFERENCES]
    statistics = metrics.CiderStatistics([[r.split() for r in refs] for refs in ended])
    for caption, value in zip(captions, with_end(np.zeros(2, "int32"), finished)):
        alone = statistics.score(statistics.vectorize((caption + " zzend").split()),
                                 [statistics.vectorize(r.split()) for r in ended[0]])
        assert value == pytest.approx(alone, abs=1e-5)
    # "... on the grass <end>" ends as a reference does; "... on the <end>" does not.
    full, cut = with_end(np.zeros(2, "int32"), finished)
    plain_full, plain_cut = without_end(np.zeros(2, "int32"), finished)
    assert full - cut > plain_full - plain_cut > 0
    # A caption cut off at the longest length (no <end>) gains nothing from its end.
    unended = ids_of(vocabulary, ["a dog on the grass"], 5)  # five words, no <end>
    assert 2 not in unended
    assert with_end(np.zeros(1, "int32"), unended)[0] < full
    assert with_end(np.array([0]), np.array([[2, 0, 0]], "int32"))[0] == 0.0  # empty


def test_the_reward_rejects_bad_input():
    vocabulary = Vocabulary.build(["a dog"])
    with pytest.raises(ValueError, match="non-empty list"):
        CiderDReward([["a dog"], []], vocabulary)
    reward = CiderDReward([["a dog"]], vocabulary)
    with pytest.raises(ValueError, match="image_index"):
        reward(np.array([1]), np.array([[4, 2]]))
    with pytest.raises(ValueError, match="2 image indices for 1"):
        reward(np.array([0, 0]), np.array([[4, 2]]))


# -- the objective ----------------------------------------------------------

def step_by_step_log_probs(model, annotations, token_ids):
    """log p of each caption by running the decoder's single step (not teacher forcing)."""
    state, memory = model.start(annotations)
    previous = np.full((len(token_ids),), 1, "int32")
    total = 0.0
    for t in range(token_ids.shape[1]):
        logits, state, _ = model.step(previous, state, memory)
        log_probs = tf.nn.log_softmax(logits)
        chosen = tf.gather(log_probs, token_ids[:, t], batch_dims=1)
        total += chosen * tf.cast(token_ids[:, t] != 0, tf.float32)
        previous = token_ids[:, t]
    return total


@pytest.mark.parametrize("attention", ["soft", "hard"])
def test_the_gradient_is_the_score_function_formula(attention):
    model, vocabulary, features = toy_setup(attention)
    objective = SelfCritical(CiderDReward(TOY_CAPTIONS, vocabulary), num_samples=3,
                             max_length=6)
    annotations = tf.constant(np.repeat(features, 3, axis=0))
    token_ids = np.asarray(objective.sample(model, tf.constant(features)))  # (12, 6)
    advantages = np.random.default_rng(1).normal(size=(12,)).astype("float32")
    weights = model.trainable_weights
    with tf.GradientTape() as tape:
        loss = losses.self_critical_surrogate(
            sequence_log_probs(model, annotations, token_ids), advantages)
    gradients = tape.gradient(loss, weights)
    expected = [tf.zeros_like(w) for w in weights]
    for n in range(12):  # -(1/N) sum_n A_n grad log p(w_n), each caption on its own
        with tf.GradientTape() as tape:
            log_prob = step_by_step_log_probs(model, annotations[n:n + 1], token_ids[n:n + 1])
        for i, gradient in enumerate(tape.gradient(log_prob, weights)):
            if gradient is not None:
                expected[i] += -advantages[n] / 12 * tf.convert_to_tensor(gradient)
    assert any(np.abs(g).max() > 1e-4 for g in expected)
    for gradient, want in zip(gradients, expected):
        np.testing.assert_allclose(tf.convert_to_tensor(gradient), want, atol=2e-5)


def test_sampled_captions_are_scored_by_the_policy_that_drew_them():
    model, vocabulary, features = toy_setup()
    state, memory = model.start(tf.constant(features))
    drawn = decoding.sample_search(model.step, state, memory, num_locations=3, max_length=6,
                                   seed=model.decoder.seed_generator)
    np.testing.assert_allclose(
        sequence_log_probs(model, tf.constant(features), drawn["token_ids"]),
        drawn["scores"], atol=1e-5)


def test_the_baselines():
    model, vocabulary, features = toy_setup()
    reward = CiderDReward(TOY_CAPTIONS, vocabulary)
    rewards = tf.constant([[1.0, 2.0, 6.0], [0.0, 0.0, 3.0], [1.0, 1.0, 1.0],
                           [4.0, 0.0, 2.0]])
    mean = SelfCritical(reward, num_samples=3, max_length=6)
    np.testing.assert_allclose(
        mean.baselines(model, tf.constant(features), tf.range(4), rewards),
        [[4.0, 3.5, 1.5], [1.5, 1.5, 0.0], [1.0, 1.0, 1.0], [1.0, 3.0, 2.0]])
    greedy = SelfCritical(reward, num_samples=3, baseline="greedy", max_length=6)
    captions = model.caption(features=features, max_length=6)["token_ids"]
    want = reward(np.arange(4), captions)
    np.testing.assert_allclose(
        greedy.baselines(model, tf.constant(features), tf.range(4), rewards),
        np.repeat(want[:, None], 3, axis=1), atol=1e-6)


def per_image_batches(features, repeats):
    return tf.data.Dataset.from_tensor_slices(
        {"features": features, "image_index": np.arange(len(features), dtype="int32")}
    ).batch(len(features)).repeat(repeats)


def test_a_reward_that_never_varies_changes_no_weight():
    model, vocabulary, features = toy_setup()
    before = [w.numpy().copy() for w in model.trainable_weights]
    objective = SelfCritical(lambda index, ids: np.full(len(index), 2.5, np.float32),
                             num_samples=3, max_length=6)
    model.compile(keras.optimizers.SGD(1.0), self_critical=objective)
    history = model.fit(per_image_batches(features, 3), verbose=0)
    assert history.history["reward"] == [pytest.approx(2.5)]
    assert history.history["baseline_reward"] == [pytest.approx(2.5)]
    for old, new in zip(before, model.trainable_weights):
        np.testing.assert_array_equal(old, new.numpy())


# From a random start the greedy baseline learns more slowly: a greedy caption
# scoring 0 leaves only the samples that score above 0 to learn from.
@pytest.mark.parametrize("attention,baseline,gain", [("soft", "mean", 2.0),
                                                     ("soft", "greedy", 0.3),
                                                     ("hard", "mean", 2.0)])
def test_a_tiny_models_cider_rises_on_a_toy_set(attention, baseline, gain):
    model, vocabulary, features = toy_setup(attention)

    def greedy_cider():
        return metrics.cider_d(TOY_CAPTIONS, model.caption(features=features,
                                                           max_length=8)["captions"])

    before = greedy_cider()
    model.compile(keras.optimizers.Adam(1e-2), self_critical=SelfCritical(
        CiderDReward(TOY_CAPTIONS, vocabulary), num_samples=4, baseline=baseline,
        max_length=8))
    history = model.fit(per_image_batches(features, 150), verbose=0)
    after = greedy_cider()
    assert before < 0.5
    assert after > before + gain, (before, after, history.history)


def _one_step_weights(dropout, rate):
    """The weights after one self-critical step from the same start and samples."""
    start = [w.numpy() for w in toy_setup()[0].trainable_weights]
    model, vocabulary, features = toy_setup(dropout=rate)
    for weight, value in zip(model.trainable_weights, start):  # the same start at any rate
        weight.assign(value)
    objective = SelfCritical(CiderDReward(TOY_CAPTIONS, vocabulary), num_samples=3,
                             max_length=6, dropout=dropout)
    model.compile(keras.optimizers.SGD(0.5), self_critical=objective)
    model.fit(per_image_batches(features, 1), verbose=0)
    return [w.numpy() for w in model.trainable_weights]


def test_dropout_acts_in_the_differentiated_pass_alone():
    without = _one_step_weights(dropout=False, rate=0.5)
    # The same samples (the same seeds draw them without dropout either way) ...
    for a, b in zip(without, _one_step_weights(dropout=True, rate=0.0)):
        np.testing.assert_allclose(a, b, atol=1e-6)  # ... nothing to drop: the same step
    dropped = _one_step_weights(dropout=True, rate=0.5)
    assert any(not np.allclose(a, b, atol=1e-6) for a, b in zip(without, dropped))


def test_the_model_switches_back_to_cross_entropy(batch):
    model, vocabulary, features = toy_setup()
    objective = SelfCritical(CiderDReward(TOY_CAPTIONS, vocabulary), num_samples=2,
                             max_length=6)
    model.compile("adam", self_critical=objective)
    assert set(model.fit(per_image_batches(features, 1), verbose=0).history) == {
        "loss", "reward", "baseline_reward"}
    model.compile("adam")
    inputs = {"features": features[:2], "token_ids": np.array([[1, 4, 5], [1, 6, 7]])}
    history = model.fit(inputs, np.array([[4, 5, 2], [6, 7, 2]]), verbose=0)
    assert {"loss", "nll", "attention_penalty"} <= set(history.history)


def test_bad_settings_and_batches_are_errors():
    model, vocabulary, features = toy_setup()
    reward = CiderDReward(TOY_CAPTIONS, vocabulary)
    with pytest.raises(ValueError, match="num_samples must be 2 or more"):
        SelfCritical(reward, num_samples=1)
    with pytest.raises(ValueError, match="baseline must be one of"):
        SelfCritical(reward, baseline="best")
    model.compile("adam", self_critical=SelfCritical(reward, num_samples=2, max_length=6))
    with pytest.raises(ValueError, match="image_index"):
        model.fit(tf.data.Dataset.from_tensor_slices({"features": features}).batch(4),
                  verbose=0)
    hard, _, _ = toy_setup("hard")
    hard.decoder.hard_inference = "sample"
    with pytest.raises(ValueError, match='hard_inference="expected"'):
        hard.compile("adam", self_critical=SelfCritical(reward, num_samples=2))
    hard.decoder.hard_inference = "expected"
    with pytest.raises(ValueError, match="dropout=True needs soft attention"):
        hard.compile("adam", self_critical=SelfCritical(reward, num_samples=2, dropout=True))


def test_the_recipe_settings_check_themselves_and_build_the_objective():
    settings = SelfCriticalSettings(2, learning_rate=1e-4, num_samples=3, baseline="greedy",
                                    dropout=True)
    objective = settings.objective(lambda index, ids: np.zeros(len(index)), max_length=9)
    assert (objective.num_samples, objective.baseline, objective.max_length,
            objective.dropout) == (3, "greedy", 9, True)
    assert SelfCriticalSettings(1).objective(lambda *_: None, max_length=9).dropout is False
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        SelfCriticalSettings(0)
    with pytest.raises(ValueError, match="learning_rate must be a positive number"):
        SelfCriticalSettings(1, learning_rate=0.0)
    with pytest.raises(ValueError, match="num_samples must be 2 or more"):
        SelfCriticalSettings(1, num_samples=1)
    with pytest.raises(ValueError, match="baseline must be one of"):
        SelfCriticalSettings(1, baseline="max")
    with pytest.raises(ValueError, match="score_end must be True or False"):
        SelfCriticalSettings(1, score_end="no")
    with pytest.raises(ValueError, match="dropout must be True or False"):
        SelfCriticalSettings(1, dropout=0.5)


# -- the per-image batches and the fit loop -------------------------------------

class FakeFeatures:
    """CachedFeatures' interface over a dict of arrays."""

    def __init__(self, arrays):
        self.paths = list(arrays)
        self.shape = next(iter(arrays.values())).shape
        self._table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
            tf.constant(self.paths), tf.range(len(self.paths), dtype=tf.int64)), -1)
        self._values = tf.constant(np.stack(list(arrays.values())))

    def keys(self, paths):
        assert set(paths) <= set(self.paths)
        return list(paths)

    def lookup(self, path):
        return tf.gather(self._values, self._table.lookup(path))


def toy_records(features):
    return [CaptionRecord(f"image{i}.jpg", tuple(refs), "train")
            for i, refs in enumerate(TOY_CAPTIONS)], FakeFeatures(
        {f"image{i}.jpg": features[i] for i in range(len(features))})


def test_per_image_batches_hold_every_image_once_an_epoch_with_its_features():
    _, _, features = toy_setup()
    records, cached = toy_records(features)
    stream = make_per_image_dataset(records, batch_size=2, seed=3, features=cached,
                                    from_epoch=0)
    batches = list(stream.take(4))  # two epochs
    for epoch in (batches[:2], batches[2:]):
        indices = np.concatenate([b["image_index"].numpy() for b in epoch])
        assert sorted(indices) == [0, 1, 2, 3]
    for batch in batches:
        np.testing.assert_array_equal(batch["features"], features[batch["image_index"]])
    again = list(make_per_image_dataset(records, batch_size=2, seed=3, features=cached,
                                        from_epoch=1).take(2))
    for first, second in zip(batches[2:], again):  # epoch 1 is the same wherever it starts
        np.testing.assert_array_equal(first["image_index"], second["image_index"])


class Interrupt(keras.callbacks.Callback):
    """Raises after `steps` training steps, as a killed process would stop."""

    def __init__(self, steps):
        super().__init__()
        self.steps = steps

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations) >= self.steps:
            raise KeyboardInterrupt


def test_fit_trains_self_critically_and_resumes_from_its_backup(tmp_path):
    lines = []

    def run(run_dir, callbacks=()):
        model, vocabulary, features = toy_setup()
        records, cached = toy_records(features)
        reward = CiderDReward([r.captions for r in records], vocabulary)
        history = train(model, records, records,
                        TrainingSettings(batch_size=2, learning_rate=1e-2, epochs=3,
                                         max_length=8),
                        RunSettings(str(run_dir), backup_every_steps=1, verbose=0,
                                    print_fn=lines.append),
                        callbacks=callbacks, features=cached,
                        self_critical=SelfCritical(reward, num_samples=3, max_length=8))
        return model, history

    model, history = run(tmp_path / "whole")
    assert {"reward", "baseline_reward", "val_loss"} <= set(history.history)
    assert len(history.history["reward"]) == 3
    assert int(model.optimizer.iterations) == 6  # 4 images, 2 a batch, 3 epochs
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-2)  # constant
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "killed", [Interrupt(3)])
    resumed, history = run(tmp_path / "killed")
    assert lines[-1].startswith("Resumed from the backup") and "at step 2 of 6" in lines[-1]
    assert int(resumed.optimizer.iterations) == 6  # the planned steps, not 6 more
    assert len(history.history["reward"]) == 2  # epochs 2 and 3


def test_fit_needs_the_reward_of_the_training_images():
    model, vocabulary, features = toy_setup()
    records, cached = toy_records(features)
    with pytest.raises(ValueError, match="references of 3 images"):
        train(model, records, records,
              TrainingSettings(batch_size=2, learning_rate=1e-2, epochs=1, max_length=8),
              RunSettings(verbose=0), features=cached,
              self_critical=SelfCritical(CiderDReward(TOY_CAPTIONS[:3], vocabulary),
                                         num_samples=2))
