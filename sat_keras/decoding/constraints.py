"""Constraints on what a search may write, as wrappers of the step function.

Each takes the step contract (see the package docstring) and returns it
with some words' logits set to `NEGATIVE_INFINITY`, so every search (greedy,
sampled, beam) obeys it unchanged, in-graph, with stock ops only: an export
applies it under TF Serving. A constraint that needs the caption so far
carries it in the decoder state, so beam search reorders it with the beams.
"""

from keras import ops

from sat_keras.decoding.word_by_word import batch_size_of
from sat_keras.text import END_ID

NEGATIVE_INFINITY = -1.0e9


def suppress_tokens(step, token_ids):
    """The step function with `token_ids` never chosen: their logits set to -1e9.

    Searches then pick among the other words, with probabilities
    renormalised over them. `suppress_tokens(step, [UNK_ID])` keeps
    `<unk>` out of captions: references never contain it, and a caption
    that shows it tells a reader nothing.
    """
    token_ids = [int(token_id) for token_id in token_ids]

    def suppressed(previous, state, memory):
        logits, state, alpha = step(previous, state, memory)  # (rows, V), ., (rows, L)
        banned = ops.sum(ops.one_hot(token_ids, ops.shape(logits)[-1]), axis=0) > 0  # (V,)
        return ops.where(banned, ops.cast(NEGATIVE_INFINITY, logits.dtype), logits), state, alpha

    return suppressed


def block_repeated_ngrams(step, initial_state, memory, ngram_size, max_length):
    """The step function with no n-gram repeated within a caption, and its initial state.

    A word that would complete an n-gram (n = `ngram_size`) that the caption
    already holds gets the logit -1e9, as fairseq's `no_repeat_ngram_size`
    and ruotianluo's `block_trigrams` forbid: "a man sitting on a bench on a
    bench" cannot be written with n = 2. The caption so far travels in the
    state, `(state, history (rows, max_length) int32, length (rows,))`, so
    beam search reorders it with the beams; `<start>` is its first word.
    Stock ops only: an export applies it in-graph.

    Returns:
        `(step, initial_state)`: the wrapped step and its initial state.
    """
    if not isinstance(ngram_size, int) or isinstance(ngram_size, bool) or ngram_size < 1:
        raise ValueError(f"ngram_size must be a positive integer. Received: {ngram_size!r}")
    n, width = ngram_size, max_length
    batch_size = batch_size_of(memory)
    state = (initial_state, ops.zeros((batch_size, width), "int32"),
             ops.zeros((batch_size,), "int32"))

    def blocked(previous, state, memory):
        inner, history, length = state
        history = ops.where(ops.expand_dims(ops.arange(width), 0) == ops.expand_dims(length, 1),
                            ops.expand_dims(ops.cast(previous, "int32"), 1), history)
        length = length + 1  # words in history, <start> included
        logits, inner, alpha = step(previous, inner, memory)  # (rows, V), ., (rows, L)
        banned = _completing_words(history, length, n, ops.shape(logits)[-1])  # (rows, V)
        logits = ops.where(banned, ops.cast(NEGATIVE_INFINITY, logits.dtype), logits)
        return logits, (inner, history, length), alpha

    return blocked, state


def _completing_words(history, length, n, vocabulary_size):
    """(rows, V) bool: the words that would repeat an n-gram of each row's history.

    Window i (history[i:i+n]) bans its last word when its first n - 1 words
    equal the history's last n - 1 and the window lies within the history.
    """
    width = history.shape[1]
    count = width - n + 1  # windows
    if count < 1:
        return ops.zeros((ops.shape(history)[0], vocabulary_size), "bool")
    windows = ops.stack([history[:, j:j + count] for j in range(n)], axis=-1)  # (rows, W, n)
    last = ops.expand_dims(length, 1) - (n - 1) + ops.arange(n - 1, dtype="int32")  # (rows, n-1)
    suffix = ops.take_along_axis(history, ops.maximum(last, 0), axis=1)  # (rows, n - 1)
    same = ops.all(ops.equal(windows[:, :, :n - 1], ops.expand_dims(suffix, 1)), axis=-1)
    inside = ops.expand_dims(ops.arange(count), 0) <= ops.expand_dims(length - n, 1)
    matches = ops.cast(ops.logical_and(same, inside), "float32")  # (rows, W)
    rows = ops.shape(history)[0]
    row_ids = ops.repeat(ops.expand_dims(ops.arange(rows, dtype="int32"), 1), count, axis=1)
    indices = ops.reshape(ops.stack([row_ids, windows[:, :, n - 1]], axis=-1), (-1, 2))
    counts = ops.scatter(indices, ops.reshape(matches, (-1,)), (rows, vocabulary_size))
    return counts > 0


def require_min_length(step, initial_state, memory, min_length, end_id=END_ID):
    """The step function with no `<end>` before `min_length` words, and its initial state.

    While a caption holds fewer than `min_length` words, `<end>` gets the
    logit -1e9, as fairseq's `min_len` and Hugging Face's `min_new_tokens`
    do: a search then writes at least `min_length` words (where
    `max_length` leaves room). The number of words written travels in the
    state, `(state, words (rows,) int32)`; every row of a search is at the
    same step, so beam search's reordering keeps it right.

    Returns:
        `(step, initial_state)`: the wrapped step and its initial state.
    """
    if isinstance(min_length, bool) or not isinstance(min_length, int) or min_length < 1:
        raise ValueError(f"min_length must be a positive integer. Received: {min_length!r}")
    state = (initial_state, ops.zeros((batch_size_of(memory),), "int32"))

    def at_least(previous, state, memory):
        inner, words = state
        logits, inner, alpha = step(previous, inner, memory)  # (rows, V), ., (rows, L)
        early = ops.expand_dims(words < min_length, 1)  # (rows, 1)
        is_end = ops.expand_dims(ops.arange(ops.shape(logits)[-1]) == end_id, 0)  # (1, V)
        logits = ops.where(ops.logical_and(early, is_end),
                           ops.cast(NEGATIVE_INFINITY, logits.dtype), logits)  # (rows, V)
        return logits, (inner, words + 1), alpha

    return at_least, state
