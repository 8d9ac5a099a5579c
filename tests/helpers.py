"""Test helpers shared by several test files (fixtures live in conftest.py)."""

import io
import os
import pathlib
import socket

import keras
import numpy as np
import tensorflow as tf

from sat_keras import ShowAttendTell
from sat_keras import SmallCNNEncoder
from sat_keras import Vocabulary
from sat_keras.data.pipeline import load_image

SHARED = pathlib.Path(__file__).resolve().parents[1] / ".." / "shared"
FLICKR8K_DIR = pathlib.Path(os.environ.get("SAT_KERAS_FLICKR8K_DIR", SHARED / "data" / "flickr8k"))
MOBILENET_WEIGHTS = SHARED / "weights" / "mobilenet_1_0_224_imagenet_no_top.weights.h5"

CAPTIONS = ["a red circle", "a blue square to the left of a red circle",
            "a small green triangle", "there is a blue square"]


def encode_image(kind, height=40, width=48, channels=3, seed=0):
    """Encoded bytes of a random image: kind in jpeg, png, gif, bmp."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(height, width, channels), dtype=np.uint8)
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[channels]
    image = Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode)
    if kind in ("jpeg", "bmp") and channels == 4:
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format={"jpeg": "JPEG", "png": "PNG", "gif": "GIF", "bmp": "BMP"}[kind])
    return buffer.getvalue()


def tiny_image_model(image_size=32):
    """A tiny seeded model with a SmallCNNEncoder, built on image_size images."""
    keras.utils.set_random_seed(0)
    model = ShowAttendTell(Vocabulary.build(CAPTIONS), encoder=SmallCNNEncoder(filters=(4, 8)),
                           embedding_dim=8, units=12, attention_dim=8, dropout=0.0,
                           image_size=image_size)
    model.build({"images": (None, image_size, image_size, 3)})
    return model


def python_captions(model, images, tmp_path, beam_size=2, max_length=6):
    """What `model.caption` says for encoded images, decoded as training decodes files."""
    decoded = []
    for index, data in enumerate(images):
        path = tmp_path / f"image-{index}"
        path.write_bytes(data)
        decoded.append(load_image(tf.constant(str(path)), model.image_size).numpy())
    return model.caption(images=np.stack(decoded), beam_size=beam_size, max_length=max_length)


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def flickr8k_subset(data_dir, train=4, dev=0):
    """A Flickr8k folder of the first `train` and `dev` shared images, official layout."""
    data_dir = pathlib.Path(data_dir)
    (data_dir / "Flicker8k_Dataset").mkdir(parents=True)
    lines = (FLICKR8K_DIR / "Flickr8k.token.txt").read_text(encoding="utf-8").splitlines()
    chosen = []
    for list_file, count in (("Flickr_8k.trainImages.txt", train), ("Flickr_8k.devImages.txt", dev)):
        names = (FLICKR8K_DIR / list_file).read_text().split()[:count]
        if not names:
            continue
        (data_dir / list_file).write_text("".join(f"{name}\n" for name in names))
        chosen.extend(names)
    for name in chosen:
        (data_dir / "Flicker8k_Dataset" / name).write_bytes(
            (FLICKR8K_DIR / "Flicker8k_Dataset" / name).read_bytes())
    wanted = set(chosen)
    (data_dir / "Flickr8k.token.txt").write_text(
        "".join(f"{line}\n" for line in lines if line.split("#", 1)[0] in wanted),
        encoding="utf-8")
    return str(data_dir)
