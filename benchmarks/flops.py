"""Analytic FLOP counts of the work a correct Show, Attend and Tell step must do.

Counted: the matrix products and dot products (a multiply-add is 2 FLOPs);
elementwise work (tanh, sigmoid, softmax, adds) is left out, so achieved
rates built on these counts are lower bounds. Only real tokens count, not the
padding a bucket adds. Sizes: L locations of D features, embedding E, LSTM
units U, attention A, vocabulary V.

Forward, per image: the annotation projection W_a a (2 L D A, once, not per
word) and the initial state h0, c0 = tanh(Dense(mean a)) (2 * 2 D U).
Forward, per word: the query projection (2 U A), the scores v . tanh(...)
(2 L A), the context sum_i alpha_i a_i (2 L D), the gating scalar (2 U),
the LSTM (2 (E + D + U) 4U), and the deep output L_o(E y + L_h h + L_z z)
(2 U E + 2 D E + 2 E V).

Backward is twice the forward (gradients of inputs and of weights), except
where no input gradient is needed: the annotations are fixed features, so
the annotation projection and the initial-state layers cost one forward more,
not two.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Sizes:
    locations: int  # L
    features: int  # D
    embedding: int  # E
    units: int  # U
    attention: int  # A
    vocabulary: int  # V


def image_forward_flops(s):
    return 2 * s.locations * s.features * s.attention + 2 * 2 * s.features * s.units


def word_forward_flops(s):
    return (2 * s.units * s.attention + 2 * s.locations * s.attention
            + 2 * s.locations * s.features + 2 * s.units
            + 2 * (s.embedding + s.features + s.units) * 4 * s.units
            + 2 * s.units * s.embedding + 2 * s.features * s.embedding
            + 2 * s.embedding * s.vocabulary)


def training_flops(sizes, caption_lengths):
    """Forward + backward FLOPs of one training step on captions of these lengths.

    Args:
        sizes: `Sizes`.
        caption_lengths: real tokens per caption (targets, `<end>` included).
    """
    captions = len(caption_lengths)
    words = sum(caption_lengths)
    return 2 * captions * image_forward_flops(sizes) + 3 * words * word_forward_flops(sizes)


def decoding_flops(sizes, generated_words, images, beam_size=1):
    """Forward FLOPs of decoding: every hypothesis runs a word step per word.

    `generated_words`: words produced per hypothesis summed over images
    (max_length per image when nothing ends early).
    """
    return images * image_forward_flops(sizes) + beam_size * generated_words * (
        word_forward_flops(sizes))
