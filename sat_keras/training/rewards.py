"""Sequence-level rewards: a caption's CIDEr-D against its image's references."""

import numpy as np

from sat_keras.metrics import CiderStatistics
from sat_keras.text import END
from sat_keras.text import END_ID
from sat_keras.text import normalize_caption


class CiderDReward:
    """CIDEr-D of generated captions, document frequencies from training references.

    The same score as `metrics.cider_d` (coco-caption's CIDEr-D) for one
    caption, except that the document frequencies come once from the given
    references (the training set's, as in Rennie et al. 2017) instead of
    from the evaluated images'. References are compared as normalised words
    (`text.normalize_caption`), the words the vocabulary is built from.

    With `score_end` (the default, as Luo's self-critical code scores), the
    end of a caption is a word too: every reference, and every caption that
    has `<end>`, ends with the word `<end>`, so a caption scores the n-grams
    with which references end ("on the grass <end>") and a caption that
    stops mid-phrase ("a dog on the <end>") or is cut off at the longest
    length scores lower. `score_end=False` is CIDEr-D as `metrics.py`
    scores finished captions.

    Args:
        references: per image, a non-empty list of reference captions; an
            image is named by its position here.
        vocabulary: the `Vocabulary` whose token ids are scored.
        score_end: score the end of each caption as a word (see above).

    Call arguments:
        image_index: int (N,), the image each caption describes.
        token_ids: int (N, T), the captions' ids (`<end>` then padding, as
            the searches of `decoding` write them).

    Returns:
        float32 (N,): each caption's CIDEr-D.

    Example (a three-word caption equal to its reference scores 10 on
    orders 1-3 and 0 on order 4, which it has no n-gram of: 7.5; with its
    end as a fourth word it matches on every order: 10):
    >>> from sat_keras.text import Vocabulary
    >>> vocabulary = Vocabulary.build(["a red circle", "a blue square"])
    >>> references = [["a red circle"], ["a blue square"]]
    >>> ids = np.array([vocabulary.encode("a red circle", add_start=False),
    ...                 vocabulary.encode("a red circle", add_start=False)])
    >>> reward = CiderDReward(references, vocabulary, score_end=False)
    >>> [round(float(r), 3) for r in reward(np.array([0, 1]), ids)]
    [7.5, 0.0]
    >>> [round(float(r), 3) for r in CiderDReward(references, vocabulary)(np.array([0]), ids[:1])]
    [10.0]
    """

    def __init__(self, references, vocabulary, score_end=True):
        tokenized = []
        for index, refs in enumerate(references):
            if isinstance(refs, str) or not refs:
                raise ValueError(f"references[{index}] must be a non-empty list of captions. "
                                 f"Received: {refs!r}")
            ends = [END] if score_end else []
            tokenized.append([normalize_caption(r) + ends for r in refs])
        if not tokenized:
            raise ValueError("CiderDReward needs the references of at least one image.")
        self.vocabulary = vocabulary
        self.score_end = score_end
        self.statistics = CiderStatistics(tokenized)
        self._references = [[self.statistics.vectorize(r) for r in refs] for refs in tokenized]

    def __len__(self):
        return len(self._references)

    def words(self, token_ids):
        """The words of one caption's ids (`<unk>` stays a word no reference has),
        with `<end>` last where the caption has it and `score_end` is on."""
        caption = self.vocabulary.decode(token_ids)
        words = caption.split() if caption else []
        if self.score_end and np.any(np.asarray(token_ids) == END_ID):
            words.append(END)
        return words

    def __call__(self, image_index, token_ids):
        image_index = np.asarray(image_index).reshape(-1)
        token_ids = np.asarray(token_ids)
        if len(image_index) != len(token_ids):
            raise ValueError(f"{len(image_index)} image indices for {len(token_ids)} captions.")
        if len(image_index) and not 0 <= image_index.min() <= image_index.max() < len(self):
            raise ValueError(f"image_index must lie in [0, {len(self)}). Received: "
                             f"{image_index.min()}..{image_index.max()}")
        return np.array([
            self.statistics.score(self.statistics.vectorize(self.words(ids)),
                                  self._references[index])
            for index, ids in zip(image_index, token_ids)], dtype=np.float32)
