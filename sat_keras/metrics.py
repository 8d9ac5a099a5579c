"""Caption metrics as captioning papers report them (coco-caption conventions).

Captions are compared as normalised words (`text.normalize_caption`:
lowercase, ASCII punctuation removed) or, with `tokenization="ptb"`, as
coco-caption does: Stanford's PTB tokenizer (Java, through `pycocoevalcap`)
with punctuation tokens dropped.
BLEU-1..4, ROUGE-L and CIDEr-D are computed here, following coco-caption's
scorers line for line (tests hold them to `pycocoevalcap` within 1e-6);
METEOR runs the METEOR 1.5 jar that `pycocoevalcap` ships, when that package
and Java are installed, and is reported as None (unavailable) otherwise.
"""

import collections
import math
import shutil
import subprocess
import warnings

from sat_keras.text import normalize_caption

ROUGE_BETA = 1.2  # coco-caption's beta for ROUGE-L's F-measure
CIDER_SIGMA = 6.0  # CIDEr-D's length-penalty width
CIDER_MAX_ORDER = 4


def _check(references, hypotheses):
    if len(references) != len(hypotheses):
        raise ValueError(
            f"references and hypotheses must have the same length. Received: "
            f"{len(references)} and {len(hypotheses)}"
        )
    if not hypotheses:
        raise ValueError("No captions to score.")
    for index, refs in enumerate(references):
        if isinstance(refs, str) or not refs:
            raise ValueError(
                f"references[{index}] must be a non-empty list of captions. Received: {refs!r}"
            )


TOKENIZATIONS = ("normalize", "ptb")


def coco_tools_available():
    """Whether Java and pycocoevalcap are here (PTB tokenizer, METEOR)."""
    return coco_tools_problem() is None


def coco_tools_problem():
    """Why the PTB tokenizer and METEOR cannot run here, or None when they can."""
    if shutil.which("java") is None:
        return "no `java` on PATH (METEOR 1.5 and the PTB tokenizer run on Java 8 or later)"
    try:
        import pycocoevalcap  # noqa: F401  (optional: the "metrics" extra)
    except ImportError:
        return 'pycocoevalcap is not installed (pip install "sat_keras[metrics]")'
    return None


def java_version():
    """The first line of `java -version`, e.g. 'openjdk version "17.0.9" 2023-10-17'."""
    try:
        result = subprocess.run(["java", "-version"], capture_output=True, text=True,
                                timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unknown ({error})"
    lines = (result.stderr or result.stdout).strip().splitlines()
    return lines[0] if lines else "unknown"


def _ptb_tokenize(references, hypotheses):
    problem = coco_tools_problem()
    if problem is not None:
        raise ValueError(f'tokenization="ptb" cannot run: {problem}; use "normalize".')
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer  # optional: "metrics" extra
    captions = {f"r{i}": [{"caption": r} for r in refs] for i, refs in enumerate(references)}
    captions.update({f"h{i}": [{"caption": h}] for i, h in enumerate(hypotheses)})
    tokenized = PTBTokenizer().tokenize(captions)
    return ([[r.split() for r in tokenized[f"r{i}"]] for i in range(len(references))],
            [tokenized[f"h{i}"][0].split() for i in range(len(hypotheses))])


def _tokenize(references, hypotheses, tokenization="normalize"):
    _check(references, hypotheses)
    if tokenization not in TOKENIZATIONS:
        raise ValueError(
            f"tokenization must be one of {TOKENIZATIONS}. Received: {tokenization!r}")
    if tokenization == "ptb":
        return _ptb_tokenize(references, hypotheses)
    return ([[normalize_caption(r) for r in refs] for refs in references],
            [normalize_caption(h) for h in hypotheses])


def _ngrams(words, n):
    return collections.Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))


def corpus_bleu_scores(references, hypotheses, max_order=4, tokenization="normalize"):
    """Corpus BLEU-1..max_order as coco-caption computes it; see `_bleu`."""
    return _bleu(*_tokenize(references, hypotheses, tokenization), max_order)


