"""The variance of hard attention's REINFORCE gradient, for several baselines.

Hard attention's attention layer learns only through the REINFORCE term
(the sampled context carries no gradient): its gradient is
mean_i (NLL_i - b_i) * grad sum_t log alpha_{t, s_t}. How noisy that is
depends on the baseline b. `gradient_draws` draws it many times on one fixed
batch, for one estimator, and `summarize` gives its variance and how much
signal stands above it:

- "none": b = 0.
- "moving_average": b = the mean NLL per word times the caption's length:
  what the training baseline (`reinforce_baseline="per_token"`, a moving
  average) converges to, taken here from 8 draws of its own.
- "caption_mean": b = the mean caption NLL (`reinforce_baseline="caption"`).
- "greedy": b_i = caption i's NLL along the argmax attention path, as
  self-critical training uses the greedy caption.
- "leave_one_out": `samples` location paths per caption, each compared with
  the mean NLL of the others (multi-sample REINFORCE, as in VIMCO).
- "learned": b_t = length * (w . h_{t-1} + c) per step, the state-dependent
  baseline of `reinforce_baseline="learned"`, with w and c its least-squares
  fit (what its squared-error training converges to) on other captions
  (`calibration`): fitted on the measured captions it would learn them by
  heart and flatter itself.

Every draw samples every location (no expected-context mixing) without
dropout, so the sampling of locations is the only noise.
"""

import numpy as np
import tensorflow as tf
from keras import ops

from sat_keras.models import losses
from sat_keras.models.show_attend_tell import ShowAttendTell
from sat_keras.training.warm_start import copy_decoder_weights

ESTIMATORS = ("none", "moving_average", "caption_mean", "greedy", "leave_one_out", "learned")


def sampling_copy(model, inference=None):
    """A copy of `model` with hard attention that samples at every step, without dropout.

    `inference="argmax"`: outside training, its context is the most
    attended location's annotation instead.
    """
    config = model.get_config()
    decoder = dict(config["decoder"]["config"])
    decoder.update(attention="hard", dropout=0.0, annotation_dropout=0.0,
                   embedding_dropout=0.0, expected_context_probability=0.0)
    if inference:
        decoder["hard_inference"] = inference
    config["decoder"] = {**config["decoder"], "config": decoder}
    config.update(encoder=None, reinforce_baseline="per_token", reinforce_samples=1)
    copy = ShowAttendTell.from_config(config)
    annotation_dim = config["decoder"]["build_config"]["input_shape"][-1]
    copy.build({"features": (None, None, annotation_dim)})
    copy_decoder_weights(model, copy, "the measured model")
    return copy


def reseed(model, seed):
    """Restarts the locations the model samples: the same seed, the same draws."""
    state = model.seed_generator.state
    state.assign(ops.cast(ops.convert_to_tensor([seed, 0]), state.dtype))


def teacher_forced(model, features, sequences, training=True):
    """Per caption NLL (batch,), log alpha of each step's sampled location (batch, T)
    and h_{t-1}, the state each step attends from (batch, T, units)."""
    token_ids, targets = sequences[:, :-1], sequences[:, 1:]
    outputs = model({"features": features, "token_ids": token_ids}, training=training)
    nll = losses.masked_nll(targets, outputs["logits"], model.loss_normalization)
    return nll, outputs["sample_log_probs"], outputs["previous_hidden"]


def fit_learned_baseline(model, features, sequences, draws=4, seed=1, ridge=1e-3):
    """(w (units,), c): least squares of each caption's NLL per word on h_{t-1}
    over its real steps, from `draws` sampled passes over these captions."""
    reseed(model, seed)
    features = tf.convert_to_tensor(features, "float32")
    sequences = tf.convert_to_tensor(sequences, "int32")
    mask = ops.convert_to_numpy(losses.caption_mask(sequences[:, 1:])).astype(bool)
    lengths = ops.convert_to_numpy(caption_lengths(sequences))
    inputs, targets = [], []
    for _ in range(draws):
        nll, _, previous = teacher_forced(model, features, sequences)
        per_word = ops.convert_to_numpy(nll) / lengths  # (batch,)
        inputs.append(ops.convert_to_numpy(previous)[mask])  # (real steps, units)
        targets.append(np.broadcast_to(per_word[:, None], mask.shape)[mask])
    inputs = np.concatenate(inputs).astype("float64")
    inputs = np.concatenate([inputs, np.ones((len(inputs), 1))], axis=1)  # the bias
    targets = np.concatenate(targets).astype("float64")
    gram = inputs.T @ inputs + ridge * len(inputs) * np.eye(inputs.shape[1])
    solution = np.linalg.solve(gram, inputs.T @ targets)
    return solution[:-1], solution[-1]


