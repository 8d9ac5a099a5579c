"""In-graph caption tokenisation (tensorflow-text), the same rule as `text.py`."""

import tensorflow as tf
import tensorflow_text as tf_text

from sat_keras import text


def normalize(captions):
    """NFKC case folding, ASCII punctuation -> space; string tensor of any shape."""
    folded = tf_text.case_fold_utf8(captions)
    return tf.strings.regex_replace(folded, text.PUNCTUATION_PATTERN, " ")


class CaptionTokenizer:
    """Maps caption strings to id sequences in a tf.data pipeline.

    Args:
        vocabulary: a `sat_keras.text.Vocabulary`.
        max_length: the longest `token_ids` sequence (the `<start>` token
            included); longer captions keep their first `max_length - 1`
            words and still end with `<end>` in the targets.

    Call arguments:
        caption: a scalar string tensor.

    Returns:
        `(token_ids, target_ids)`, each int32 of shape (T,), with T the number
        of words (capped) + 1: `<start>` w_1 .. w_n and w_1 .. w_n `<end>`.
    """

    def __init__(self, vocabulary, max_length):
        if not isinstance(max_length, int) or max_length < 2:
            raise ValueError(
                f"max_length must be an integer >= 2. Received: {max_length!r}"
            )
        self.max_length = max_length
        self._splitter = tf_text.WhitespaceTokenizer()
        words = tf.constant(vocabulary.tokens)
        self._table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                words, tf.range(len(vocabulary.tokens), dtype=tf.int32)
            ),
            default_value=text.UNK_ID,
        )

    def __call__(self, caption):
        words = self._splitter.tokenize(normalize(caption))[: self.max_length - 1]
        ids = self._table.lookup(words)  # (num_words,)
        start = tf.constant([text.START_ID], tf.int32)
        end = tf.constant([text.END_ID], tf.int32)
        return tf.concat([start, ids], 0), tf.concat([ids, end], 0)
