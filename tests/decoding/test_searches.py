import numpy as np
import pytest
from keras import ops

from sat_keras.decoding import SearchSettings
from sat_keras.decoding import beam_search
from sat_keras.decoding import greedy_search
from sat_keras.decoding import sample_search
from sat_keras.decoding import suppress_tokens
from sat_keras.text import UNK_ID

VOCABULARY_SIZE = 8


def scripted_step(script):
    """A fake decoder: at step t row b emits script[b][t] with certainty.

    The state counts steps; attention is one-hot on location t mod L.
    """
    script = np.array(script, "int32")

    def step(token_ids, state, memory):
        t = state["t"]
        tokens = ops.take(ops.convert_to_tensor(script), t, axis=1)  # (batch,)
        logits = 10.0 * ops.one_hot(tokens, VOCABULARY_SIZE)  # (batch, V)
        num_locations = ops.shape(memory)[1]
        attention = ops.one_hot(ops.mod(t, num_locations) + ops.zeros_like(tokens),
                                num_locations)  # (batch, L)
        return logits, {"t": t + 1}, attention

    return step


def _search(script, max_length):
    memory = np.zeros((len(script), 3, 2), "float32")
    return {k: ops.convert_to_numpy(v) for k, v in greedy_search(
        scripted_step(script), {"t": ops.convert_to_tensor(0)}, memory,
        num_locations=3, max_length=max_length).items()}


def test_greedy_follows_the_script_and_pads_after_end():
    out = _search([[5, 6, 2, 7, 7], [4, 2, 7, 7, 7]], max_length=5)
    np.testing.assert_array_equal(out["token_ids"], [[5, 6, 2, 0, 0], [4, 2, 0, 0, 0]])
    # Attention rows after <end> are zero; before it, one-hot on t mod 3.
    np.testing.assert_array_equal(out["attention_weights"][0, :, :].argmax(-1)[:3], [0, 1, 2])
    assert not out["attention_weights"][1, 2:].any()
    log_p = np.log(np.exp(10.0) / (np.exp(10.0) + VOCABULARY_SIZE - 1))
    np.testing.assert_allclose(out["scores"], [3 * log_p, 2 * log_p], atol=1e-6)


def test_greedy_stops_at_max_length_without_end():
    out = _search([[5, 6, 7, 4], [4, 4, 4, 4]], max_length=3)
    np.testing.assert_array_equal(out["token_ids"], [[5, 6, 7], [4, 4, 4]])


def table_step(tables):
    """A fake decoder whose next-word log-probabilities depend on the last word.

    tables[b] maps the previous token to a probability vector over V words.
    """
    tables = np.array(tables, "float32")  # (batch, V, V)

    def step(token_ids, state, memory):
        rows = ops.take(ops.convert_to_tensor(tables.reshape(-1, VOCABULARY_SIZE)),
                        state["row"] * VOCABULARY_SIZE + token_ids, axis=0)  # (b, V)
        attention = ops.one_hot(ops.zeros_like(token_ids), 3)
        return ops.log(rows), state, attention

    return step


def _beam(tables, beam_size, max_length=4, length_penalty=0.0):
    batch = len(tables)
    state = {"row": ops.convert_to_tensor(np.arange(batch, dtype="int32"))}
    memory = np.zeros((batch, 3, 2), "float32")
    return {k: ops.convert_to_numpy(v) for k, v in beam_search(
        table_step(tables), state, memory, num_locations=3, max_length=max_length,
        beam_size=beam_size, length_penalty=length_penalty).items()}


def _table(transitions):
    """transitions: {previous: {next: probability}}; the rest spread evenly."""
    table = np.full((VOCABULARY_SIZE, VOCABULARY_SIZE), 1e-6, "float32")
    for previous, row in transitions.items():
        for word, probability in row.items():
            table[previous, word] = probability
    return table / table.sum(-1, keepdims=True)


# Greedy picks 4 (0.6) then must take 6 -> <end> (0.3 * 1.0 = 0.18 in all), while
# 5 (0.4) -> <end> (0.9) gives 0.36: beam 2 finds the better caption.
GARDEN_PATH = _table({1: {4: 0.6, 5: 0.4}, 4: {6: 0.3, 7: 0.3, 2: 0.4 - 1e-3},
                      5: {2: 0.9, 7: 0.1}, 6: {2: 1.0}, 7: {2: 1.0}})


