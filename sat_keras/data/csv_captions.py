"""A plain CSV of a user's own data: `image,caption` (and optionally `split`)."""

import collections
import csv
import os

from sat_keras.data.records import SPLITS
from sat_keras.data.records import CaptionRecord
from sat_keras.data.records import check_images_exist


def read_csv_captions(csv_path, image_dir=None, missing="error", report=print):
    """`CaptionRecord`s from a CSV with a header naming `image` and `caption`.

    One row per caption; rows of the same image are grouped in file order.
    A `split` column (train / val / test) is used when present, else every
    image is "train". Image paths are relative to `image_dir` (by default the
    CSV's folder). A malformed row raises a `ValueError` naming the line.
    """
    image_dir = os.path.dirname(os.path.abspath(csv_path)) if image_dir is None else image_dir
    captions = collections.OrderedDict()
    splits = {}
    with open(csv_path, encoding="utf-8", newline="") as file:
        reader = csv.DictReader(file)
        if not reader.fieldnames or not {"image", "caption"} <= set(reader.fieldnames):
            raise ValueError(
                f"{csv_path}:1: the header must name 'image' and 'caption'. "
                f"Received: {reader.fieldnames}")
        for row in reader:
            line = reader.line_num
            image, caption = (row.get("image") or "").strip(), (row.get("caption") or "").strip()
            if not image or not caption:
                raise ValueError(f"{csv_path}:{line}: empty image or caption: {row}")
            split = (row.get("split") or "train").strip()
            if split not in SPLITS:
                raise ValueError(f"{csv_path}:{line}: split must be one of {SPLITS}. "
                                 f"Received: {split!r}")
            if splits.setdefault(image, split) != split:
                raise ValueError(f"{csv_path}:{line}: {image} is in two splits.")
            captions.setdefault(image, []).append(caption)
    if not captions:
        raise ValueError(f"{csv_path}: no captions found.")
    records = [CaptionRecord(os.path.join(image_dir, image), image_captions, splits[image])
               for image, image_captions in captions.items()]
    return check_images_exist(records, missing, source=csv_path, report=report)
