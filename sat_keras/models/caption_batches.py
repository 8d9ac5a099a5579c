"""A captioner's inputs (which one, its shapes) and its compiled search run in batches."""

import numpy as np


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
