"""`CaptionRecord`: what every dataset reader returns."""

import dataclasses

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
