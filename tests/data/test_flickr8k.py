import pathlib

import pytest
from helpers import FLICKR8K_DIR as SHARED

from sat_keras.data.flickr8k import read_flickr8k
from sat_keras.data.flickr8k import read_token_file


def _write_layout(root, token_lines, train=("a.jpg",), dev=("b.jpg",), images=("a.jpg", "b.jpg")):
    (root / "Flickr8k.token.txt").write_text("\n".join(token_lines) + "\n")
    (root / "Flickr_8k.trainImages.txt").write_text("\n".join(train) + "\n")
    (root / "Flickr_8k.devImages.txt").write_text("\n".join(dev) + "\n")
    (root / "Flicker8k_Dataset").mkdir()
    for name in images:
        (root / "Flicker8k_Dataset" / name).write_bytes(b"")
    return str(root)


TOKENS = ["a.jpg#0\tA dog runs .", "a.jpg#1\tA dog .", "b.jpg#0\tA cat sits ."]


def test_reads_captions_and_splits(tmp_path):
    records = read_flickr8k(_write_layout(tmp_path, TOKENS))
    assert [(pathlib.Path(r.image_path).name, r.split, len(r.captions)) for r in records] == [
        ("a.jpg", "train", 2), ("b.jpg", "val", 1)]
    assert records[0].captions == ("A dog runs .", "A dog .")


@pytest.mark.parametrize("bad_line, message", [
    ("a.jpg#2 no tab here", "expected '<image>#<n><TAB><caption>'"),
    ("a.jpg\tno index", "expected '<image>#<n><TAB><caption>'"),
    ("a.jpg#2\t   ", "empty caption"),
])
def test_malformed_lines_name_the_file_and_line(tmp_path, bad_line, message):
    path = tmp_path / "tokens.txt"
    path.write_text("a.jpg#0\tfine\n" + bad_line + "\n")
    with pytest.raises(ValueError, match=f"tokens.txt:2: {message}"):
        read_token_file(str(path))


def test_missing_images_are_an_error_or_reported_and_skipped(tmp_path):
    data_dir = _write_layout(tmp_path, TOKENS, images=("a.jpg",))
    with pytest.raises(FileNotFoundError, match="1 of 2 listed images are missing"):
        read_flickr8k(data_dir)
    messages = []
    records = read_flickr8k(data_dir, missing="skip", report=messages.append)
    assert [pathlib.Path(r.image_path).name for r in records] == ["a.jpg"]
    assert "b.jpg" in messages[0] and "left out" in messages[0]


def test_split_image_without_captions_is_an_error(tmp_path):
    data_dir = _write_layout(tmp_path, TOKENS, train=("a.jpg", "z.jpg"))
    with pytest.raises(ValueError, match="1 images have no captions"):
        read_flickr8k(data_dir)


@pytest.mark.needs_shared(SHARED)
def test_the_real_flickr8k_train_and_dev_splits():
    records = read_flickr8k(str(SHARED))
    splits = [r.split for r in records]
    assert (splits.count("train"), splits.count("val"), splits.count("test")) == (6000, 1000, 0)
    assert all(len(r.captions) == 5 for r in records)
