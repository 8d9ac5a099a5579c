import numpy as np
import tensorflow as tf

from sat_keras.data.tokenization import CaptionTokenizer
from sat_keras.data.tokenization import normalize
from sat_keras.text import Vocabulary
from sat_keras.text import normalize_caption

SAMPLES = ["A Dog's ball, in the PARK.", "Café ÉCOLE ﬁ straße", "x\ty—z [b] {c} ~d_e",
           "", "  two   spaces  ", "ÀÉÎÕÜ çà"]


def test_graph_normalisation_matches_python_rule():
    graph_words = [s.decode().split() for s in normalize(tf.constant(SAMPLES)).numpy()]
    assert graph_words == [normalize_caption(s) for s in SAMPLES]


def test_tokenizer_matches_vocabulary_encode():
    vocabulary = Vocabulary.build(["a red circle", "a blue square"])
    tokenizer = CaptionTokenizer(vocabulary, max_length=10)
    token_ids, target_ids = tokenizer(tf.constant("A red ZEBRA."))
    expected = vocabulary.encode("A red ZEBRA.")
    np.testing.assert_array_equal(token_ids, expected[:-1])
    np.testing.assert_array_equal(target_ids, expected[1:])


def test_tokenizer_truncates_and_keeps_end():
    vocabulary = Vocabulary.build(["a b c d e f"])
    token_ids, target_ids = CaptionTokenizer(vocabulary, max_length=3)(tf.constant("a b c d"))
    np.testing.assert_array_equal(token_ids, [1, vocabulary.id_of("a"), vocabulary.id_of("b")])
    np.testing.assert_array_equal(target_ids, [vocabulary.id_of("a"), vocabulary.id_of("b"), 2])


def test_empty_caption_gives_start_and_end_only():
    vocabulary = Vocabulary.build(["a"])
    token_ids, target_ids = CaptionTokenizer(vocabulary, max_length=5)(tf.constant(" , "))
    np.testing.assert_array_equal(token_ids, [1])
    np.testing.assert_array_equal(target_ids, [2])
