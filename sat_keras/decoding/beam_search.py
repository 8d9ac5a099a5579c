"""Batched beam search over the step contract (keras.ops only)."""

from keras import ops
from keras import tree

from sat_keras.decoding.constraints import NEGATIVE_INFINITY
from sat_keras.decoding.word_by_word import batch_size_of
from sat_keras.decoding.word_by_word import write_column
from sat_keras.text import END_ID
from sat_keras.text import START_ID


def length_normalizer(length, length_penalty):
    """((5 + length) / 6) ** length_penalty (Wu et al. 2016); 1 when the penalty is 0."""
    return ops.power((5.0 + ops.cast(length, "float32")) / 6.0, length_penalty)


def _tile_beams(tensor, beam_size):
    """(batch, ...) -> (batch * beam_size, ...), each row repeated beam_size times."""
    return ops.repeat(tensor, beam_size, axis=0)


def _gather_beams(tensor, beam_indices, batch_size, beam_size):
    """tensor (batch * old_beams, ...) rows picked by beam_indices (batch, new_beams)."""
    old_beams = ops.shape(tensor)[0] // batch_size
    offsets = ops.expand_dims(ops.arange(batch_size, dtype="int32") * old_beams, 1)  # (batch, 1)
    flat_indices = ops.reshape(beam_indices + offsets, (-1,))  # (batch * new_beams,)
    return ops.take(tensor, flat_indices, axis=0)  # (batch * new_beams, ...)


def _flatten_beams(tensor):
    """(batch, beams, ...) -> (batch * beams, ...)."""
    return ops.reshape(tensor, (-1,) + tuple(tensor.shape[2:]))


def _unflatten_beams(tensor, batch_size):
    """(batch * beams, ...) -> (batch, beams, ...)."""
    return ops.reshape(tensor, (batch_size, -1) + tuple(tensor.shape[1:]))


def check_num_captions(num_captions, beam_size):
    """Raises ValueError unless num_captions is None or an int from 1 to beam_size."""
    if num_captions is not None and not (
            isinstance(num_captions, int) and not isinstance(num_captions, bool)
            and 1 <= num_captions <= beam_size):
        raise ValueError(f"num_captions must be an integer from 1 to beam_size ({beam_size}). "
                         f"Received: {num_captions!r}")


