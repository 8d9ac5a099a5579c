"""Self-critical sequence training (Rennie et al. 2017) as a `ShowAttendTell` fit mode.

After cross-entropy training, the captioner is fine-tuned with REINFORCE on
a sequence-level reward (CIDEr-D, `rewards.CiderDReward`): for every image
it samples `num_samples` captions from its own word distribution, scores
them, and raises the log-probability of each sample in proportion to how
much its reward beats a baseline:

    loss = -mean over samples of (r(w^s) - b) * log p(w^s | image)

`baseline="mean"` takes b as the mean reward of the image's other samples
(Luo 2020, "A Better Variant of Self-Critical Sequence Training"; needs
two or more samples); `baseline="greedy"` takes the reward of the image's
greedy caption (Rennie et al.'s test-time inference baseline). (r - b) is a
constant: the gradient is the score-function estimate.

Captions are sampled and scored without dropout and, for hard attention,
with the decoder's inference context (the expected one by default): the
policy trained is the one that captions at test time, and the teacher-forced
pass that differentiates log p(w^s) sees exactly the distribution the
words were drawn from. With `dropout=True` (soft attention) that pass runs
with the decoder's dropout on instead, as Luo's code trains with dropout
on: log p(w^s) is then that of a thinned network, a regulariser, no longer
exactly the distribution that drew w^s.

Use: `model.compile(optimizer, self_critical=SelfCritical(reward))`, then
`model.fit` on `data.pipeline.make_per_image_dataset(records, ...)` built
from the records the reward was built from; validation data stay caption
batches (teacher-forced loss). `training.fit.train(..., self_critical=...)`
does all of it with run directories and resume.
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from sat_keras import checks
from sat_keras import decoding
from sat_keras.distribute import scale_for_replicas
from sat_keras.models import losses
from sat_keras.text import START_ID

BASELINES = ("mean", "greedy")


@dataclasses.dataclass(frozen=True)
class SelfCriticalSettings:
    """The self-critical stage of a recipe (`recipes.train_recipe`, `--scst-epochs`).

    Attributes:
        epochs: epochs over the training images (each image once an epoch).
        learning_rate: constant Adam learning rate (5e-5, as Luo's code).
        num_samples: captions sampled per image.
        baseline: "mean" (Luo 2020) or "greedy" (Rennie et al. 2017).
        score_end: the reward scores each caption's end as a word
            (`rewards.CiderDReward`; True, as Luo's code).
        dropout: differentiate log p(caption) with the decoder's dropout on
            (`SelfCritical`; False: off, the policy that captions).
    """

    epochs: int
    learning_rate: float = 5e-5
    num_samples: int = 5
    baseline: str = "mean"
    score_end: bool = True
    dropout: bool = False

    def __post_init__(self):
        checks.fill_defaults(self)
        checks.positive_int("epochs", self.epochs)
        checks.positive_number("learning_rate", self.learning_rate)
        _check_sampling(self.num_samples, self.baseline)
        checks.boolean("score_end", self.score_end)
        checks.boolean("dropout", self.dropout)

    def objective(self, reward, max_length):
        return SelfCritical(reward, self.num_samples, self.baseline, max_length,
                            dropout=self.dropout)


def _check_sampling(num_samples, baseline):
    checks.one_of("baseline", baseline, BASELINES)
    checks.positive_int("num_samples", num_samples)
    if baseline == "mean" and num_samples < 2:
        raise ValueError('baseline="mean" averages the other samples of an image: '
                         f"num_samples must be 2 or more. Received: {num_samples}")


class SelfCritical:
    """The self-critical objective that `ShowAttendTell.compile(self_critical=...)` trains.

    Args:
        reward: callable (image_index (N,), token_ids (N, T)) -> float32
            (N,), e.g. `rewards.CiderDReward` over the training records.
        num_samples: captions sampled per image (5, as Luo 2020).
        baseline: "mean" (the other samples' mean reward) or "greedy".
        max_length: the most words a sampled caption has, `<end>` included.
        dropout: differentiate log p(caption) with the decoder's dropout on
            (soft attention only: for hard attention that pass would sample
            locations too). Captions are drawn without it either way.

    The logs of a training step: "loss", "reward" (the samples' mean
    reward) and "baseline_reward" (the baselines' mean: the other samples'
    rewards or the greedy captions').

    Example:
    >>> import tensorflow as tf
    >>> vocabulary = Vocabulary.build(["a red circle", "a blue square"])
    >>> model = ShowAttendTell(vocabulary, decoder={
    ...     "embedding_dim": 8, "units": 16, "attention_dim": 8})
    >>> reward = CiderDReward([["a red circle"], ["a blue square"]], vocabulary)
    >>> model.compile("adam", self_critical=SelfCritical(reward, num_samples=2, max_length=5))
    >>> images = tf.data.Dataset.from_tensor_slices({
    ...     "features": np.ones((2, 4, 8), "float32"), "image_index": np.array([0, 1])})
    >>> sorted(model.fit(images.batch(2), verbose=0).history)
    ['baseline_reward', 'loss', 'reward']
    """

    def __init__(self, reward, num_samples=5, baseline="mean", max_length=20, dropout=False):
        _check_sampling(num_samples, baseline)
        if not isinstance(max_length, int) or max_length < 1:
            raise ValueError(f"max_length must be a positive integer. Received: {max_length!r}")
        self.reward = reward
        self.num_samples = num_samples
        self.baseline = baseline
        self.max_length = max_length
        self.dropout = dropout
        self.trackers = {name: keras.metrics.Mean(name=name)
                         for name in ("loss", "reward", "baseline_reward")}

    def check_model(self, model):
        if model.decoder.attention == "hard" and model.decoder.hard_inference != "expected":
            raise ValueError(
                "Self-critical training samples hard attention's inference policy, which "
                'must be deterministic: use hard_inference="expected". Received: '
                f"{model.decoder.hard_inference!r}")
        if model.decoder.attention == "hard" and self.dropout:
            raise ValueError("Self-critical training with dropout=True needs soft attention: "
                             "hard attention's training pass samples locations, which the "
                             "policy that drew the captions does not.")

    def reset_metrics(self):
        for tracker in self.trackers.values():
            tracker.reset_state()

    def rewards(self, image_index, token_ids):
        """The reward of each caption, computed in Python (CIDEr-D has no graph form)."""
        values = tf.numpy_function(
            lambda index, ids: np.asarray(self.reward(index, ids), np.float32),
            [image_index, token_ids], tf.float32, stateful=False)
        return tf.reshape(values, tf.shape(image_index))  # (N,)

    def sample(self, model, annotations):
        """num_samples captions per image: token_ids (B * k, T), image-major."""
        repeated = ops.repeat(annotations, self.num_samples, axis=0)  # (B * k, L, D)
        state, memory = model.start(repeated)
        return decoding.sample_search(
            model.step, state, memory, num_locations=ops.shape(annotations)[1],
            max_length=self.max_length, temperature=1.0,
            seed=model.decoder.seed_generator)["token_ids"]

    def baselines(self, model, annotations, image_index, rewards):
        """b per sample (B, k) from the samples' rewards (B, k)."""
        if self.baseline == "mean":
            return (ops.sum(rewards, axis=1, keepdims=True) - rewards) / (self.num_samples - 1)
        state, memory = model.start(annotations)
        greedy = decoding.greedy_search(model.step, state, memory,
                                        num_locations=ops.shape(annotations)[1],
                                        max_length=self.max_length)["token_ids"]
        greedy_rewards = self.rewards(image_index, greedy)  # (B,)
        return ops.repeat(ops.expand_dims(greedy_rewards, 1), self.num_samples, axis=1)

    def train_step(self, model, data):
        inputs = data[0] if isinstance(data, tuple) else data
        if "image_index" not in inputs:
            raise ValueError(
                'Self-critical training needs batches with "image_index" (the images\' '
                "positions in the reward's references): build them with "
                "data.pipeline.make_per_image_dataset.")
        image_index = ops.cast(inputs["image_index"], "int32")  # (B,)
        k = self.num_samples
        with tf.GradientTape() as tape:
            annotations = model.encode(inputs, training=False)  # (B, L, D)
            with tape.stop_recording():
                fixed = ops.stop_gradient(annotations)
                token_ids = self.sample(model, fixed)  # (B * k, T)
                sample_index = ops.repeat(image_index, k, axis=0)  # (B * k,)
                rewards = ops.reshape(self.rewards(sample_index, token_ids), (-1, k))  # (B, k)
                baselines = self.baselines(model, fixed, image_index, rewards)  # (B, k)
                advantages = ops.reshape(rewards - baselines, (-1,))  # (B * k,)
            log_probs = sequence_log_probs(
                model, ops.repeat(annotations, k, axis=0), token_ids,
                training=self.dropout)  # (B * k,)
            loss = losses.self_critical_surrogate(log_probs, advantages)  # ()
            loss = scale_for_replicas(loss)
            scaled = model.optimizer.scale_loss(loss)
        weights = model.trainable_weights
        model.optimizer.apply_gradients(zip(tape.gradient(scaled, weights), weights))
        self.trackers["loss"].update_state(loss)
        self.trackers["reward"].update_state(rewards)
        self.trackers["baseline_reward"].update_state(baselines)
        return {name: tracker.result() for name, tracker in self.trackers.items()}


def sequence_log_probs(model, annotations, token_ids, training=False):
    """log p(caption | image) per caption, teacher-forced: (N,).

    `training=True` turns the decoder's dropout on (and samples hard
    attention's locations).

    Args:
        annotations: (N, L, D).
        token_ids: (N, T) captions as the searches write them: words,
            `<end>`, then padding (a caption cut at T has no `<end>`).
    """
    token_ids = ops.cast(token_ids, "int32")
    starts = ops.full((ops.shape(token_ids)[0], 1), START_ID, "int32")
    inputs = ops.concatenate([starts, token_ids[:, :-1]], axis=1)  # (N, T)
    state, memory = model.start(annotations, training=training)
    logits = model.decoder.decode_sequence(inputs, state, memory,
                                           training=training)["logits"]  # (N, T, V)
    return -losses.masked_nll(token_ids, logits, "caption")  # (N,)
