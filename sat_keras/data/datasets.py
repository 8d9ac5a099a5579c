"""Dataset readers by name, for the command line and recipes.

Each takes the image folder (`data_dir`) and, where the format has one, the
caption file; all return `CaptionRecord`s.
"""

from sat_keras.data.coco import read_coco
from sat_keras.data.csv_captions import read_csv_captions
from sat_keras.data.flickr8k import read_flickr8k
from sat_keras.data.karpathy import read_karpathy
from sat_keras.data.synthetic import read_synthetic

NEEDS_CAPTIONS_FILE = ("karpathy", "coco", "csv")


def dataset_names():
    return ["coco", "csv", "flickr8k", "karpathy", "synthetic"]


def read_dataset(name, data_dir, captions_file=None, missing="error", split_file=None,
                 report=print):
    """The `CaptionRecord`s of a dataset.

    Args:
        name: one of `dataset_names()`.
        data_dir: synthetic / flickr8k: the dataset folder; karpathy: the image
            root (images at data_dir/filepath/filename); coco: the image folder;
            csv: the folder image paths are relative to.
        captions_file: karpathy: dataset_*.json; coco: captions_*.json; csv:
            the CSV file.
        missing: "error" or "skip" for listed images missing on disk.
        split_file: coco only: Karpathy's dataset_coco.json for the splits
            (without it every image is "train").
    """
    if name not in dataset_names():
        raise ValueError(f"Unknown dataset {name!r}. Available: {dataset_names()}")
    if name in NEEDS_CAPTIONS_FILE and not captions_file:
        raise ValueError(f"The {name} dataset needs its captions file (captions_file=...).")
    if name == "synthetic":
        return read_synthetic(data_dir)
    if name == "flickr8k":
        return read_flickr8k(data_dir, missing=missing, report=report)
    if name == "karpathy":
        return read_karpathy(captions_file, data_dir, missing=missing, report=report)
    if name == "coco":
        return read_coco(captions_file, data_dir, karpathy_json=split_file, missing=missing,
                         report=report)
    return read_csv_captions(captions_file, data_dir, missing=missing, report=report)