def beam_search(step, initial_state, memory, num_locations, max_length, beam_size=3,
                length_penalty=0.0, num_captions=None, start_id=START_ID, end_id=END_ID):
    """Batched beam search: `beam_size` hypotheses for every image at once.

    At each step every live hypothesis is extended by every word; of the
    best 2k extensions, those among the best k that end are kept aside
    (scored by their log-probability divided by `length_normalizer`), and
    the best k that do not end go on. The search stops when no live
    hypothesis can beat the finished ones,
    or at max_length; an image with no finished hypothesis then gets its best
    live one, so every image gets a caption.

    Args:
        step, initial_state, memory, num_locations, max_length, start_id,
            end_id: as in `greedy_search`.
        beam_size: k, hypotheses kept per image; 1 gives the greedy result.
        length_penalty: exponent of `length_normalizer`; 0 ranks by summed
            log-probability.
        num_captions: None for the best hypothesis per image; n (1 to
            beam_size) for the n best, best first: the finished ones, then,
            where fewer than n finished, the best live ones at max_length.

    Returns:
        The best hypothesis per image, as `greedy_search` returns it;
        "scores" are the length-normalised log-probabilities. With
        `num_captions=n` every output gains an axis of n after the batch:
        token_ids (batch, n, T), scores (batch, n), attention_weights
        (batch, n, T, L).
    """
    if not isinstance(beam_size, int) or beam_size < 1:
        raise ValueError(f"beam_size must be a positive integer. Received: {beam_size!r}")
    check_num_captions(num_captions, beam_size)
    batch_size = batch_size_of(memory)
    k = beam_size
    state = tree.map_structure(lambda x: _tile_beams(x, k), initial_state)
    # Only the first beam is live at the start, so the k beams do not repeat.
    first_beam = ops.cast(ops.equal(ops.arange(k), 0), "float32")  # (k,)
    live_scores = ops.tile(ops.expand_dims((1.0 - first_beam) * NEGATIVE_INFINITY, 0),
                           (batch_size, 1))  # (batch, k)
    live_tokens = ops.zeros((batch_size * k, max_length), "int32")  # (batch * k, T)
    finished_scores = ops.full((batch_size, k), NEGATIVE_INFINITY)  # (batch, k)
    finished_tokens = ops.zeros((batch_size * k, max_length), "int32")  # (batch * k, T)
    # Where each finished hypothesis ended: t * k + j, j its live beam at step t.
    finished_origins = ops.zeros((batch_size, k), "int32")  # (batch, k)
    # The attention of every live beam at every step, and each step's choice
    # of parents: the attention of a hypothesis is traced back at the end
    # (`_trace_attention`) instead of copied along with it at every step.
    attention_history = ops.zeros((max_length, batch_size * k, num_locations))  # (T, b*k, L)
    parent_history = ops.zeros((max_length, batch_size, k), "int32")  # (T, batch, k)
    previous = ops.full((batch_size * k,), start_id, "int32")  # (batch * k,)

    def keep_going(t, previous, state, live_scores, live_tokens, finished_scores,
                   finished_tokens, finished_origins, attention_history, parent_history):
        # Log-probabilities only fall, so a live hypothesis can at best keep its
        # score; with a length penalty its best is the score at max_length.
        best_live = live_scores[:, 0] / ops.maximum(
            length_normalizer(max_length, length_penalty), 1.0)  # (batch,)
        worst_finished = ops.min(finished_scores, axis=1)  # (batch,)
        undecided = ops.any(best_live > worst_finished)
        return ops.logical_and(t < max_length, undecided)

    def one_step(t, previous, state, live_scores, live_tokens, finished_scores,
                 finished_tokens, finished_origins, attention_history, parent_history):
        logits, state, alpha = step(previous, state, memory)  # (b*k, V), ., (b*k, L)
        attention_history = ops.slice_update(
            attention_history, (t, 0, 0), ops.expand_dims(ops.cast(alpha, "float32"), 0))
        vocabulary_size = ops.shape(logits)[-1]
        log_probs = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)  # (b*k, V)
        candidates = ops.expand_dims(live_scores, -1) + _unflatten_beams(
            log_probs, batch_size)  # (batch, k, V)
        top_scores, top_indices = ops.top_k(
            ops.reshape(candidates, (batch_size, -1)), 2 * k)  # (batch, 2k)
        parents = top_indices // vocabulary_size  # (batch, 2k)
        words = ops.cast(top_indices % vocabulary_size, "int32")  # (batch, 2k)
        tokens = write_column(_gather_beams(live_tokens, parents, batch_size, k), t,
                               ops.reshape(words, (-1,)))  # (batch * 2k, T)
        ended = ops.equal(words, end_id)  # (batch, 2k)

        # The k best extensions that do not end stay live.
        live_scores, live_picks = ops.top_k(
            ops.where(ended, NEGATIVE_INFINITY, top_scores), k)  # (batch, k)
        live_parents = ops.take_along_axis(parents, live_picks, axis=1)  # (batch, k)
        parent_history = ops.slice_update(
            parent_history, (t, 0, 0), ops.expand_dims(ops.cast(live_parents, "int32"), 0))
        state = tree.map_structure(
            lambda x: _gather_beams(x, live_parents, batch_size, k), state)
        live_tokens = _gather_beams(tokens, live_picks, batch_size, k)  # (batch * k, T)
        previous = ops.reshape(ops.take_along_axis(words, live_picks, axis=1), (-1,))  # (b*k,)

        # Extensions that end within the k best join the finished ones (as in
        # Hugging Face's search: so beam size 1 is exactly greedy search).
        ended_in_top_k = ops.logical_and(
            ended, ops.expand_dims(ops.arange(2 * k) < k, 0))  # (batch, 2k)
        new_finished = ops.where(
            ended_in_top_k, top_scores / length_normalizer(t + 1, length_penalty),
            NEGATIVE_INFINITY)  # (batch, 2k)
        all_scores = ops.concatenate([finished_scores, new_finished], axis=1)  # (batch, 3k)
        finished_scores, picks = ops.top_k(all_scores, k)  # (batch, k)
        all_tokens = ops.concatenate(
            [_unflatten_beams(finished_tokens, batch_size), _unflatten_beams(tokens, batch_size)],
            axis=1)  # (batch, 3k, T)
        finished_tokens = _gather_beams(_flatten_beams(all_tokens), picks, batch_size, 3 * k)
        all_origins = ops.concatenate(
            [finished_origins, t * k + ops.cast(parents, "int32")], axis=1)  # (batch, 3k)
        finished_origins = ops.take_along_axis(all_origins, picks, axis=1)  # (batch, k)
        return (t + 1, previous, state, live_scores, live_tokens, finished_scores,
                finished_tokens, finished_origins, attention_history, parent_history)

    outputs = ops.while_loop(
        keep_going, one_step,
        (0, previous, state, live_scores, live_tokens, finished_scores, finished_tokens,
         finished_origins, attention_history, parent_history),
        maximum_iterations=max_length,
    )
    (steps, _, _, live_scores, live_tokens, finished_scores, finished_tokens,
     finished_origins, attention_history, parent_history) = outputs
    n = 1 if num_captions is None else num_captions
    # Slot i of an image: its i-th finished hypothesis while it has more than
    # i, then its live ones, best first, scored as if they ended at max_length.
    num_finished = ops.sum(ops.cast(finished_scores > NEGATIVE_INFINITY / 2, "int32"),
                           axis=1, keepdims=True)  # (batch, 1)
    slots = ops.expand_dims(ops.arange(n, dtype="int32"), 0)  # (1, n)
    picks = ops.where(slots < num_finished, slots, k + slots - num_finished)  # (batch, n)
    last = steps - 1
    live_origins = last * k + ops.take(parent_history, last, axis=0)  # (batch, k)
    scores = ops.concatenate(
        [finished_scores, live_scores / length_normalizer(max_length, length_penalty)], axis=1)
    tokens = ops.concatenate([_unflatten_beams(finished_tokens, batch_size),
                              _unflatten_beams(live_tokens, batch_size)], axis=1)  # (b, 2k, T)
    origins = ops.concatenate([finished_origins, live_origins], axis=1)  # (batch, 2k)
    outputs = {
        "token_ids": _unflatten_beams(
            _gather_beams(_flatten_beams(tokens), picks, batch_size, 2 * k), batch_size),
        "scores": ops.take_along_axis(scores, picks, axis=1),  # (batch, n)
        "attention_weights": _trace_attention(
            attention_history, parent_history, ops.take_along_axis(origins, picks, axis=1),
            k),  # (batch, n, T, L)
    }
    if num_captions is None:
        outputs = {name: value[:, 0] for name, value in outputs.items()}
    return outputs


