"""Fetching Flickr8k from its archives, here from file:// URLs of tiny ones."""

import io
import zipfile

import pytest

from sat_keras import cli
from sat_keras.data import download
from sat_keras.data.flickr8k import read_flickr8k

NAMES = {"train": ["1000_a.jpg", "1001_b.jpg"], "val": ["1002_c.jpg"], "test": ["1003_d.jpg"]}
LISTS = {"train": "Flickr_8k.trainImages.txt", "val": "Flickr_8k.devImages.txt",
         "test": "Flickr_8k.testImages.txt"}


def _jpeg(seed):
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), (seed * 40 % 256, 90, 160)).save(buffer, "JPEG")
    return buffer.getvalue()


def _zip(path, members):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path.as_uri()


@pytest.fixture
def archives(tmp_path):
    """file:// URLs of a text and an image archive laid out as the real ones."""
    names = [name for split in NAMES.values() for name in split]
    tokens = "".join(f"{name}#{i}\tA picture number {i} of {name[:4]} .\n"
                     for name in names for i in range(5))
    text = {"Flickr8k.token.txt": tokens, "CrowdFlowerAnnotations.txt": "ignored",
            **{LISTS[split]: "\n".join(split_names) + "\n"
               for split, split_names in NAMES.items()}}
    images = {f"Flicker8k_Dataset/{name}": _jpeg(i) for i, name in enumerate(names)}
    images["__MACOSX/Flicker8k_Dataset/._1000_a.jpg"] = b"resource fork"
    (tmp_path / "server").mkdir()
    return (_zip(tmp_path / "server" / "Flickr8k_Dataset.zip", images),
            _zip(tmp_path / "server" / "Flickr8k_text.zip", text))


def test_download_lays_flickr8k_out_as_the_reader_expects(archives, tmp_path):
    images_url, text_url = archives
    data_dir = download.download_flickr8k(str(tmp_path / "flickr8k"), images_url=images_url,
                                          text_url=text_url, print_fn=lambda *a: None)
    records = read_flickr8k(data_dir)
    assert sorted(r.split for r in records) == ["test", "train", "train", "val"]
    assert all(len(r.captions) == 5 for r in records)
    assert not (tmp_path / "flickr8k" / "__MACOSX").exists()
    assert not (tmp_path / "flickr8k" / "CrowdFlowerAnnotations.txt").exists()
    # Once complete, the folder is used as it is: nothing is fetched again.
    assert download.download_flickr8k(data_dir, images_url="file:///nowhere.zip",
                                      text_url="file:///nowhere.zip") == data_dir


def test_archives_without_the_dataset_or_not_zips_are_errors(archives, tmp_path):
    images_url, _ = archives
    no_text = _zip(tmp_path / "server" / "empty.zip", {"readme.txt": "nothing"})
    with pytest.raises(ValueError, match="missing .*Flickr8k.token.txt"):
        download.download_flickr8k(str(tmp_path / "a"), images_url=images_url,
                                   text_url=no_text, print_fn=lambda *a: None)
    broken = tmp_path / "server" / "broken.zip"
    broken.write_bytes(b"not a zip at all")
    with pytest.raises(ValueError, match="not a zip archive"):
        download.download_flickr8k(str(tmp_path / "b"), images_url=images_url,
                                   text_url=broken.as_uri(), print_fn=lambda *a: None)


def test_the_cli_downloads_before_reading(archives, tmp_path, monkeypatch, capsys):
    images_url, text_url = archives
    monkeypatch.setattr(download, "FLICKR8K_IMAGES_URL", images_url)
    monkeypatch.setattr(download, "FLICKR8K_TEXT_URL", text_url)
    # float32: random MobileNetV3 features are all 0.0 in float16 (see test_cli.py).
    assert cli.main(["extract-features", "--dataset", "flickr8k", "--download",
                     "--data-dir", str(tmp_path / "flickr8k"), "--encoder",
                     "mobilenet_v3_small", "--encoder-weights", "none", "--dtype", "float32",
                     "--output", str(tmp_path / "features")]) == 0
    assert "Fetching " + text_url in capsys.readouterr().out
    assert cli.main(["train", "--dataset", "synthetic", "--download", "--data-dir",
                     str(tmp_path / "s"), "--output-dir", str(tmp_path / "m")]) == 2
    assert "--download fetches Flickr8k only" in capsys.readouterr().err