def test_beam_finds_the_caption_greedy_misses():
    out = _beam([GARDEN_PATH], beam_size=2)
    np.testing.assert_array_equal(out["token_ids"], [[5, 2, 0, 0]])
    np.testing.assert_allclose(out["scores"], [np.log(0.4 * 0.9)], rtol=1e-3)
    greedy = greedy_search(table_step([GARDEN_PATH]), {"row": ops.convert_to_tensor([0])},
                           np.zeros((1, 3, 2), "float32"), num_locations=3, max_length=4)
    np.testing.assert_array_equal(ops.convert_to_numpy(greedy["token_ids"]), [[4, 2, 0, 0]])


def test_beam_size_one_equals_greedy():
    rng = np.random.default_rng(0)
    tables = rng.dirichlet(np.ones(VOCABULARY_SIZE) * 0.3, size=(3, VOCABULARY_SIZE))
    state = {"row": ops.convert_to_tensor(np.arange(3, dtype="int32"))}
    memory = np.zeros((3, 3, 2), "float32")
    greedy = greedy_search(table_step(tables), state, memory, num_locations=3, max_length=6)
    beam = _beam(tables, beam_size=1, max_length=6)
    np.testing.assert_array_equal(beam["token_ids"], ops.convert_to_numpy(greedy["token_ids"]))
    np.testing.assert_allclose(beam["scores"], ops.convert_to_numpy(greedy["scores"]),
                               rtol=1e-5)


def test_beam_returns_a_caption_when_nothing_ends():
    never_ends = _table({w: {4: 0.5, 5: 0.5} for w in range(VOCABULARY_SIZE)})
    never_ends[:, 2] = 0.0
    out = _beam([never_ends, GARDEN_PATH], beam_size=3, max_length=3)
    assert (out["token_ids"][0] > 3).all()  # three words, no <end>, no padding
    assert np.isfinite(out["scores"]).all()
    np.testing.assert_array_equal(out["token_ids"][1], [5, 2, 0])


def test_tokens_after_end_are_padding_and_attention_is_zero_there():
    out = _beam([GARDEN_PATH], beam_size=3, max_length=5)
    ids = out["token_ids"][0]
    end = int(np.flatnonzero(ids == 2)[0])
    assert not ids[end + 1:].any()
    assert not out["attention_weights"][0, end + 1:].any()
    assert out["attention_weights"][0, :end + 1].sum() == pytest.approx(end + 1)



def attend_to_previous_word(step):
    """The step, with attention one-hot on the previous word (L = V locations)."""

    def attending(token_ids, state, memory):
        logits, state, _ = step(token_ids, state, memory)
        return logits, state, ops.one_hot(token_ids, VOCABULARY_SIZE)

    return attending


@pytest.mark.parametrize("ends", [True, False])
def test_beam_attention_follows_the_chosen_hypothesis(ends):
    # Attention on the previous word makes each hypothesis's attention its own
    # tokens shifted by one: tracing it back through the wrong parent shows.
    rng = np.random.default_rng(4)
    tables = rng.dirichlet(np.ones(VOCABULARY_SIZE) * 0.3, size=(5, VOCABULARY_SIZE))
    if not ends:
        tables[..., 2] = 0.0
        tables /= tables.sum(-1, keepdims=True)
    state = {"row": ops.convert_to_tensor(np.arange(5, dtype="int32"))}
    memory = np.zeros((5, VOCABULARY_SIZE, 2), "float32")
    out = {k: ops.convert_to_numpy(v) for k, v in beam_search(
        attend_to_previous_word(table_step(tables)), state, memory,
        num_locations=VOCABULARY_SIZE, max_length=6, beam_size=3).items()}
    for ids, attention in zip(out["token_ids"], out["attention_weights"]):
        length = int(np.count_nonzero(ids))
        previous = np.concatenate([[1], ids[:length - 1]])  # <start>, then the words
        np.testing.assert_array_equal(attention[:length].argmax(-1), previous)
        np.testing.assert_array_equal(attention[:length].max(-1), 1.0)
        assert not attention[length:].any()
    assert (out["token_ids"] == 2).any(axis=1).all() == ends

