"""Loss terms of Show, Attend and Tell (keras.ops only).

Every term returns one value per caption, shape (batch,); `ShowAttendTell`
averages over the batch. Padding (target id 0) is masked out of every term.
"""

from keras import ops

NORMALIZATIONS = ("caption", "token")


def caption_mask(target_ids, dtype="float32"):
    """1.0 on real tokens (`<end>` included), 0.0 on padding: (batch, time)."""
    return ops.cast(ops.not_equal(target_ids, 0), dtype)  # (batch, time)


def masked_nll(target_ids, logits, normalization="caption"):
    """Negative log-likelihood of the targets, per caption.

    Args:
        target_ids: int (batch, time), 0 = padding.
        logits: (batch, time, vocabulary_size).
        normalization: "caption": the sum over the caption's tokens (the
            authors' code: -sum_t log p(y_t), then the mean over captions);
            "token": that sum divided by the caption's length (most ports).

    Returns:
        (batch,) float32.
    """
    # One fused softmax cross-entropy (forward and gradient) on TensorFlow; a
    # log-softmax and a gather would scatter the gradient into a
    # (batch, time, V) tensor of zeros.
    token_nll = ops.sparse_categorical_crossentropy(
        target_ids, ops.cast(logits, "float32"), from_logits=True)  # (batch, time)
    return _over_caption(token_nll, target_ids, normalization)


def _over_caption(token_values, target_ids, normalization):
    """Per-token values (batch, time) -> per caption (batch,): summed over the
    real tokens ("caption") or averaged over them ("token")."""
    if normalization not in NORMALIZATIONS:
        raise ValueError(
            f"normalization must be one of {NORMALIZATIONS}. "
            f"Received: normalization={normalization!r}"
        )
    mask = caption_mask(target_ids)  # (batch, time)
    total = ops.sum(token_values * mask, axis=1)  # (batch,)
    if normalization == "token":
        total = total / ops.maximum(ops.sum(mask, axis=1), 1.0)  # (batch,)
    return total


def uniform_cross_entropy(target_ids, logits, normalization="caption"):
    """Cross-entropy against the uniform distribution over words, per caption.

    -(1/V) sum_v log p_v at every real step, summed (or averaged, "token")
    over the caption like `masked_nll`. Label smoothing with weight e trains
    on (1 - e) * NLL + e * this: the targets become (1 - e) one-hot plus e
    spread evenly over the V words (Szegedy et al., CVPR 2016).

    Returns:
        (batch,) float32.
    """
    logits = ops.cast(logits, "float32")  # (batch, time, V)
    # -mean_v log softmax(z)_v = logsumexp(z) - mean_v z_v
    token_ce = ops.logsumexp(logits, axis=-1) - ops.mean(logits, axis=-1)  # (batch, time)
    return _over_caption(token_ce, target_ids, normalization)


def doubly_stochastic_penalty(attention_weights, target_ids):
    """sum_i (1 - sum_t alpha_ti)^2 per caption (paper eq. 14, without lambda).

    The sum over t covers the caption's real steps only: alpha is multiplied
    by the caption mask first, so padding adds no attention.

    Args:
        attention_weights: alpha, (batch, time, num_locations).
        target_ids: int (batch, time), 0 = padding.

    Returns:
        (batch,) float32.
    """
    mask = caption_mask(target_ids)  # (batch, time)
    alpha = ops.cast(attention_weights, "float32") * ops.expand_dims(mask, -1)  # (batch, time, L)
    attention_per_location = ops.sum(alpha, axis=1)  # (batch, num_locations)
    return ops.sum(ops.square(1.0 - attention_per_location), axis=-1)  # (batch,)


