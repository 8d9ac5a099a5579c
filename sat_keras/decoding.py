"""Caption search over the step contract, in-graph (keras.ops only).

A decoder is seen only through
`step(token_ids (rows,), state, memory) -> (logits (rows, V), state,
attention_weights (rows, L))`; `state` and `memory` are any nested
structures of tensors whose leaves have their rows first. `memory` holds
one row per image; `token_ids` and `state` hold one row per hypothesis:
one per image in greedy search and sampling, `beam_size` consecutive rows
per image in beam search (rows = images * beams), so the beams of an image
share its memory instead of reading `beam_size` copies of it.
"""

import dataclasses

import keras
from keras import ops
from keras import tree

from sat_keras.text import END_ID
from sat_keras.text import PAD_ID
from sat_keras.text import START_ID
from sat_keras.text import UNK_ID


def _batch_size(memory):
    return ops.shape(tree.flatten(memory)[0])[0]


def _write_column(buffer, index, values):
    """buffer[:, index] = values, as a select (traceable with a tensor index)."""
    length = ops.shape(buffer)[1]
    selected = ops.equal(ops.arange(length), index)  # (length,)
    selected = ops.reshape(selected, (1, length) + (1,) * (len(buffer.shape) - 2))
    return ops.where(selected, ops.expand_dims(values, 1), buffer)  # buffer's shape


def greedy_search(step, initial_state, memory, num_locations, max_length,
                  start_id=START_ID, end_id=END_ID):
    """Picks the most probable word at every step until `<end>` or max_length.

    Args:
        step: the step function (see module docstring).
        initial_state: the decoder state before the first word.
        memory: per-image tensors the step reads (batch first).
        num_locations: L, the number of attention locations.
        max_length: the most words generated, `<end>` included.
        start_id, end_id: ids of `<start>` and `<end>`.

    Returns:
        A dict with "token_ids" int32 (batch, max_length): the words, then
        `<end>`, then `<pad>` (0) to the end; "scores" float32 (batch,): the
        summed log-probabilities of the emitted tokens, `<end>` included;
        "attention_weights" float32 (batch, max_length, L): zero after `<end>`.
    """
    return _word_by_word(step, initial_state, memory, num_locations, max_length,
                         lambda log_probs: ops.argmax(log_probs, axis=-1), start_id, end_id)


