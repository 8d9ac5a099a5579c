import numpy as np
from keras import ops

from sat_keras.decoding import greedy_search

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
