"""Flickr8k in its official layout: token file, split lists, image folder."""

import collections
import os

from sat_keras.data.records import CaptionRecord
from sat_keras.data.records import check_images_exist

SPLIT_FILES = {"train": "Flickr_8k.trainImages.txt", "val": "Flickr_8k.devImages.txt",
               "test": "Flickr_8k.testImages.txt"}


def read_token_file(path):
    """{image name: [captions]} from `<image>#<n>\\t<caption>` lines.

    A malformed line (no tab, no `#n`, an empty caption) raises a
    `ValueError` naming the file and the line.
    """
    captions = collections.defaultdict(list)
    with open(path, encoding="utf-8") as file:
        for line_number, line in enumerate(file, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            key, tab, caption = line.partition("\t")
            name, hash_sign, index = key.partition("#")
            if not tab or not hash_sign or not index.isdigit() or not name:
                raise ValueError(
                    f"{path}:{line_number}: expected '<image>#<n><TAB><caption>'. "
                    f"Received: {line[:80]!r}")
            if not caption.strip():
                raise ValueError(f"{path}:{line_number}: empty caption for {key}")
            captions[name].append(caption.strip())
    if not captions:
        raise ValueError(f"{path}: no captions found.")
    return captions


def _read_split_list(path):
    with open(path, encoding="utf-8") as file:
        return [line.strip() for line in file if line.strip()]


def read_flickr8k(data_dir, image_dir="Flicker8k_Dataset", token_file="Flickr8k.token.txt",
                  missing="error", report=print):
    """`CaptionRecord`s for every split whose list file is in `data_dir`.

    Flickr8k's dev list becomes the "val" split. Images named in a split list
    but absent from the token file raise an error; image files missing on
    disk follow `missing` ("error" or "skip", see `check_images_exist`).
    """
    captions = read_token_file(os.path.join(data_dir, token_file))
    records = []
    for split, file_name in SPLIT_FILES.items():
        split_path = os.path.join(data_dir, file_name)
        if not os.path.exists(split_path):
            continue
        names = _read_split_list(split_path)
        uncaptioned = [name for name in names if name not in captions]
        if uncaptioned:
            raise ValueError(
                f"{split_path}: {len(uncaptioned)} images have no captions in {token_file}, "
                f"e.g. {uncaptioned[:3]}")
        records.extend(CaptionRecord(os.path.join(data_dir, image_dir, name),
                                     captions[name], split) for name in names)
    if not records:
        raise FileNotFoundError(
            f"{data_dir}: none of the split lists {sorted(SPLIT_FILES.values())} found.")
    return check_images_exist(records, missing, source=data_dir, report=report)