def reinforce_surrogate(nll, baseline, sample_log_probs, target_ids):
    """REINFORCE surrogate per caption: (NLL - b) * sum_t log p(s_t), without lambda.

    Its gradient is the score-function estimate of the gradient of the
    expected NLL over attention samples (paper eq. 12): (NLL - b) is held
    constant (no gradient reaches the NLL or the baseline b through it), and
    log p(s_t) = log alpha_{t, s_t} is summed over the caption's real steps.
    Minimising it makes samples with a lower than usual NLL more likely.

    Args:
        nll: per-caption NLL (batch,), the reward's negative.
        baseline: the NLL the baseline b expects: a scalar, one per
            caption (batch,) for a per-token baseline scaled by length, or
            one per step (batch, time) for a state-dependent baseline: b_t
            judges the sample of step t (it may depend on the earlier
            samples, never on s_t, or the estimate is biased).
        sample_log_probs: log alpha of the sampled locations (batch, time);
            zero where no location was sampled.
        target_ids: int (batch, time), 0 = padding.

    Returns:
        (batch,) float32.
    """
    mask = caption_mask(target_ids)  # (batch, time)
    baseline = ops.cast(baseline, "float32")
    if len(baseline.shape) < 2:  # one b for every step: (1, 1) or (batch, 1)
        baseline = ops.reshape(baseline, (-1, 1))
    # (NLL - b_t) weighs log p(s_t): (batch, time), or (batch, 1) for all steps
    advantage = ops.stop_gradient(ops.expand_dims(ops.cast(nll, "float32"), 1) - baseline)
    return ops.sum(advantage * ops.cast(sample_log_probs, "float32") * mask, axis=1)


def baseline_regression(observed, predicted, target_ids):
    """The learned baseline's own loss: its squared error per real step, averaged per caption.

    Args:
        observed: what the baseline should predict, per caption (batch,)
            (the NLL per word); held constant.
        predicted: the baseline's prediction at each step (batch, time).
        target_ids: int (batch, time), 0 = padding.

    Returns:
        (batch,) float32: mean_t (observed - b_t)^2 over the real steps.
    """
    error = ops.expand_dims(ops.stop_gradient(ops.cast(observed, "float32")), 1) - ops.cast(
        predicted, "float32")  # (batch, time)
    return _over_caption(ops.square(error), target_ids, "token")


def leave_one_out_baseline(nll, paths):
    """Per row, the mean NLL of the same caption's other location paths.

    Args:
        nll: (paths * batch,) NLLs, path-major: path p of caption b is row
            p * batch + b (captions tiled `paths` times).
        paths: location paths per caption, at least 2.

    Returns:
        (paths * batch,) float32: the baseline of multi-sample REINFORCE
        (as in VIMCO), independent of the row's own sample.
    """
    by_path = ops.reshape(ops.cast(nll, "float32"), (paths, -1))  # (paths, batch)
    others = (ops.sum(by_path, axis=0, keepdims=True) - by_path) / (paths - 1)
    return ops.reshape(others, (-1,))


def negative_attention_entropy(attention_weights, target_ids):
    """sum_t sum_i alpha_ti log alpha_ti per caption: minimising it raises the entropy.

    Summed over the caption's real steps and the locations (the authors'
    code averages alpha log alpha over every element instead).

    Returns:
        (batch,) float32, <= 0.
    """
    mask = caption_mask(target_ids)  # (batch, time)
    alpha = ops.cast(attention_weights, "float32")  # (batch, time, L)
    per_step = ops.sum(alpha * ops.log(alpha + 1e-8), axis=-1)  # (batch, time)
    return ops.sum(per_step * mask, axis=1)  # (batch,)


def self_critical_surrogate(log_probs, advantages):
    """-mean_n A_n log p(w_n): the score-function surrogate of sequence-level training.

    Args:
        log_probs: log p of each sampled caption (N,), differentiable.
        advantages: reward minus baseline per caption (N,), held constant.

    Returns:
        () float32; its gradient is -mean_n A_n grad log p(w_n).
    """
    advantages = ops.stop_gradient(ops.cast(advantages, "float32"))  # (N,)
    return -ops.mean(advantages * ops.cast(log_probs, "float32"))
