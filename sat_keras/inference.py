"""Captioning image files, one bad file never stopping the others."""

import dataclasses
import os

from sat_keras.data.images import load_image_files


@dataclasses.dataclass(frozen=True)
class FileCaption:
    """The outcome for one file: a caption, or the error that stopped it.

    `image` (uint8, as the encoder saw it) and `attention_weights`
    (max_length, L) come with a caption, for `visualization.plot_attention`.
    """

    path: str
    caption: str = None
    error: str = None
    image: object = dataclasses.field(default=None, repr=False)
    attention_weights: object = dataclasses.field(default=None, repr=False)


def caption_image_files(model, paths, search=None, batch_size=64):
    """Captions image files, in the order given, one caption each.

    The decoding is `model.settings_for(search)`: the model's own (None), a
    `decoding.SearchSettings`, or a dict of fields merged into its own; one
    caption each (the best, whatever `num_captions` says).

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
    search = model.settings_for(search, one_caption=True)
    images, loaded_paths, errors = load_image_files(list(paths), model.image_size)
    outcomes = {path: FileCaption(path, error=message) for path, message in errors}
    if loaded_paths:
        result = model.caption(images=images, search=search, batch_size=batch_size)
        outcomes.update({
            path: FileCaption(path, caption=caption, image=image, attention_weights=attention)
            for path, caption, image, attention in zip(
                loaded_paths, result["captions"], images, result["attention_weights"])})
    return [outcomes[path] for path in paths]


def plot_file_captions(outcomes, output_path):
    """Attention pictures for the captioned files; returns the paths written.

    One file is written to `output_path`; several to `NAME-<k>.png`, k the
    file's 1-based position in the list given.
    """
    from sat_keras.visualization import plot_attention  # matplotlib: imported when needed

    captioned = [(index, o) for index, o in enumerate(outcomes, 1) if o.error is None]
    stem, extension = os.path.splitext(output_path)
    written = []
    for index, outcome in captioned:
        path = output_path if len(outcomes) == 1 else f"{stem}-{index}{extension or '.png'}"
        written.append(plot_attention(outcome.image, outcome.caption.split(),
                                      outcome.attention_weights, path))
    return written