def caption_lengths(sequences):
    return ops.sum(losses.caption_mask(sequences[:, 1:]), axis=1)  # (batch,)


def gradient_draws(model, features, sequences, estimator, draws, samples=4, seed=0,
                   calibration=None):
    """The REINFORCE gradient of the attention layer, drawn `draws` times.

    Args:
        model: from `sampling_copy`.
        features: float (batch, L, D); sequences: int (batch, T + 1), each
            `<start>` ... `<end>` padded with 0.
        estimator: one of `ESTIMATORS`.
        samples: location paths per caption for "leave_one_out".
        calibration: (features, sequences) of other captions, which "learned"
            fits its baseline on (required there, unused otherwise).

    Returns:
        float64 (draws, number of attention parameters).
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}. Received: {estimator!r}")
    reseed(model, seed)
    features = tf.convert_to_tensor(features, "float32")
    sequences = tf.convert_to_tensor(sequences, "int32")
    if estimator == "learned":
        if calibration is None:
            raise ValueError('The "learned" estimator needs calibration captions: '
                             "calibration=(features, sequences) of other images.")
        kernel, bias = (tf.constant(v, "float32")
                        for v in fit_learned_baseline(model, *calibration, seed=seed + 1))
        lengths = ops.expand_dims(caption_lengths(sequences), 1)  # (batch, 1)
        reseed(model, seed)
    baseline = _baseline(model, features, sequences, estimator, seed)
    if estimator == "leave_one_out":
        features = tf.tile(features, [samples, 1, 1])
        sequences = tf.tile(sequences, [samples, 1])
    weights = model.decoder.soft_attention.trainable_weights
    gradients = []
    for _ in range(draws):
        with tf.GradientTape() as tape:
            nll, sample_log_probs, previous = teacher_forced(model, features, sequences)
            if estimator == "leave_one_out":
                baseline = losses.leave_one_out_baseline(nll, samples)
            if estimator == "learned":  # per step, from the state it attends from
                per_word = ops.einsum("btu,u->bt", ops.cast(previous, "float32"), kernel) + bias
                baseline = per_word * lengths
            surrogate = ops.mean(losses.reinforce_surrogate(  # the training loss's term
                nll, baseline, sample_log_probs, sequences[:, 1:]))
        gradient = tape.gradient(surrogate, weights)
        gradients.append(np.concatenate([np.ravel(g) for g in gradient]).astype("float64"))
    return np.stack(gradients)


def _baseline(model, features, sequences, estimator, seed, calibration_draws=8):
    if estimator in ("none", "leave_one_out", "learned"):
        return 0.0
    if estimator == "greedy":
        greedy = sampling_copy(model, inference="argmax")
        return teacher_forced(greedy, features, sequences, training=False)[0]
    reseed(model, seed + 1)  # draws of their own, not the measured ones
    nll = ops.stack([teacher_forced(model, features, sequences)[0]
                     for _ in range(calibration_draws)])  # (draws, batch)
    reseed(model, seed)
    if estimator == "caption_mean":
        return ops.mean(nll)
    lengths = caption_lengths(sequences)
    return ops.mean(nll / lengths) * lengths  # "moving_average": per word, times length


def summarize(draws, samples_per_draw=1):
    """Variance and signal of gradient draws (draws, parameters).

    Returns:
        dict: "variance": E||g - E g||^2, unbiased; "signal": ||E g||^2,
        unbiased (||mean g||^2 less the variance of the mean, so estimators
        with the same expectation agree, however noisy); "snr": signal /
        variance; "variance_per_sample": the variance times the location
        paths each draw cost (equal compute: averaging k single-sample
        draws divides the variance by k).
    """
    count = len(draws)
    if count < 2:
        raise ValueError(f"summarize needs at least 2 draws. Received: {count}")
    mean = draws.mean(axis=0)
    variance = float(np.sum(draws.var(axis=0, ddof=1)))
    signal = float(np.sum(mean ** 2)) - variance / count
    return {"variance": variance, "signal": signal, "snr": signal / max(variance, 1e-30),
            "variance_per_sample": variance * samples_per_draw}
