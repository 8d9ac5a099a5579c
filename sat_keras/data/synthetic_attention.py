"""How much attention lands on the object a generated word names (synthetic data)."""

import numpy as np

from sat_keras.data.synthetic import SHAPES
from sat_keras.data.synthetic import object_cells

ROLES = ("size", "colour", "shape")


def _named_object(words, position, objects):
    """The one object that "size colour shape" ending at `position` describes."""
    if position < 2:
        return None
    size, colour, shape = words[position - 2: position + 1]
    matches = [o for o in objects
               if (o["size"], o["colour"], o["shape"]) == (size, colour, shape)]
    return matches[0] if len(matches) == 1 else None


def attention_in_objects(captions, attention_weights, objects_per_image, image_size):
    """Share of attention mass inside the named object, per object-naming word.

    The words that name an object are the phrase "size colour shape" (e.g.
    "small red circle") when it describes exactly one object of the image.
    For each of them, the attention of the step that emitted the word is
    summed over the encoder cells the object's box touches. Uniform
    attention would score the object's share of cells, reported as the
    baseline; "by_role" splits the mean by the word's role in the phrase.

    Args:
        captions: generated captions (str), one per image.
        attention_weights: (images, steps, L), alpha_t of the word at step t.
        objects_per_image: per image, the objects of `read_synthetic_objects`.
        image_size: side of the images in pixels; the grid is sqrt(L) square.

    Returns:
        dict: "mean_share" (None without scored words), "uniform_share" (the
        same words under uniform attention), "by_role" ({role: mean share}),
        "scored_words", "unscored_phrases" (shape words whose phrase names
        no unique object: a wrong or ambiguous caption).
    """
    attention_weights = np.asarray(attention_weights)
    num_locations = attention_weights.shape[-1]
    grid_size = int(round(np.sqrt(num_locations)))
    shares = {role: [] for role in ROLES}
    uniform, unscored = [], 0
    for caption, weights, objects in zip(captions, attention_weights, objects_per_image):
        words = caption.split()
        for position, word in enumerate(words):
            if word not in SHAPES:
                continue
            named = _named_object(words, position, objects)
            if named is None or position >= len(weights):
                unscored += 1
                continue
            cells = object_cells(named["box"], image_size, grid_size)
            for offset, role in enumerate(ROLES):
                shares[role].append(float(weights[position - 2 + offset, cells].sum()))
                uniform.append(len(cells) / num_locations)
    every_share = [share for role in ROLES for share in shares[role]]
    return {
        "mean_share": float(np.mean(every_share)) if every_share else None,
        "uniform_share": float(np.mean(uniform)) if uniform else None,
        "by_role": {role: float(np.mean(shares[role])) if shares[role] else None
                    for role in ROLES},
        "scored_words": len(every_share),
        "unscored_phrases": unscored,
    }
