import collections
import shutil

import pytest
from helpers import FLICKR8K_DIR

from sat_keras import metrics
from sat_keras.text import normalize_caption

TOKEN_FILE = FLICKR8K_DIR / "Flickr8k.token.txt"

FIXED_CAPTIONS = {
    "a": ["A dog runs on the grass .", "A brown dog is running through a field .",
          "The dog plays outside .", "A dog running in green grass .",
          "A puppy runs across a lawn ."],
    "b": ["Two children play in the snow .", "Kids are playing in snow .",
          "Two kids making a snowman .", "Children in winter coats play .",
          "A boy and a girl in the snow ."],
    "c": ["A man rides a bike down a hill .", "A cyclist on a mountain trail .",
          "A person riding a bicycle downhill .", "Man on a bike in the woods .",
          "A biker goes down a dirt path ."],
}


def _caption_sets(limit=60):
    """Real Flickr8k captions when the shared data is present, else a fixed set."""
    if not TOKEN_FILE.exists():
        return list(FIXED_CAPTIONS.values())
    by_image = collections.defaultdict(list)
    with open(TOKEN_FILE, encoding="utf-8") as file:
        for line in file:
            name, caption = line.rstrip("\n").split("\t")
            by_image[name.split("#")[0]].append(caption)
    return [captions for _, captions in sorted(by_image.items())[:limit]]


def _cases():
    """Hypotheses: each image's first caption, its own (held out) or a neighbour's."""
    sets = _caption_sets()
    references = [captions[1:] for captions in sets]
    hypotheses = [sets[i][0] if i % 3 else sets[(i + 1) % len(sets)][0]
                  for i in range(len(sets))]
    return references, hypotheses


def _coco(scorer, references, hypotheses):
    gts = {i: [" ".join(normalize_caption(r)) for r in refs] for i, refs in enumerate(references)}
    res = {i: [" ".join(normalize_caption(h))] for i, h in enumerate(hypotheses)}
    return scorer.compute_score(gts, res)[0]


def test_bleu_matches_pycocoevalcap():
    from pycocoevalcap.bleu.bleu import Bleu

    references, hypotheses = _cases()
    expected = _coco(Bleu(4), references, hypotheses)
    assert metrics.corpus_bleu_scores(references, hypotheses) == pytest.approx(expected,
                                                                               abs=1e-6)


def test_rouge_l_matches_pycocoevalcap():
    from pycocoevalcap.rouge.rouge import Rouge

    references, hypotheses = _cases()
    assert metrics.rouge_l(references, hypotheses) == pytest.approx(
        _coco(Rouge(), references, hypotheses), abs=1e-6)


def test_cider_d_matches_pycocoevalcap():
    from pycocoevalcap.cider.cider import Cider

    references, hypotheses = _cases()
    assert metrics.cider_d(references, hypotheses) == pytest.approx(
        _coco(Cider(), references, hypotheses), abs=1e-6)


@pytest.mark.skipif(shutil.which("java") is None, reason="METEOR needs Java")
def test_meteor_runs_the_jar():
    references, hypotheses = _cases()
    score = metrics.meteor(references[:10], hypotheses[:10])
    assert 0.0 < score < 1.0
    assert metrics.meteor([["a red circle"]], ["a red circle"]) == pytest.approx(1.0, abs=0.01)


def test_ptb_tokenization_says_why_it_cannot_run(monkeypatch):
    monkeypatch.setattr(metrics.shutil, "which", lambda name: None)
    with pytest.raises(ValueError, match='"ptb" cannot run: no `java` on PATH.*"normalize"'):
        metrics.caption_metrics([["a red circle"]], ["a red circle"], with_meteor=False,
                                tokenization="ptb")


def test_meteor_says_why_without_java(monkeypatch):
    monkeypatch.setattr(metrics.shutil, "which", lambda name: None)
    with pytest.warns(UserWarning, match="METEOR unavailable: no `java` on PATH"):
        assert metrics.meteor([["a red circle"]], ["a red circle"]) is None


