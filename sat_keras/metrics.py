"""Caption metrics on normalised words (see `text.normalize_caption`)."""

from nltk.translate import bleu_score

from sat_keras.text import normalize_caption


def corpus_bleu(references, hypotheses, max_order=4):
    """Corpus BLEU-n (nltk, uniform weights, no smoothing).

    Args:
        references: per image, a list of reference caption strings.
        hypotheses: per image, one generated caption string.
        max_order: n of BLEU-n.

    Returns:
        A float in [0, 1].
    """
    if len(references) != len(hypotheses):
        raise ValueError(
            f"references and hypotheses must have the same length. Received: "
            f"{len(references)} and {len(hypotheses)}"
        )
    if not hypotheses:
        raise ValueError("No captions to score.")
    tokenized_references = [[normalize_caption(r) for r in refs] for refs in references]
    tokenized_hypotheses = [normalize_caption(h) for h in hypotheses]
    weights = (1.0 / max_order,) * max_order
    return float(bleu_score.corpus_bleu(tokenized_references, tokenized_hypotheses,
                                        weights=weights))