def _bleu(tokenized_references, tokenized_hypotheses, max_order=4):
    """Corpus BLEU-1..max_order from word lists.

    Clipped n-gram counts summed over the corpus, the brevity penalty from the
    reference length closest to each hypothesis (ties to the shorter), and
    coco-caption's 1e-15 / 1e-9 guards against zero counts.

    Returns:
        A list [BLEU-1, ..., BLEU-max_order].
    """
    correct = [0] * max_order
    guessed = [0] * max_order
    hypothesis_length = reference_length = 0
    for refs, hypothesis in zip(tokenized_references, tokenized_hypotheses):
        length = len(hypothesis)
        hypothesis_length += length
        reference_length += min((abs(len(r) - length), len(r)) for r in refs)[1]
        for n in range(1, max_order + 1):
            counts = _ngrams(hypothesis, n)
            max_reference_counts = collections.Counter()
            for reference in refs:
                max_reference_counts |= _ngrams(reference, n)
            correct[n - 1] += sum(min(c, max_reference_counts[g]) for g, c in counts.items())
            guessed[n - 1] += max(length - n + 1, 0)
    tiny, small = 1e-15, 1e-9
    scores, product = [], 1.0
    for n in range(max_order):
        product *= (correct[n] + tiny) / (guessed[n] + small)
        scores.append(product ** (1.0 / (n + 1)))
    ratio = (hypothesis_length + tiny) / (reference_length + small)
    if ratio < 1:
        scores = [score * math.exp(1 - 1 / ratio) for score in scores]
    return scores


