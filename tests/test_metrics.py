import pytest

from sat_keras.metrics import corpus_bleu


def test_identical_captions_score_one_and_normalisation_applies():
    references = [["A red circle, to the left.", "other words here"]]
    assert corpus_bleu(references, ["a red circle to the left"]) == pytest.approx(1.0)


def test_bleu_1_counts_clipped_unigram_matches():
    # 3 of 4 hypothesis words match; lengths equal, so no brevity penalty.
    assert corpus_bleu([["a red circle here"]], ["a red square here"], max_order=1) == \
        pytest.approx(0.75)


def test_length_mismatch_is_rejected():
    with pytest.raises(ValueError, match="same length"):
        corpus_bleu([["a"]], ["a", "b"])
