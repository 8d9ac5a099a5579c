"""A captioner's inputs (which one, its shapes) and its compiled search run in batches."""

import os

import numpy as np

from sat_keras.data.images import load_image_files


def encoder_input_shapes(inputs):
    """{"images" or "features": (None, ...)} of a dict of arrays or a dataset of dicts."""
    if hasattr(inputs, "element_spec"):  # a tf.data.Dataset
        inputs = inputs.element_spec
        inputs = inputs[0] if isinstance(inputs, tuple) else inputs
    if not isinstance(inputs, dict) or not {"images", "features"} & set(inputs):
        raise ValueError('Expected a dict with "images" or "features" (or a dataset of '
                         f"them). Received: {type(inputs).__name__}")
    return {name: (None,) + tuple(value.shape[1:]) for name, value in inputs.items()
            if name in ("images", "features")}


def one_input(images, features):
    """("images", images) or ("features", features): whichever of the two is given."""
    if (images is None) == (features is None):
        raise ValueError("Pass exactly one of images= or features=.")
    return ("images", images) if features is None else ("features", features)


def generate_inputs(inputs, image_size):
    """("images" or "features", values) of `Captioner.generate`'s inputs.

    `inputs`: a list of image files (paths) and encoded images (bytes),
    decoded and resized to `image_size` as in training and the export
    (`data.images.decode_and_resize`); a uint8 batch (N, H, W, 3); or a
    dict holding "images" or "features". Files that fail raise ValueError
    naming each.
    """
    if isinstance(inputs, dict):
        unknown = sorted(set(inputs) - {"images", "features"})
        if unknown:
            raise ValueError(f'generate takes a dict of "images" or "features". '
                             f"Received keys: {sorted(inputs)}")
        return one_input(inputs.get("images"), inputs.get("features"))
    if isinstance(inputs, (list, tuple)) and all(
            isinstance(item, (str, bytes, os.PathLike)) for item in inputs):
        if image_size is None:
            raise ValueError("The captioner has no image_size, so image files cannot be "
                             "resized for it: pass a uint8 batch of images.")
        images, _, errors = load_image_files(list(inputs), image_size)
        if errors:
            raise ValueError("Not captioned: " + "; ".join(_failures(inputs, errors)))
        return "images", images
    images = np.asarray(inputs)
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError("generate takes image files or bytes (a list), uint8 images "
                         "(N, H, W, 3), or a dict of \"images\" or \"features\". Received: "
                         f"an array of shape {images.shape} and dtype {images.dtype}")
    return "images", images


def _failures(inputs, errors):
    """ "PATH: message" (or "inputs[i]: message" for bytes) per input that failed;
    `errors` are (input, message) in the order of `inputs`."""
    pending = list(errors)
    for position, item in enumerate(inputs):
        if pending and pending[0][0] is item:
            name = f"inputs[{position}]" if isinstance(item, bytes) else os.fspath(item)
            yield f"{name}: {pending.pop(0)[1]}"


def caption_in_batches(search, name, values, batch_size, vocabulary, num_captions=None):
    """`caption`'s outputs: a compiled search run over `values` in batches.

    `search` maps {name: batch} to the dict of `decoding.search`; its
    arrays are joined over the batches and "captions" decodes the token ids
    (a list of n-lists with `num_captions` n).
    """
    batches = [search({name: values[start:start + batch_size]})
               for start in range(0, len(values), batch_size)]
    outputs = {key: np.concatenate([np.asarray(batch[key]) for batch in batches])
               for key in batches[0]} if batches else {}
    decode = vocabulary.decode
    outputs["captions"] = [
        decode(ids) if num_captions is None else [decode(row) for row in ids]
        for ids in outputs.get("token_ids", [])]
    return outputs
