"""Built-in synthetic captioning data: coloured shapes and where they are.

Each image holds 1-3 shapes (circle, square, triangle; small or large; one of
four colours) in distinct cells of a 3x3 layout. Every image gets the same
five caption templates, naming the objects from left to right and, for two
objects, their spatial relation, so the words can only be right if the model
looks at the right place. Each object's bounding box is kept so that attention
can be scored against ground truth (`object_cells`).
"""

import json
import os

import numpy as np
import tensorflow as tf

from sat_keras.data.records import CaptionRecord

COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 190, 60),
    "blue": (50, 80, 230),
    "yellow": (230, 210, 40),
}
SHAPES = ("circle", "square", "triangle")
SIZES = {"small": 5, "large": 9}  # radius in pixels at image_size 64
LAYOUT = 3  # objects sit in distinct cells of a LAYOUT x LAYOUT layout

_FORMAT = "sat_keras.synthetic"
_FORMAT_VERSION = 1
_INDEX_FILE = "synthetic.json"


def _shape_mask(shape, centre_x, centre_y, radius, image_size):
    y, x = np.mgrid[0:image_size, 0:image_size]
    dx, dy = x - centre_x, y - centre_y
    if shape == "circle":
        return dx * dx + dy * dy <= radius * radius
    if shape == "square":
        half = 0.85 * radius
        return (np.abs(dx) <= half) & (np.abs(dy) <= half)
    # Upward triangle: apex at the top, base at the bottom.
    inside_height = (dy >= -radius) & (dy <= radius)
    return inside_height & (np.abs(dx) <= (dy + radius) / 2.0)


def _describe(obj):
    return f"a {obj['size']} {obj['colour']} {obj['shape']}"


def _relation(first, second):
    """How `first` stands to `second`, and the converse."""
    if first["column"] != second["column"]:
        return "to the left of", "to the right of"
    if first["row"] < second["row"]:
        return "above", "below"
    return "below", "above"


def make_captions(objects):
    """Five captions for objects sorted left to right (then top to bottom)."""
    names = [_describe(obj) for obj in objects]
    if len(names) == 1:
        (a,) = names
        return [a, f"there is {a}", f"{a} on a dark background",
                f"an image with {a}", f"{a} in the picture"]
    if len(names) == 2:
        a, b = names
        relation, converse = _relation(*objects)
        return [f"{a} {relation} {b}", f"{b} {converse} {a}",
                f"there is {a} {relation} {b}", f"{a} and {b}",
                f"an image with {a} and {b}"]
    a, b, c = names
    return [f"{a} , {b} and {c}", f"there are {a} , {b} and {c}",
            f"three shapes : {a} , {b} and {c}", f"an image with {a} , {b} and {c}",
            f"{a} {_relation(*objects[:2])[0]} {b} and {c}"]


def _make_scene(rng, image_size):
    scale = image_size / 64.0
    slot = image_size / LAYOUT
    image = rng.normal(40.0, 6.0, size=(image_size, image_size, 3))
    count = int(rng.integers(1, 4))
    cells = rng.choice(LAYOUT * LAYOUT, size=count, replace=False)
    objects = []
    for cell in cells:
        row, column = divmod(int(cell), LAYOUT)
        size = str(rng.choice(list(SIZES)))
        radius = SIZES[size] * scale
        centre_x = (column + 0.5) * slot + rng.uniform(-1, 1) * scale
        centre_y = (row + 0.5) * slot + rng.uniform(-1, 1) * scale
        obj = {
            "size": size,
            "colour": str(rng.choice(list(COLOURS))),
            "shape": str(rng.choice(SHAPES)),
            "row": row,
            "column": column,
        }
        mask = _shape_mask(obj["shape"], centre_x, centre_y, radius, image_size)
        image[mask] = np.array(COLOURS[obj["colour"]]) + rng.normal(0, 8, size=3)
        ys, xs = np.nonzero(mask)
        obj["box"] = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
        objects.append(obj)
    objects.sort(key=lambda o: (o["column"], o["row"]))
    return np.clip(image, 0, 255).astype(np.uint8), objects


