"""The constraints of `decoding.constraints` in every search: no repeated n-grams
(`block_repeated_ngrams`), no `<end>` before a minimum length (`require_min_length`)."""

import keras
import numpy as np
import pytest
from keras import ops

from sat_keras.decoding import SearchSettings
from sat_keras.decoding import search
from sat_keras.text import END_ID
from sat_keras.text import START_ID

VOCABULARY_SIZE = 9
MAX_LENGTH = 12


def bigram_logits(seed):
    """A fake language model whose next word depends on the last one only: it loops.

    `<end>` is unlikely, so captions run to max_length and would repeat.
    """
    logits = np.random.default_rng(seed).normal(size=(VOCABULARY_SIZE, VOCABULARY_SIZE)) * 3
    logits[:, END_ID] = -4.0
    return logits.astype("float32")


def bigram_step(logits):
    table = ops.convert_to_tensor(logits)

    def step(token_ids, state, memory):
        alpha = ops.ones((ops.shape(token_ids)[0], 2)) / 2.0
        return ops.take(table, token_ids, axis=0), state + 1, alpha  # (rows, V)

    return step


def run(logits, batch=3, seed=None, **settings):
    memory = np.zeros((batch, 2, 4), "float32")
    outputs = search(bigram_step(logits), ops.zeros((batch,), "int32"), memory,
                     num_locations=2, settings=SearchSettings(max_length=MAX_LENGTH, **settings),
                     seed=seed)
    return ops.convert_to_numpy(outputs["token_ids"])


def words(row):
    row = [int(token) for token in row]
    return row[:row.index(END_ID)] if END_ID in row else row


def repeats(caption, n):
    grams = [tuple(caption[i:i + n]) for i in range(len(caption) - n + 1)]
    return len(grams) != len(set(grams))


def reference_greedy(logits, n):
    """Greedy search with blocking, one word at a time in plain Python."""
    caption = [START_ID]
    while len(caption) <= MAX_LENGTH:
        scores = logits[caption[-1]].copy()
        if len(caption) >= n:
            prefix = tuple(caption[len(caption) - n + 1:])
            for i in range(len(caption) - n + 1):
                if tuple(caption[i:i + n - 1]) == prefix:
                    scores[caption[i + n - 1]] = -np.inf
        caption.append(int(np.argmax(scores)))
        if caption[-1] == END_ID:
            break
    return caption[1:]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("n", [1, 2, 3])
def test_greedy_blocking_equals_a_word_by_word_reference(seed, n):
    logits = bigram_logits(seed)
    plain = [words(row) for row in run(logits)]
    assert any(repeats(caption, n) for caption in plain)  # the fake model does repeat
    blocked = run(logits, no_repeat_ngram_size=n)
    expected = reference_greedy(logits, n)
    for row in blocked:
        assert [int(t) for t in row[:len(expected)]] == expected
        assert not repeats(words(row), n)


@pytest.mark.parametrize("settings", [
    {"beam_size": 3}, {"beam_size": 4, "length_penalty": 1.0},
    {"beam_size": 3, "num_captions": 3}, {"temperature": 1.0}])
@pytest.mark.parametrize("n", [2, 3])
def test_no_search_repeats_an_ngram(settings, n):
    keras.utils.set_random_seed(0)
    for seed in range(3):
        logits = bigram_logits(seed)
        plain = run(logits, batch=4, seed=keras.random.SeedGenerator(seed), **settings)
        assert any(repeats(words(row), n) for row in plain.reshape(-1, MAX_LENGTH))
        tokens = run(logits, batch=4, no_repeat_ngram_size=n,
                     seed=keras.random.SeedGenerator(seed), **settings)
        for row in tokens.reshape(-1, MAX_LENGTH):
            assert not repeats(words(row), n), row


def test_zero_turns_blocking_off_and_bad_sizes_are_refused():
    logits = bigram_logits(0)
    np.testing.assert_array_equal(run(logits, beam_size=3, no_repeat_ngram_size=0),
                                  run(logits, beam_size=3))
    assert SearchSettings(no_repeat_ngram_size=2).to_config()["no_repeat_ngram_size"] == 2
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="no_repeat_ngram_size must be a non-negative"):
            SearchSettings(no_repeat_ngram_size=bad)


def ending_logits(seed):
    """A fake language model that ends early: `<end>` is likely after every word."""
    logits = bigram_logits(seed)
    logits[:, END_ID] = 6.0
    return logits


def reference_min_length(logits, min_length):
    """Greedy search with no `<end>` before `min_length` words, in plain Python."""
    caption = [START_ID]
    while len(caption) <= MAX_LENGTH:
        scores = logits[caption[-1]].copy()
        if len(caption) - 1 < min_length:
            scores[END_ID] = -np.inf
        caption.append(int(np.argmax(scores)))
        if caption[-1] == END_ID:
            break
    return caption[1:]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("min_length", [1, 4])
def test_greedy_min_length_equals_a_word_by_word_reference(seed, min_length):
    logits = ending_logits(seed)
    assert all(len(words(row)) < min_length for row in run(logits))  # it ends too soon
    expected = reference_min_length(logits, min_length)
    for row in run(logits, min_length=min_length):
        assert [int(t) for t in row[:len(expected)]] == expected
        assert len(words(row)) >= min_length


@pytest.mark.parametrize("settings", [
    {"beam_size": 3}, {"beam_size": 4, "length_penalty": 1.0},
    {"beam_size": 3, "num_captions": 3}, {"temperature": 1.0},
    {"beam_size": 3, "no_repeat_ngram_size": 2}])
def test_no_search_ends_before_the_minimum(settings):
    for seed in range(3):
        logits = ending_logits(seed)
        plain = run(logits, batch=4, seed=keras.random.SeedGenerator(seed), **settings)
        assert any(len(words(row)) < 5 for row in plain.reshape(-1, MAX_LENGTH))
        tokens = run(logits, batch=4, min_length=5, seed=keras.random.SeedGenerator(seed),
                     **settings)
        for row in tokens.reshape(-1, MAX_LENGTH):
            assert len(words(row)) >= 5 and END_ID in row, row  # and it still ends


def test_min_length_zero_changes_nothing_and_bad_values_are_refused():
    logits = ending_logits(0)
    np.testing.assert_array_equal(run(logits, beam_size=3, min_length=0),
                                  run(logits, beam_size=3))
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="min_length must be a non-negative integer"):
            SearchSettings(min_length=bad)
    with pytest.raises(ValueError, match=r"min_length must be below max_length \(12\)"):
        SearchSettings(min_length=12, max_length=12)
