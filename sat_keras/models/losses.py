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
    if normalization not in NORMALIZATIONS:
        raise ValueError(
            f"normalization must be one of {NORMALIZATIONS}. "
            f"Received: normalization={normalization!r}"
        )
    mask = caption_mask(target_ids)  # (batch, time)
    log_probs = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)  # (batch, time, V)
    target_log_probs = ops.squeeze(
        ops.take_along_axis(log_probs, ops.expand_dims(target_ids, -1), axis=-1), -1
    )  # (batch, time)
    nll = -ops.sum(target_log_probs * mask, axis=1)  # (batch,)
    if normalization == "token":
        nll = nll / ops.maximum(ops.sum(mask, axis=1), 1.0)  # (batch,)
    return nll


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