def sample_search(step, initial_state, memory, num_locations, max_length, temperature=1.0,
                  seed=None, start_id=START_ID, end_id=END_ID):
    """Draws each word from softmax(logits / temperature) until `<end>` or max_length.

    Args:
        temperature: > 0; below 1 sharpens the distribution, above 1 flattens it.
        seed: an int or a `keras.random.SeedGenerator`.
        (the rest as in `greedy_search`)

    Returns:
        As `greedy_search`; "scores" are the model's log-probabilities
        (temperature 1) of the drawn words.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be positive. Received: {temperature!r}")

    def draw(log_probs):  # (batch, V) -> (batch,)
        return ops.squeeze(keras.random.categorical(log_probs / temperature, 1, seed=seed), -1)

    return _word_by_word(step, initial_state, memory, num_locations, max_length, draw,
                         start_id, end_id)


def _word_by_word(step, initial_state, memory, num_locations, max_length, choose,
                  start_id, end_id):
    """One word per step, picked by `choose(log_probs (batch, V)) -> (batch,)`."""
    batch_size = _batch_size(memory)
    token_ids = ops.zeros((batch_size, max_length), "int32")  # (batch, max_length)
    attention_weights = ops.zeros((batch_size, max_length, num_locations))  # (batch, T, L)
    scores = ops.zeros((batch_size,))  # (batch,)
    finished = ops.zeros((batch_size,), "bool")  # (batch,)
    previous = ops.full((batch_size,), start_id, "int32")  # (batch,)

    def keep_going(t, previous, state, finished, token_ids, scores, attention_weights):
        return ops.logical_and(t < max_length, ops.logical_not(ops.all(finished)))

    def one_step(t, previous, state, finished, token_ids, scores, attention_weights):
        logits, state, alpha = step(previous, state, memory)  # (batch, V), ., (batch, L)
        log_probs = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)  # (batch, V)
        chosen = ops.cast(choose(log_probs), "int32")  # (batch,)
        chosen = ops.where(finished, PAD_ID, chosen)  # (batch,)
        chosen_log_probs = ops.squeeze(
            ops.take_along_axis(log_probs, ops.expand_dims(chosen, -1), axis=-1), -1
        )  # (batch,)
        scores = scores + ops.where(finished, 0.0, chosen_log_probs)  # (batch,)
        alpha = ops.where(ops.expand_dims(finished, -1), 0.0,
                          ops.cast(alpha, "float32"))  # (batch, L)
        token_ids = _write_column(token_ids, t, chosen)  # (batch, max_length)
        attention_weights = _write_column(attention_weights, t, alpha)  # (batch, T, L)
        finished = ops.logical_or(finished, ops.equal(chosen, end_id))  # (batch,)
        return t + 1, chosen, state, finished, token_ids, scores, attention_weights

    outputs = ops.while_loop(
        keep_going, one_step,
        (0, previous, initial_state, finished, token_ids, scores, attention_weights),
        maximum_iterations=max_length,
    )
    token_ids, scores, attention_weights = outputs[4:]
    return {"token_ids": token_ids, "scores": scores, "attention_weights": attention_weights}


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
    batch_size = _batch_size(memory)
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
            isinstance(num_captions, int) and 1 <= num_captions <= beam_size):
        raise ValueError(f"num_captions must be an integer from 1 to beam_size ({beam_size}). "
                         f"Received: {num_captions!r}")


@dataclasses.dataclass(frozen=True)
class SearchSettings:
    """How captions are searched for: the settings of `ShowAttendTell.search`.

    `beam_size` 1 (with `num_captions` None) is greedy search, larger sizes
    the batched `beam_search` with `length_penalty`; a `temperature` draws
    every word instead (`sample_search`). `num_captions` n (1 to beam_size)
    asks for the beam's n best. `suppress_unknown` never emits `<unk>`
    (`suppress_tokens`; default False: the model's own distribution, as the
    authors decode). `no_repeat_ngram_size` n > 0 never repeats an n-gram
    within a caption (`block_repeated_ngrams`; 0, the default: no blocking,
    as the authors decode). Frozen and hashable: the model keeps one
    compiled search per distinct settings.

    Example:
    >>> SearchSettings(beam_size=3).as_kwargs()["beam_size"]
    3
    """

    max_length: int = 20
    beam_size: int = 1
    length_penalty: float = 0.0
    temperature: float = None
    num_captions: int = None
    suppress_unknown: bool = False
    no_repeat_ngram_size: int = 0

    def __post_init__(self):
        if not isinstance(self.max_length, int) or self.max_length < 1:
            raise ValueError(
                f"max_length must be a positive integer. Received: {self.max_length!r}")
        if not isinstance(self.beam_size, int) or self.beam_size < 1:
            raise ValueError(
                f"beam_size must be a positive integer. Received: {self.beam_size!r}")
        if self.temperature is not None and not self.temperature > 0:
            raise ValueError(f"temperature must be positive. Received: {self.temperature!r}")
        check_num_captions(self.num_captions, self.beam_size)
        if not isinstance(self.suppress_unknown, bool):
            raise ValueError(f"suppress_unknown must be True or False. "
                             f"Received: {self.suppress_unknown!r}")
        if (isinstance(self.no_repeat_ngram_size, bool)
                or not isinstance(self.no_repeat_ngram_size, int)
                or self.no_repeat_ngram_size < 0):
            raise ValueError(f"no_repeat_ngram_size must be a non-negative integer (0: off). "
                             f"Received: {self.no_repeat_ngram_size!r}")
        if self.num_captions is not None and self.temperature is not None:
            raise ValueError("num_captions comes from beam search; it does not combine with "
                             "temperature sampling.")
        object.__setattr__(self, "length_penalty", float(self.length_penalty))

    @classmethod
    def from_value(cls, value):
        """None (the defaults), a `SearchSettings`, or a dict of its fields."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            return cls(**value)
        raise TypeError(f"Expected SearchSettings, a dict or None. Received: {value!r}")

    @classmethod
    def one_caption_each(cls, value, writer):
        """`from_value` for a `writer` of one caption per input ("caption_records
        writes one caption per image"): `num_captions` must be None."""
        settings = cls.from_value(value)
        if settings.num_captions is not None:
            raise ValueError(f"{writer}; num_captions must be None. "
                             f"Received: {settings.num_captions!r}")
        return settings

    def as_kwargs(self):
        return dataclasses.asdict(self)


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
    batch_size = _batch_size(memory)
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
        tokens = _write_column(_gather_beams(live_tokens, parents, batch_size, k), t,
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


def search(step, initial_state, memory, num_locations, max_length=20, beam_size=1,
           length_penalty=0.0, temperature=None, num_captions=None, suppress_unknown=False,
           no_repeat_ngram_size=0, seed=None):
    """The search that `SearchSettings`' fields choose, over one step function.

    `temperature` set: `sample_search` (drawing with `seed`); otherwise
    `greedy_search` for beam size 1 and one caption each, `beam_search`
    for the rest. `suppress_unknown` wraps the step in `suppress_tokens`
    so that `<unk>` is never written, `no_repeat_ngram_size` in
    `block_repeated_ngrams`. Returns that search's dict.
    """
    if suppress_unknown:
        step = suppress_tokens(step, [UNK_ID])
    if no_repeat_ngram_size:
        step, initial_state = block_repeated_ngrams(step, initial_state, memory,
                                                    no_repeat_ngram_size, max_length)
    if temperature is not None:
        return sample_search(step, initial_state, memory, num_locations=num_locations,
                             max_length=max_length, temperature=temperature, seed=seed)
    if beam_size == 1 and num_captions is None:
        return greedy_search(step, initial_state, memory, num_locations=num_locations,
                             max_length=max_length)
    return beam_search(step, initial_state, memory, num_locations=num_locations,
                       max_length=max_length, beam_size=beam_size,
                       length_penalty=length_penalty, num_captions=num_captions)


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
