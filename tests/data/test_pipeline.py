import collections

import numpy as np
import pytest

from sat_keras.data.images import load_image_files
from sat_keras.data.pipeline import count_batches
from sat_keras.data.pipeline import count_image_group_batches
from sat_keras.data.pipeline import default_bucket_boundaries
from sat_keras.data.pipeline import make_caption_dataset
from sat_keras.data.pipeline import make_image_group_dataset
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


def _uneven_records(records):
    """The synthetic records with 1, 2, 3, ... captions (at most 3), one without any."""
    uneven = [CaptionRecord(r.image_path, r.captions[: 1 + i % 3], r.split)
              for i, r in enumerate(records)]
    return uneven + [CaptionRecord(records[0].image_path + ".none", (), "train")]


def test_image_groups_hold_every_caption_of_their_images_once_per_epoch(records, vocabulary):
    uneven = _uneven_records(records)
    dataset = make_image_group_dataset(uneven, vocabulary, batch_size=7, max_length=20, seed=0)
    per_image = 3
    expected = {r.image_path: [" ".join(normalize_caption(r.captions[i % len(r.captions)]))
                               for i in range(per_image)] for r in uneven if r.captions}
    batches = list(dataset)
    assert len(batches) == count_image_group_batches(uneven, 7) == -(-24 // 2)
    seen = []
    for inputs, targets in batches:
        images = inputs["images"].numpy()
        assert len(images) <= 7 // per_image
        np.testing.assert_array_equal(inputs["caption_image"],
                                      np.repeat(np.arange(len(images)), per_image))
        assert inputs["token_ids"].shape == targets.shape == (len(images) * per_image,
                                                              targets.shape[1])
        np.testing.assert_array_equal(inputs["token_ids"][:, 0], 1)
        for index in range(len(images)):
            rows = [vocabulary.decode(row)
                    for row in targets.numpy()[index * per_image:(index + 1) * per_image]]
            matches = [path for path, captions in expected.items() if captions == rows]
            assert matches, rows  # the image's own captions, repeated in order to fill 3
            seen.append(matches[0])
    assert sorted(seen) == sorted(expected)  # every image once (the one without captions: none)


def test_image_groups_drop_partial_batches_and_repeat_epochs_by_seed(records, vocabulary):
    def first_epochs(seed):
        dataset = make_image_group_dataset(records, vocabulary, batch_size=16, max_length=20,
                                           seed=seed, drop_remainder=True, from_epoch=0)
        steps = count_image_group_batches(records, 16, drop_remainder=True)
        return [targets.numpy() for _, targets in dataset.take(2 * steps)], steps

    batches, steps = first_epochs(3)
    per_image = max(len(r.captions) for r in records)
    assert steps == len(records) // (16 // per_image)
    assert all(len(targets) == (16 // per_image) * per_image for targets in batches)
    again, _ = first_epochs(3)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))
    assert not all(np.array_equal(a, b) for a, b in zip(batches[:steps], batches[steps:]))
