"""Caption search over the step contract, in-graph (keras.ops only).

A decoder is seen only through
`step(token_ids (rows,), state, memory) -> (logits (rows, V), state,
attention_weights (rows, L))`; `state` and `memory` are any nested
structures of tensors whose leaves have their rows first. `memory` holds
one row per image; `token_ids` and `state` hold one row per hypothesis:
one per image in greedy search and sampling, `beam_size` consecutive rows
per image in beam search (rows = images * beams), so the beams of an image
share its memory instead of reading `beam_size` copies of it.

- `word_by_word`: `greedy_search`, `sample_search`;
- `beam_search`: the batched `beam_search`;
- `constraints`: step wrappers that forbid words (`suppress_tokens`,
  `block_repeated_ngrams`, `require_min_length`);
- `search_settings`: `SearchSettings`, the decoding object, and `search`,
  which runs the search and constraints it chooses.
"""

from sat_keras.decoding.beam_search import beam_search
from sat_keras.decoding.beam_search import check_num_captions
from sat_keras.decoding.beam_search import length_normalizer
from sat_keras.decoding.constraints import NEGATIVE_INFINITY
from sat_keras.decoding.constraints import block_repeated_ngrams
from sat_keras.decoding.constraints import require_min_length
from sat_keras.decoding.constraints import suppress_tokens
from sat_keras.decoding.search_settings import SearchSettings
from sat_keras.decoding.search_settings import search
from sat_keras.decoding.word_by_word import greedy_search
from sat_keras.decoding.word_by_word import sample_search

__all__ = [
    "NEGATIVE_INFINITY",
    "SearchSettings",
    "beam_search",
    "block_repeated_ngrams",
    "check_num_captions",
    "greedy_search",
    "length_normalizer",
    "require_min_length",
    "sample_search",
    "search",
    "suppress_tokens",
]