def object_cells(box, image_size, grid_size):
    """Flat indices of the grid_size x grid_size encoder cells a box touches."""
    x0, y0, x1, y1 = box
    cell = image_size / grid_size
    columns = range(int(x0 // cell), int(np.ceil(x1 / cell)))
    rows = range(int(y0 // cell), int(np.ceil(y1 / cell)))
    return [r * grid_size + c for r in rows for c in columns]


def _assign_splits(num_images, fractions):
    train, val = (int(round(f * num_images)) for f in fractions[:2])
    return ["train"] * train + ["val"] * val + ["test"] * (num_images - train - val)


def generate_synthetic(data_dir, num_images=3000, seed=0, image_size=64,
                       split_fractions=(0.8, 0.1, 0.1)):
    """Writes PNG images and an index file to `data_dir`; returns records.

    A directory already holding data made with the same arguments is reused.

    Args:
        data_dir: output directory (created if missing).
        num_images: images in all splits together.
        seed: the generator's seed; the same seed gives the same data.
        image_size: side of the square images in pixels.
        split_fractions: (train, val, test) fractions, split by image.

    Returns:
        A list of `CaptionRecord`s.
    """
    if num_images < 3:
        raise ValueError(f"num_images must be at least 3. Received: {num_images}")
    if image_size < 32:
        raise ValueError(f"image_size must be at least 32. Received: {image_size}")
    settings = {"num_images": num_images, "seed": seed, "image_size": image_size,
                "split_fractions": list(split_fractions)}
    index_path = os.path.join(data_dir, _INDEX_FILE)
    if os.path.exists(index_path):
        with open(index_path, encoding="utf-8") as file:
            if json.load(file).get("settings") == settings:
                return read_synthetic(data_dir)
    os.makedirs(os.path.join(data_dir, "images"), exist_ok=True)
    rng = np.random.default_rng(seed)
    entries = []
    for index, split in enumerate(_assign_splits(num_images, split_fractions)):
        image, objects = _make_scene(rng, image_size)
        file_name = os.path.join("images", f"{index:06d}.png")
        tf.io.write_file(os.path.join(data_dir, file_name), tf.io.encode_png(image))
        entries.append({"file": file_name, "split": split,
                        "captions": make_captions(objects), "objects": objects})
    index = {"format": _FORMAT, "version": _FORMAT_VERSION, "settings": settings,
             "images": entries}
    temporary_path = index_path + ".tmp"
    with open(temporary_path, "w", encoding="utf-8") as file:
        json.dump(index, file)
    os.replace(temporary_path, index_path)
    return read_synthetic(data_dir)


def _read_index(data_dir):
    index_path = os.path.join(data_dir, _INDEX_FILE)
    if not os.path.exists(index_path):
        raise FileNotFoundError(
            f"{index_path} does not exist. Generate the data first with "
            f"generate_synthetic({data_dir!r}) or `sat-keras train --dataset synthetic`."
        )
    with open(index_path, encoding="utf-8") as file:
        index = json.load(file)
    if index.get("format") != _FORMAT:
        raise ValueError(f"{index_path} is not a sat_keras synthetic index.")
    return index


def read_synthetic(data_dir):
    """The `CaptionRecord`s of a generated synthetic dataset."""
    return [
        CaptionRecord(os.path.join(data_dir, entry["file"]), entry["captions"],
                      entry["split"])
        for entry in _read_index(data_dir)["images"]
    ]


def read_synthetic_objects(data_dir):
    """{image_path: list of objects with "box", "colour", "shape", "size"}."""
    index = _read_index(data_dir)
    return {os.path.join(data_dir, entry["file"]): entry["objects"]
            for entry in index["images"]}