def _trace_attention(attention_history, parent_history, origins, beam_size):
    """The attention of n hypotheses per image, followed back through their parents.

    Args:
        attention_history: (T, batch * k, L), the attention of the live beam
            j of image b at step t in row b * k + j of entry t.
        parent_history: (T, batch, k): at step t, the beam of step t - 1 that
            each new live beam extends.
        origins: (batch, n) int, t * k + j: the hypothesis's last word was
            chosen at step t from live beam j.
        beam_size: k.

    Returns:
        (batch, n, T, L): the attention at each of a hypothesis's steps, zero
        after its last word.
    """
    max_length = attention_history.shape[0]
    batch_size = ops.shape(origins)[0]
    offsets = ops.expand_dims(ops.arange(batch_size, dtype="int32") * beam_size, 1)  # (b, 1)
    end_step = origins // beam_size  # (batch, n)
    beam = origins % beam_size  # (batch, n)
    rows = []
    for t in reversed(range(max_length)):
        alpha = ops.take(attention_history[t], offsets + beam, axis=0)  # (batch, n, L)
        rows.append(ops.where(ops.expand_dims(t <= end_step, -1), alpha, 0.0))
        if t > 0:
            parent = ops.take_along_axis(parent_history[t - 1], beam, axis=1)  # (batch, n)
            beam = ops.where(t <= end_step, parent, beam)  # (batch, n)
    return ops.stack(rows[::-1], axis=2)  # (batch, n, T, L)
