"""MS-COCO caption JSON (captions_train2014.json, captions_val2017.json, ...)."""

import collections
import json
import os

from sat_keras.data.karpathy import read_karpathy_splits
from sat_keras.data.records import CaptionRecord
from sat_keras.data.records import check_images_exist


def read_coco(captions_json, image_dir, split="train", karpathy_json=None, missing="error",
              report=print):
    """`CaptionRecord`s of one COCO caption file.

    Args:
        captions_json: a COCO captions file ("images" and "annotations").
        image_dir: the folder holding its images (e.g. train2014/).
        split: the split given to every image, unless `karpathy_json` is set.
        karpathy_json: Karpathy's dataset_coco.json: splits by file name
            (images it does not list are left out and reported).
        missing: "error" or "skip" for image files missing on disk.
    """
    try:
        with open(captions_json, encoding="utf-8") as file:
            data = json.load(file)
    except json.JSONDecodeError as error:
        raise ValueError(f"{captions_json}: not valid JSON ({error})") from error
    if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
        raise ValueError(f'{captions_json}: expected "images" and "annotations".')
    file_names = {}
    for index, image in enumerate(data["images"]):
        if not isinstance(image, dict) or "id" not in image or "file_name" not in image:
            raise ValueError(f'{captions_json}: images[{index}] needs "id" and "file_name".')
        file_names[image["id"]] = image["file_name"]
    captions = collections.defaultdict(list)
    for index, annotation in enumerate(data["annotations"]):
        if not isinstance(annotation, dict) or annotation.get("image_id") not in file_names:
            raise ValueError(
                f"{captions_json}: annotations[{index}] has no image_id of a listed image.")
        if not str(annotation.get("caption", "")).strip():
            raise ValueError(f"{captions_json}: annotations[{index}] has an empty caption.")
        captions[annotation["image_id"]].append(annotation["caption"].strip())
    splits = read_karpathy_splits(karpathy_json) if karpathy_json else None
    records, unlisted = [], []
    for image_id, file_name in file_names.items():
        if image_id not in captions:
            continue
        image_split = split if splits is None else splits.get(file_name)
        if image_split is None:
            unlisted.append(file_name)
            continue
        records.append(CaptionRecord(os.path.join(image_dir, file_name), captions[image_id],
                                     image_split))
    if unlisted:
        report(f"{captions_json}: {len(unlisted)} images are not in {karpathy_json}, "
               f"e.g. {unlisted[:3]}; left out.")
    return check_images_exist(records, missing, source=captions_json, report=report)
