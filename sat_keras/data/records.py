"""`CaptionRecord`: what every dataset reader returns."""

import dataclasses
import os

SPLITS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class CaptionRecord:
    """One image and its reference captions.

    Args:
        image_path: path of the image file.
        captions: tuple of reference caption strings (raw, not normalised).
        split: one of "train", "val", "test".
    """

    image_path: str
    captions: tuple
    split: str

    def __post_init__(self):
        if self.split not in SPLITS:
            raise ValueError(
                f"split must be one of {SPLITS}. Received: split={self.split!r} "
                f"for {self.image_path}"
            )
        if isinstance(self.captions, str):
            raise TypeError(
                f"captions must be a sequence of strings, not one string. "
                f"Received: {self.captions!r} for {self.image_path}"
            )
        object.__setattr__(self, "captions", tuple(self.captions))


def select_split(records, split):
    """The records of one split, in order; an error if there are none."""
    selected = [record for record in records if record.split == split]
    if not selected:
        found = sorted({record.split for record in records})
        raise ValueError(
            f"No records in split {split!r}. Splits present: {found}"
        )
    return selected


MISSING_POLICIES = ("error", "skip")


def check_images_exist(records, missing="error", source="dataset", report=print):
    """Records whose image file exists; the others are reported, never dropped silently.

    Args:
        records: `CaptionRecord`s.
        missing: "error" raises `FileNotFoundError` naming how many files are
            missing and the first few; "skip" reports them through `report`
            and returns the rest.
        source: what to name in the message (a file or dataset name).
        report: where the "skip" message goes.
    """
    if missing not in MISSING_POLICIES:
        raise ValueError(f"missing must be one of {MISSING_POLICIES}. Received: {missing!r}")
    present, absent = [], []
    for record in records:
        if os.path.exists(record.image_path):
            present.append(record)
        else:
            absent.append(record.image_path)
    if absent:
        message = (f"{source}: {len(absent)} of {len(records)} listed images are missing "
                   f"on disk, e.g. {absent[:3]}")
        if missing == "error":
            raise FileNotFoundError(message + ". Pass missing='skip' to leave them out.")
        report(message + "; left out.")
    return present