def test_length_penalty_prefers_longer_captions():
    # 4 -> <end>: 0.5 * 0.5 = 0.25 (2 tokens); 5 6 <end>: 0.5 * 0.45 * 1.0 = 0.225 (3 tokens).
    table = _table({1: {4: 0.5, 5: 0.5}, 4: {2: 0.5, 7: 0.5}, 5: {6: 0.45, 7: 0.55},
                    6: {2: 1.0}, 7: {7: 1.0}})
    assert list(_beam([table], beam_size=4, max_length=4)["token_ids"][0][:2]) == [4, 2]
    longer = _beam([table], beam_size=4, max_length=4, length_penalty=2.0)
    assert list(longer["token_ids"][0][:3]) == [5, 6, 2]


def test_invalid_beam_size():
    with pytest.raises(ValueError, match="beam_size"):
        _beam([GARDEN_PATH], beam_size=0)


def test_sampling_follows_the_word_distribution():
    import keras

    # From <start>: word 4 with 0.7, word 5 with 0.3; both then end.
    table = _table({1: {4: 0.7, 5: 0.3}, 4: {2: 1.0}, 5: {2: 1.0}})
    batch = 1000
    state = {"row": ops.zeros((batch,), "int32")}
    out = sample_search(table_step([table]), state, np.zeros((batch, 3, 2), "float32"),
                        num_locations=3, max_length=3, seed=keras.random.SeedGenerator(0))
    first = ops.convert_to_numpy(out["token_ids"])[:, 0]
    assert abs((first == 4).mean() - 0.7) < 0.05
    assert set(ops.convert_to_numpy(out["token_ids"])[:, 1]) == {2}
    cold = sample_search(table_step([table]), state, np.zeros((batch, 3, 2), "float32"),
                         num_locations=3, max_length=3, temperature=0.05, seed=1)
    assert (ops.convert_to_numpy(cold["token_ids"])[:, 0] == 4).mean() > 0.99
    with pytest.raises(ValueError, match="temperature"):
        sample_search(table_step([table]), state, np.zeros((1, 3, 2)), 3, 3, temperature=0)


# <unk> (3) is the likeliest first word; then 4 or 5, then <end>.
UNKNOWN_FIRST = _table({1: {UNK_ID: 0.5, 4: 0.3, 5: 0.2}, UNK_ID: {2: 1.0},
                        4: {2: 1.0}, 5: {2: 1.0}})


@pytest.mark.parametrize("beam_size", [1, 3])
def test_suppressed_tokens_are_never_chosen_and_the_rest_renormalised(beam_size):
    state = {"row": ops.convert_to_tensor([0])}
    memory = np.zeros((1, 3, 2), "float32")
    kwargs = dict(num_locations=3, max_length=3)
    if beam_size == 1:
        plain = greedy_search(table_step([UNKNOWN_FIRST]), state, memory, **kwargs)
        out = greedy_search(suppress_tokens(table_step([UNKNOWN_FIRST]), [UNK_ID]), state,
                            memory, **kwargs)
    else:
        plain = beam_search(table_step([UNKNOWN_FIRST]), state, memory, beam_size=3, **kwargs)
        out = beam_search(suppress_tokens(table_step([UNKNOWN_FIRST]), [UNK_ID]), state,
                          memory, beam_size=3, **kwargs)
    np.testing.assert_array_equal(ops.convert_to_numpy(plain["token_ids"]), [[UNK_ID, 2, 0]])
    np.testing.assert_array_equal(ops.convert_to_numpy(out["token_ids"]), [[4, 2, 0]])
    # 0.3 of the 0.5 left once <unk> is gone, then <end> with certainty.
    np.testing.assert_allclose(ops.convert_to_numpy(out["scores"]), [np.log(0.3 / 0.5)],
                               rtol=1e-4)


def test_sampling_never_draws_a_suppressed_token():
    import keras

    batch = 500
    out = sample_search(suppress_tokens(table_step([UNKNOWN_FIRST]), [UNK_ID, 5]),
                        {"row": ops.zeros((batch,), "int32")},
                        np.zeros((batch, 3, 2), "float32"), num_locations=3, max_length=3,
                        seed=keras.random.SeedGenerator(0))
    assert set(ops.convert_to_numpy(out["token_ids"])[:, 0]) == {4}


def test_suppress_unknown_must_be_a_bool():
    assert SearchSettings(suppress_unknown=True).to_config()["suppress_unknown"] is True
    with pytest.raises(ValueError, match="suppress_unknown must be True or False"):
        SearchSettings(suppress_unknown="yes")
