import json
import pathlib

import pytest

from sat_keras.data.coco import read_coco
from sat_keras.data.csv_captions import read_csv_captions
from sat_keras.data.karpathy import read_karpathy


def _touch(folder, *names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")


def _karpathy(tmp_path, images):
    path = tmp_path / "dataset_coco.json"
    path.write_text(json.dumps({"images": images, "dataset": "coco"}))
    return str(path)


KARPATHY_IMAGES = [
    {"filepath": "train2014", "filename": "a.jpg", "split": "train",
     "sentences": [{"raw": "A dog."}, {"raw": "A brown dog."}]},
    {"filepath": "val2014", "filename": "b.jpg", "split": "restval",
     "sentences": [{"raw": "A cat."}]},
    {"filepath": "val2014", "filename": "c.jpg", "split": "test",
     "sentences": [{"raw": "A bird."}]},
]


def test_karpathy_folds_restval_into_train(tmp_path):
    _touch(tmp_path / "train2014", "a.jpg")
    _touch(tmp_path / "val2014", "b.jpg", "c.jpg")
    records = read_karpathy(_karpathy(tmp_path, KARPATHY_IMAGES), str(tmp_path))
    assert [(pathlib.Path(r.image_path).name, r.split) for r in records] == [
        ("a.jpg", "train"), ("b.jpg", "train"), ("c.jpg", "test")]
    assert records[0].image_path == str(tmp_path / "train2014" / "a.jpg")


@pytest.mark.parametrize("broken, message", [
    ({"filename": "x.jpg", "split": "dev", "sentences": [{"raw": "x"}]}, "split 'dev'"),
    ({"filename": "x.jpg", "split": "val", "sentences": []}, 'no "sentences"'),
    ({"split": "val", "sentences": [{"raw": "x"}]}, 'no "filename"'),
    ({"filename": "x.jpg", "split": "val", "sentences": [{"raw": " "}]}, "without"),
])
def test_karpathy_malformed_entries_name_the_entry(tmp_path, broken, message):
    path = _karpathy(tmp_path, KARPATHY_IMAGES[:1] + [broken])
    with pytest.raises(ValueError, match=r"images\[1\]: .*" + message.replace("'", ".")):
        read_karpathy(path, str(tmp_path))


def _coco_file(tmp_path, annotations=None):
    path = tmp_path / "captions_val2014.json"
    path.write_text(json.dumps({
        "images": [{"id": 1, "file_name": "b.jpg"}, {"id": 2, "file_name": "c.jpg"},
                   {"id": 3, "file_name": "d.jpg"}],
        "annotations": annotations or [
            {"image_id": 1, "caption": "A cat."}, {"image_id": 2, "caption": "A bird."},
            {"image_id": 2, "caption": "A small bird."}, {"image_id": 3, "caption": "A cow."}],
    }))
    return str(path)


def test_coco_groups_captions_by_image_with_one_split(tmp_path):
    _touch(tmp_path / "val2014", "b.jpg", "c.jpg", "d.jpg")
    records = read_coco(_coco_file(tmp_path), str(tmp_path / "val2014"), split="val")
    assert [(pathlib.Path(r.image_path).name, r.split, len(r.captions)) for r in records] == [
        ("b.jpg", "val", 1), ("c.jpg", "val", 2), ("d.jpg", "val", 1)]


def test_coco_with_karpathy_splits_reports_unlisted_images(tmp_path):
    _touch(tmp_path / "val2014", "b.jpg", "c.jpg", "d.jpg")
    messages = []
    records = read_coco(_coco_file(tmp_path), str(tmp_path / "val2014"),
                        karpathy_json=_karpathy(tmp_path, KARPATHY_IMAGES),
                        report=messages.append)
    assert [(pathlib.Path(r.image_path).name, r.split) for r in records] == [
        ("b.jpg", "train"), ("c.jpg", "test")]
    assert "1 images are not in" in messages[0] and "d.jpg" in messages[0]


def test_coco_annotation_of_an_unknown_image_is_an_error(tmp_path):
    path = _coco_file(tmp_path, annotations=[{"image_id": 9, "caption": "x"}])
    with pytest.raises(ValueError, match=r"annotations\[0\]"):
        read_coco(path, str(tmp_path))


def test_csv_with_and_without_split_column(tmp_path):
    _touch(tmp_path, "a.png", "b.png")
    path = tmp_path / "captions.csv"
    path.write_text('image,caption,split\na.png,"A dog, running.",train\n'
                    "a.png,A dog.,train\nb.png,A cat.,test\n")
    records = read_csv_captions(str(path))
    assert [(pathlib.Path(r.image_path).name, r.split, r.captions) for r in records] == [
        ("a.png", "train", ("A dog, running.", "A dog.")), ("b.png", "test", ("A cat.",))]
    path.write_text("image,caption\na.png,A dog.\n")
    assert read_csv_captions(str(path))[0].split == "train"


@pytest.mark.parametrize("content, message", [
    ("picture,text\na.png,x\n", ":1: the header must name"),
    ("image,caption\na.png,\n", ":2: empty image or caption"),
    ("image,caption,split\na.png,x,dev\n", ":2: split must be one of"),
    ("image,caption,split\na.png,x,train\na.png,y,test\n", ":3: a.png is in two splits"),
])
def test_csv_malformed_rows_name_the_line(tmp_path, content, message):
    _touch(tmp_path, "a.png")
    path = tmp_path / "captions.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        read_csv_captions(str(path))


def test_read_dataset_dispatches_and_asks_for_the_captions_file(tmp_path):
    from sat_keras.data.datasets import read_dataset

    _touch(tmp_path, "a.png")
    path = tmp_path / "captions.csv"
    path.write_text("image,caption\na.png,A dog.\n")
    assert len(read_dataset("csv", str(tmp_path), captions_file=str(path))) == 1
    with pytest.raises(ValueError, match="needs its captions file"):
        read_dataset("karpathy", str(tmp_path))
    with pytest.raises(ValueError, match="Unknown dataset"):
        read_dataset("flickr99", str(tmp_path))
