"""Karpathy's split JSON (dataset_flickr8k/flickr30k/coco.json)."""

import json
import os

from sat_keras.data.records import CaptionRecord
from sat_keras.data.records import check_images_exist

SPLITS = {"train": "train", "restval": "train", "val": "val", "test": "test"}


def read_karpathy_splits(json_path):
    """{file name: split} from a Karpathy JSON (restval folded into train)."""
    return {entry["filename"]: SPLITS[entry["split"]]
            for entry in _load_images(json_path)}


def _load_images(json_path):
    try:
        with open(json_path, encoding="utf-8") as file:
            data = json.load(file)
    except json.JSONDecodeError as error:
        raise ValueError(f"{json_path}: not valid JSON ({error})") from error
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise ValueError(f'{json_path}: expected an object with an "images" list.')
    for index, entry in enumerate(data["images"]):
        problem = None
        if not isinstance(entry, dict) or "filename" not in entry:
            problem = 'no "filename"'
        elif entry.get("split") not in SPLITS:
            problem = f'split {entry.get("split")!r} is not one of {sorted(SPLITS)}'
        elif not isinstance(entry.get("sentences"), list) or not entry["sentences"]:
            problem = 'no "sentences"'
        elif any(not isinstance(s, dict) or not str(s.get("raw", "")).strip()
                 for s in entry["sentences"]):
            problem = 'a sentence without "raw" text'
        if problem:
            raise ValueError(f"{json_path}: images[{index}]: {problem}")
    return data["images"]


def read_karpathy(json_path, image_root, missing="error", report=print):
    """`CaptionRecord`s from a Karpathy JSON; images at image_root/filepath/filename."""
    records = [
        CaptionRecord(os.path.join(image_root, entry.get("filepath", ""), entry["filename"]),
                      [s["raw"].strip() for s in entry["sentences"]], SPLITS[entry["split"]])
        for entry in _load_images(json_path)]
    return check_images_exist(records, missing, source=json_path, report=report)
