"""Greedy and sampled search: one word per hypothesis and step (keras.ops only)."""

import keras
from keras import ops
from keras import tree

from sat_keras.text import END_ID
from sat_keras.text import PAD_ID
from sat_keras.text import START_ID


def batch_size_of(memory):
    """The number of images: the rows of `memory`'s first leaf."""
    return ops.shape(tree.flatten(memory)[0])[0]


def write_column(buffer, index, values):
    """buffer[:, index] = values, as a select (traceable with a tensor index)."""
    length = ops.shape(buffer)[1]
    selected = ops.equal(ops.arange(length), index)  # (length,)
    selected = ops.reshape(selected, (1, length) + (1,) * (len(buffer.shape) - 2))
    return ops.where(selected, ops.expand_dims(values, 1), buffer)  # buffer's shape


def greedy_search(step, initial_state, memory, num_locations, max_length,
                  start_id=START_ID, end_id=END_ID):
    """Picks the most probable word at every step until `<end>` or max_length.

    Args:
        step: the step function (see the package docstring).
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
    batch_size = batch_size_of(memory)
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
        token_ids = write_column(token_ids, t, chosen)  # (batch, max_length)
        attention_weights = write_column(attention_weights, t, alpha)  # (batch, T, L)
        finished = ops.logical_or(finished, ops.equal(chosen, end_id))  # (batch,)
        return t + 1, chosen, state, finished, token_ids, scores, attention_weights

    outputs = ops.while_loop(
        keep_going, one_step,
        (0, previous, initial_state, finished, token_ids, scores, attention_weights),
        maximum_iterations=max_length,
    )
    token_ids, scores, attention_weights = outputs[4:]
    return {"token_ids": token_ids, "scores": scores, "attention_weights": attention_weights}
