"""Captioning image files, one bad file never stopping the others."""

import dataclasses

from sat_keras.data.pipeline import load_image_files


@dataclasses.dataclass(frozen=True)
class FileCaption:
    """The outcome for one file: a caption, or the error that stopped it."""

    path: str
    caption: str = None
    error: str = None


def caption_image_files(model, paths, max_length=20, batch_size=64):
    """Greedy captions for image files, in the order given.

    Missing, unreadable and non-image files get `error` set; the others are
    captioned all the same.

    Returns:
        A list of `FileCaption`, one per path.
    """
    if model.image_size is None:
        raise ValueError(
            "The model has no image_size, so image files cannot be resized for "
            "it. Create it with ShowAttendTell(..., image_size=...)."
        )
    images, loaded_paths, errors = load_image_files(list(paths), model.image_size)
    outcomes = {path: FileCaption(path, error=message) for path, message in errors}
    if loaded_paths:
        captions = model.caption(images=images, max_length=max_length,
                                 batch_size=batch_size)["captions"]
        outcomes.update({path: FileCaption(path, caption=caption)
                         for path, caption in zip(loaded_paths, captions)})
    return [outcomes[path] for path in paths]
