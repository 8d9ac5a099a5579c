"""The beam's n best captions (`beam_search(..., num_captions=n)`)."""

import itertools

import numpy as np
import pytest
from keras import ops

from sat_keras.decoding import beam_search
from sat_keras.decoding import length_normalizer

END = 2


def markov_step(tables):
    """A decoder whose next-word probabilities depend on the image and the last word.

    tables: (batch, V, V); attention is one-hot on the previous word (L = V),
    so a hypothesis's attention spells its own words shifted by one.
    """
    tables = np.asarray(tables, "float32")
    vocabulary_size = tables.shape[-1]

    def step(token_ids, state, memory):
        rows = ops.take(ops.convert_to_tensor(tables.reshape(-1, vocabulary_size)),
                        state["row"] * vocabulary_size + token_ids, axis=0)  # (b, V)
        return ops.log(rows), state, ops.one_hot(token_ids, vocabulary_size)

    return step


def n_best(tables, beam_size, num_captions, max_length, length_penalty=0.0):
    tables = np.asarray(tables, "float32")
    batch, vocabulary_size = tables.shape[:2]
    state = {"row": ops.convert_to_tensor(np.arange(batch, dtype="int32"))}
    memory = np.zeros((batch, vocabulary_size, 2), "float32")
    return {k: ops.convert_to_numpy(v) for k, v in beam_search(
        markov_step(tables), state, memory, num_locations=vocabulary_size,
        max_length=max_length, beam_size=beam_size, length_penalty=length_penalty,
        num_captions=num_captions).items()}


def exhaustive_n_best(table, n, max_length, length_penalty):
    """Every caption that ends within max_length, scored; the n best."""
    vocabulary_size = table.shape[0]
    scored = []
    for length in range(1, max_length + 1):
        for words in itertools.product(
                [w for w in range(vocabulary_size) if w != END], repeat=length - 1):
            tokens = list(words) + [END]
            previous = [1] + tokens[:-1]
            log_p = sum(np.log(table[p, w]) for p, w in zip(previous, tokens))
            scored.append((log_p / float(length_normalizer(length, length_penalty)), tokens))
    scored.sort(key=lambda item: -item[0])
    return scored[:n]


def random_tables(seed, batch, vocabulary_size):
    """Random next-word tables that never emit <pad> or <start>."""
    rng = np.random.default_rng(seed)
    tables = rng.dirichlet(np.ones(vocabulary_size) * 0.5, size=(batch, vocabulary_size))
    tables[..., :2] = 1e-9
    return tables / tables.sum(-1, keepdims=True)


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_n_best_equals_exhaustive_search_on_a_tiny_vocabulary(length_penalty):
    # V = 5 and 3 steps: a beam of 80 never drops a hypothesis, so its n best
    # are the n best of all 1 + 4 + 16 captions that end.
    tables = random_tables(0, batch=3, vocabulary_size=5)
    out = n_best(tables, beam_size=80, num_captions=6, max_length=3,
                 length_penalty=length_penalty)
    assert out["token_ids"].shape == (3, 6, 3)
    assert out["scores"].shape == (3, 6)
    assert out["attention_weights"].shape == (3, 6, 3, 5)
    for image, table in enumerate(tables):
        expected = exhaustive_n_best(table, 6, max_length=3, length_penalty=length_penalty)
        for slot, (score, tokens) in enumerate(expected):
            padded = tokens + [0] * (3 - len(tokens))
            np.testing.assert_array_equal(out["token_ids"][image, slot], padded)
            np.testing.assert_allclose(out["scores"][image, slot], score, rtol=1e-5)


def test_the_first_of_the_n_best_is_the_best_caption():
    tables = random_tables(1, batch=4, vocabulary_size=8)
    best = n_best(tables, beam_size=4, num_captions=None, max_length=6)
    several = n_best(tables, beam_size=4, num_captions=4, max_length=6)
    for name in ("token_ids", "scores", "attention_weights"):
        np.testing.assert_array_equal(several[name][:, 0], best[name])


@pytest.mark.parametrize("ends", [True, False])
def test_each_of_the_n_best_is_distinct_ranked_and_has_its_own_attention(ends):
    tables = random_tables(2, batch=5, vocabulary_size=8)
    if not ends:  # nothing ends: the n best are the live hypotheses at max_length
        tables[..., END] = 0.0
        tables /= tables.sum(-1, keepdims=True)
    out = n_best(tables, beam_size=4, num_captions=3, max_length=5)
    ended = (out["token_ids"] == END).any(axis=2)  # (batch, n)
    assert ended.any() == ends
    # Finished captions first: once a slot holds a live one, the rest do too.
    assert (np.diff(ended.astype(int), axis=1) <= 0).all()
    for ids, scores, attention, done in zip(out["token_ids"], out["scores"],
                                            out["attention_weights"], ended):
        assert len({tuple(row) for row in ids}) == 3
        assert np.isfinite(scores).all()
        assert (np.diff(scores[done]) <= 1e-6).all() and (np.diff(scores[~done]) <= 1e-6).all()
        for row, alpha in zip(ids, attention):
            length = int(np.count_nonzero(row))
            previous = np.concatenate([[1], row[:length - 1]])
            np.testing.assert_array_equal(alpha[:length].argmax(-1), previous)
            assert not alpha[length:].any()


def test_n_best_finished_captions_come_before_live_ones():
    # From <start>: 4 (0.5) never ends; 5 (0.5) ends at once. With max_length 3,
    # the only finished caption is "5 <end>"; the others are live "4 4 4"-like.
    table = np.full((8, 8), 1e-6, "float32")
    table[1, 4] = table[1, 5] = 0.5
    table[4, 4] = table[4, 6] = 0.5
    table[6, 4] = table[6, 6] = 0.5
    table[5, END] = 1.0
    table /= table.sum(-1, keepdims=True)
    out = n_best([table], beam_size=3, num_captions=3, max_length=3)
    np.testing.assert_array_equal(out["token_ids"][0, 0], [5, END, 0])
    assert (out["token_ids"][0, 1:] >= 4).all()  # three words, no <end>


@pytest.mark.parametrize("num_captions", [0, 4, 1.5])
def test_num_captions_must_be_within_the_beam(num_captions):
    with pytest.raises(ValueError, match="num_captions"):
        n_best(random_tables(0, 1, 8), beam_size=3, num_captions=num_captions, max_length=4)
