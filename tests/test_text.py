import json

import pytest

from sat_keras.text import END_ID
from sat_keras.text import START_ID
from sat_keras.text import UNK_ID
from sat_keras.text import Vocabulary
from sat_keras.text import normalize_caption


def test_normalize_lowercases_strips_punctuation_and_splits():
    assert normalize_caption("  A Dog's ball,\tin the PARK. ") == [
        "a", "dog", "s", "ball", "in", "the", "park"]
    assert normalize_caption("") == []
    assert normalize_caption("...") == []


def test_normalize_rejects_non_strings():
    with pytest.raises(TypeError, match="must be a str"):
        normalize_caption(None)


def test_build_orders_by_frequency_then_alphabet_with_special_ids_first():
    vocabulary = Vocabulary.build(["b a a", "c b a", "d"])
    assert vocabulary.tokens == ["<pad>", "<start>", "<end>", "<unk>", "a", "b", "c", "d"]


def test_min_count_and_max_size():
    captions = ["a a a b b c"]
    assert Vocabulary.build(captions, min_count=2).tokens[4:] == ["a", "b"]
    assert Vocabulary.build(captions, max_size=5).tokens[4:] == ["a"]
    with pytest.raises(ValueError, match="min_count"):
        Vocabulary.build(captions, min_count=0)
    with pytest.raises(ValueError, match="max_size"):
        Vocabulary.build(captions, max_size=4)


def test_encode_maps_unknown_words_to_unk_and_decode_stops_at_end():
    vocabulary = Vocabulary.build(["a red circle"])
    ids = vocabulary.encode("A red ZEBRA!")
    assert ids == [START_ID, vocabulary.id_of("a"), vocabulary.id_of("red"), UNK_ID, END_ID]
    assert vocabulary.decode(ids + [4, 5]) == "a red <unk>"
    assert vocabulary.encode("") == [START_ID, END_ID]
    with pytest.raises(ValueError, match="outside the vocabulary"):
        vocabulary.decode([99])


def test_json_round_trip(tmp_path):
    vocabulary = Vocabulary.build(["a red circle", "a blue square"])
    path = tmp_path / "vocabulary.json"
    vocabulary.save(path)
    assert Vocabulary.load(path) == vocabulary
    assert json.loads(path.read_text())["tokens"][:4] == ["<pad>", "<start>", "<end>", "<unk>"]


def test_load_rejects_other_files(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        Vocabulary.load(path)
    path.write_text('{"tokens": ["a"]}')
    with pytest.raises(ValueError, match="Not a sat_keras vocabulary"):
        Vocabulary.load(path)


def test_constructor_requires_special_tokens_first_and_unique_tokens():
    with pytest.raises(ValueError, match="must start with"):
        Vocabulary(["a", "b"])
    with pytest.raises(ValueError, match="unique"):
        Vocabulary(["<pad>", "<start>", "<end>", "<unk>", "a", "a"])