@pytest.mark.skipif(shutil.which("java") is None, reason="needs Java to fail the jar")
def test_meteor_says_why_when_the_jar_fails(monkeypatch):
    from pycocoevalcap.meteor import meteor

    def broken(self):
        raise OSError("Unsupported major.minor version 52.0")

    monkeypatch.setattr(meteor.Meteor, "__init__", broken)
    with pytest.warns(UserWarning, match=r"jar failed under .*version.*: OSError: Unsupported"):
        assert metrics.meteor([["a red circle"]], ["a red circle"]) is None


def test_perfect_captions_score_one_on_bleu_and_rouge():
    references = [["a red circle", "a circle that is red"], ["two blue squares"]]
    hypotheses = ["a red circle", "two blue squares"]
    scores = metrics.caption_metrics(references, hypotheses, with_meteor=False)
    assert scores["bleu_1"] == pytest.approx(1.0)
    assert scores["rouge_l"] == pytest.approx(1.0)
    assert scores["meteor"] is None


def test_bleu_1_counts_clipped_unigram_matches():
    # 3 of 4 hypothesis words match; lengths equal, so no brevity penalty.
    assert metrics.corpus_bleu_scores([["a red circle here"]], ["a red square here"],
                                      max_order=1)[0] == pytest.approx(0.75)
    # "a a a a" against "a red circle here": clipped to one match of four.
    assert metrics.corpus_bleu_scores([["a red circle here"]], ["a a a a"],
                                      max_order=1)[0] == pytest.approx(0.25)


@pytest.mark.parametrize("references, hypotheses, message", [
    ([["a"]], ["a", "b"], "same length"),
    ([], [], "No captions"),
    (["a red circle"], ["a"], "non-empty list"),
])
def test_bad_input_is_rejected(references, hypotheses, message):
    with pytest.raises(ValueError, match=message):
        metrics.caption_metrics(references, hypotheses)


@pytest.mark.skipif(shutil.which("java") is None, reason="the PTB tokenizer needs Java")
def test_ptb_tokenization_matches_coco_caption_pipeline():
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    references, hypotheses = _cases()
    references, hypotheses = references[:20], hypotheses[:20]
    gts = PTBTokenizer().tokenize(
        {i: [{"caption": r} for r in refs] for i, refs in enumerate(references)})
    res = PTBTokenizer().tokenize({i: [{"caption": h}] for i, h in enumerate(hypotheses)})
    expected = Bleu(4).compute_score(gts, res)[0]
    scores = metrics.caption_metrics(references, hypotheses, with_meteor=False,
                                     tokenization="ptb")
    assert [scores[f"bleu_{n}"] for n in range(1, 5)] == pytest.approx(expected, abs=1e-6)
    # PTB keeps clitics as tokens ("'s"); the default rule splits them off as words.
    assert metrics._tokenize([["a dog's toy"]], ["x"], "ptb")[0][0][0] == ["a", "dog", "'s", "toy"]


def test_unknown_tokenization_is_rejected():
    with pytest.raises(ValueError, match="tokenization must be one of"):
        metrics.caption_metrics([["a"]], ["a"], tokenization="spacy")


def test_caption_diversity_counts_distinct_captions_words_and_length():
    diversity = metrics.caption_diversity(["A dog runs.", "a dog runs", "A cat sits on a mat"])
    assert diversity == {"distinct_captions": 2 / 3, "vocabulary_used": 7, "mean_length": 4.0,
                         "repeated_bigrams": 0.0}
    repeating = metrics.caption_diversity(["a man on a bench on a bench", "a dog a dog",
                                           "a dog and a cat", "a dog"])
    assert repeating["repeated_bigrams"] == 0.5  # "on a" / "a bench" twice, "a dog" twice
    one_caption = metrics.caption_diversity(["a dog"] * 4)
    assert one_caption["distinct_captions"] == 0.25 and one_caption["vocabulary_used"] == 2
    with pytest.raises(ValueError, match="at least one"):
        metrics.caption_diversity([])