def _longest_common_subsequence(a, b):
    previous = [0] * (len(b) + 1)
    for word in a:
        current = [0]
        for j, other in enumerate(b):
            current.append(previous[j] + 1 if word == other else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l(references, hypotheses, tokenization="normalize"):
    """Mean ROUGE-L F-measure (beta 1.2) of each hypothesis against its best reference."""
    return _rouge_l(*_tokenize(references, hypotheses, tokenization))


def _rouge_l(tokenized_references, tokenized_hypotheses):
    scores = []
    for refs, hypothesis in zip(tokenized_references, tokenized_hypotheses):
        precisions, recalls = [], []
        for reference in refs:
            common = _longest_common_subsequence(reference, hypothesis)
            precisions.append(common / len(hypothesis) if hypothesis else 0.0)
            recalls.append(common / len(reference) if reference else 0.0)
        precision, recall = max(precisions), max(recalls)
        if precision and recall:
            scores.append((1 + ROUGE_BETA ** 2) * precision * recall
                          / (recall + ROUGE_BETA ** 2 * precision))
        else:
            scores.append(0.0)
    return sum(scores) / len(scores)


def cider_d(references, hypotheses, tokenization="normalize"):
    """CIDEr-D of the captions; see `_cider_d`."""
    return _cider_d(*_tokenize(references, hypotheses, tokenization))


def _cider_d(tokenized_references, tokenized_hypotheses):
    """CIDEr-D: document frequencies from the references of the evaluated set.

    TF-IDF n-gram vectors (n = 1..4), the hypothesis counts clipped by the
    reference's, a Gaussian penalty on the length difference (sigma 6), the
    mean over references, times 10, averaged over images (coco-caption's
    `Cider`, which is CIDEr-D).
    """
    statistics = CiderStatistics(tokenized_references)
    scores = [statistics.score(statistics.vectorize(hypothesis),
                               [statistics.vectorize(r) for r in refs])
              for refs, hypothesis in zip(tokenized_references, tokenized_hypotheses)]
    return sum(scores) / len(scores)


class CiderStatistics:
    """CIDEr-D's document frequencies over a set of images' references, and its scoring.

    `metrics.cider_d` takes them from the evaluated images' references (as
    coco-caption does); a sequence-level reward takes them from the
    training references once and scores captions of any image against them.

    Args:
        tokenized_references: per image, its references as word lists.
    """

    def __init__(self, tokenized_references):
        orders = range(1, CIDER_MAX_ORDER + 1)
        self.document_frequency = collections.Counter()
        for refs in tokenized_references:
            self.document_frequency.update(
                {g for r in refs for n in orders for g in _ngrams(r, n)})
        self.log_num_images = math.log(float(len(tokenized_references)))

    def vectorize(self, words):
        """(TF-IDF vector per order, their norms, the length) of a word list."""
        vectors = [dict() for _ in range(CIDER_MAX_ORDER)]
        norms = [0.0] * CIDER_MAX_ORDER
        for n in range(1, CIDER_MAX_ORDER + 1):
            for ngram, count in _ngrams(words, n).items():
                weight = count * (self.log_num_images
                                  - math.log(max(1.0, self.document_frequency[ngram])))
                vectors[n - 1][ngram] = weight
                norms[n - 1] += weight ** 2
        return vectors, [math.sqrt(norm) for norm in norms], len(words)

    @staticmethod
    def score(hypothesis, references):
        """CIDEr-D of one vectorized hypothesis against its vectorized references."""
        h_vectors, h_norms, h_length = hypothesis
        total = 0.0
        for r_vectors, r_norms, r_length in references:
            penalty = math.exp(-((h_length - r_length) ** 2) / (2 * CIDER_SIGMA ** 2))
            for n in range(CIDER_MAX_ORDER):
                value = sum(min(weight, r_vectors[n].get(g, 0.0)) * r_vectors[n].get(g, 0.0)
                            for g, weight in h_vectors[n].items())
                if h_norms[n] != 0 and r_norms[n] != 0:
                    value /= h_norms[n] * r_norms[n]
                total += value * penalty
        return total / CIDER_MAX_ORDER / len(references) * 10.0


def meteor(references, hypotheses, tokenization="normalize"):
    """METEOR 1.5 through pycocoevalcap's jar; None when Java or the package is missing."""
    return _meteor(*_tokenize(references, hypotheses, tokenization))


def _meteor(tokenized_references, tokenized_hypotheses):
    """METEOR, or None with a warning that says why it could not run."""
    problem = coco_tools_problem()
    if problem is not None:
        warnings.warn(f"METEOR unavailable: {problem}.", stacklevel=3)
        return None
    from pycocoevalcap.meteor.meteor import Meteor  # optional: the "metrics" extra

    references_by_id = {i: [" ".join(r) for r in refs]
                        for i, refs in enumerate(tokenized_references)}
    hypotheses_by_id = {i: [" ".join(h)] for i, h in enumerate(tokenized_hypotheses)}
    try:
        score, _ = Meteor().compute_score(references_by_id, hypotheses_by_id)
    except Exception as error:  # the jar's failures surface as many error types
        warnings.warn(f"METEOR unavailable: the METEOR 1.5 jar failed under "
                      f"{java_version()}: {type(error).__name__}: {error}", stacklevel=3)
        return None
    return float(score)


def caption_diversity(hypotheses):
    """How varied generated captions are, in normalised words (`text.normalize_caption`).

    A captioner that writes one caption for every image, or a sequence-level
    objective collapsing onto a few phrasings, shows here before it shows in
    the scores.

    Returns:
        dict: "distinct_captions", the share of captions that differ (1.0
        when no two are equal, 1/N for one caption everywhere);
        "vocabulary_used", how many different words they use;
        "mean_length", their mean number of words;
        "repeated_bigrams", the share of captions that hold a bigram twice
        ("a man on a bench on a bench"; `no_repeat_ngram_size=2` makes it 0).
    """
    if not hypotheses:
        raise ValueError("caption_diversity needs at least one caption.")
    words = [normalize_caption(hypothesis) for hypothesis in hypotheses]
    return {"distinct_captions": len({tuple(w) for w in words}) / len(words),
            "vocabulary_used": len({word for w in words for word in w}),
            "mean_length": sum(len(w) for w in words) / len(words),
            "repeated_bigrams": sum(_repeats_a_bigram(w) for w in words) / len(words)}


def _repeats_a_bigram(words):
    bigrams = list(zip(words, words[1:]))
    return len(set(bigrams)) < len(bigrams)


def caption_metrics(references, hypotheses, with_meteor=True, tokenization="normalize"):
    """Every metric: {"bleu_1".."bleu_4", "rouge_l", "cider_d", "meteor"}.

    Args:
        references: per image, a non-empty list of reference captions.
        hypotheses: per image, one generated caption.
        with_meteor: compute METEOR ("meteor" is None without it, or where it
            cannot be computed, see `meteor`).
        tokenization: "normalize" or "ptb" (see the module docstring).
    """
    tokenized = _tokenize(references, hypotheses, tokenization)
    results = {f"bleu_{n + 1}": score for n, score in enumerate(_bleu(*tokenized))}
    results["rouge_l"] = _rouge_l(*tokenized)
    results["cider_d"] = _cider_d(*tokenized)
    results["meteor"] = _meteor(*tokenized) if with_meteor else None
    return results
