import collections

import numpy as np
import pytest

from sat_keras.data.images import load_image_files
from sat_keras.data.pipeline import count_batches
from sat_keras.data.pipeline import default_bucket_boundaries
from sat_keras.data.pipeline import make_caption_dataset
from sat_keras.data.records import CaptionRecord
from sat_keras.data.synthetic import generate_synthetic
from sat_keras.text import Vocabulary
from sat_keras.text import normalize_caption


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    return generate_synthetic(str(tmp_path_factory.mktemp("data")), num_images=24, seed=1)


@pytest.fixture(scope="module")
def vocabulary(records):
    return Vocabulary.build(c for r in records for c in r.captions)


def test_default_boundaries_leave_room_for_the_longest_sequence():
    assert default_bucket_boundaries(20) == [5, 9, 13, 17, 21]
    assert default_bucket_boundaries(4) == [5]


def test_every_batch_is_padded_within_its_bucket(records, vocabulary):
    boundaries = [6, 11, 16, 21]
    dataset = make_caption_dataset(records, vocabulary, batch_size=8, max_length=20,
                                   bucket_boundaries=boundaries, seed=0)
    for inputs, targets in dataset:
        targets = targets.numpy()
        lengths = (targets != 0).sum(axis=1)
        padded_length = targets.shape[1]
        upper = padded_length + 1
        assert upper in boundaries
        lower = ([0] + boundaries)[boundaries.index(upper)]
        assert lengths.min() >= lower and lengths.max() < upper
        assert inputs["token_ids"].shape == targets.shape
        assert inputs["images"].shape[1:] == (64, 64, 3)
        assert inputs["images"].dtype == "uint8"
        # token_ids is <start> + targets shifted right, padding included.
        np.testing.assert_array_equal(inputs["token_ids"][:, 0], 1)
        shifted = np.where(targets[:, :-1] == 2, 0, targets[:, :-1])
        np.testing.assert_array_equal(inputs["token_ids"].numpy()[:, 1:], shifted)


def test_every_caption_appears_once_per_epoch(records, vocabulary):
    dataset = make_caption_dataset(records, vocabulary, batch_size=7, max_length=20, seed=0)
    expected = collections.Counter(
        " ".join(normalize_caption(c)) for r in records for c in r.captions)
    for _ in range(2):  # two epochs, reshuffled
        seen = collections.Counter()
        for _, targets in dataset:
            for row in targets.numpy():
                seen[vocabulary.decode(row)] += 1
        assert seen == expected


def test_drop_remainder_keeps_full_batches_only(records, vocabulary):
    dataset = make_caption_dataset(records, vocabulary, batch_size=7, max_length=20,
                                   seed=0, drop_remainder=True)
    sizes = {targets.shape[0] for _, targets in dataset}
    assert sizes == {7}


@pytest.mark.parametrize("drop_remainder", [False, True])
@pytest.mark.parametrize("max_length", [20, 8])
def test_count_batches_is_exact(records, vocabulary, drop_remainder, max_length):
    dataset = make_caption_dataset(records, vocabulary, batch_size=7, max_length=max_length,
                                   seed=0, drop_remainder=drop_remainder)
    assert count_batches(records, 7, max_length, drop_remainder=drop_remainder) == \
        sum(1 for _ in dataset)


def test_a_boundary_too_small_for_max_length_is_rejected(records, vocabulary):
    with pytest.raises(ValueError, match="last bucket boundary"):
        make_caption_dataset(records, vocabulary, max_length=20, bucket_boundaries=[5, 10])


def test_records_without_captions_are_rejected(vocabulary):
    with pytest.raises(ValueError, match="hold no captions"):
        make_caption_dataset([CaptionRecord("x.png", (), "train")], vocabulary)


def test_load_image_files_reports_bad_files_and_keeps_the_rest(records, tmp_path):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    paths = [records[0].image_path, str(corrupt), str(tmp_path / "missing.jpg"),
             records[1].image_path]
    images, loaded, errors = load_image_files(paths, image_size=32)
    assert images.shape == (2, 32, 32, 3) and images.dtype == np.uint8
    assert loaded == [records[0].image_path, records[1].image_path]
    assert [path for path, _ in errors] == [str(corrupt), str(tmp_path / "missing.jpg")]
    assert "not a decodable image" in errors[0][1]
    assert errors[1][1] == "file not found"
