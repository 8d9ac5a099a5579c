"""Test helpers shared by several test files (fixtures live in conftest.py)."""

import functools
import io
import os
import pathlib
import socket
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from sat_keras import ShowAttendTell
from sat_keras import SmallCNNEncoder
from sat_keras import Vocabulary
from sat_keras.data.images import load_image
from sat_keras.models.show_attend_tell import decoder_arguments

REPOSITORY = pathlib.Path(__file__).resolve().parents[1]
# ../shared beside the clone holds the Flickr8k photos and the ImageNet weights that CI
# provides; a user's clone has none. SAT_KERAS_SHARED moves it (=/nonexistent tries a
# plain clone). Tests reach it only through `shared_path` or the `needs_shared` mark.
SHARED = pathlib.Path(os.environ.get("SAT_KERAS_SHARED", REPOSITORY.parent / "shared"))
FLICKR8K_DIR = pathlib.Path(os.environ.get("SAT_KERAS_FLICKR8K_DIR", SHARED / "data" / "flickr8k"))
MOBILENET_WEIGHTS = SHARED / "weights" / "mobilenet_1_0_224_imagenet_no_top.weights.h5"
SMALL_MOBILENET_WEIGHTS = SHARED / "weights" / "mobilenet_2_5_224_tf_no_top.h5"


def shared_is_required():
    """True in CI (CI=true) or with SAT_KERAS_REQUIRE_SHARED=1: missing shared files fail."""
    return (os.environ.get("CI", "").lower() in ("true", "1")
            or os.environ.get("SAT_KERAS_REQUIRE_SHARED") == "1")


def _shown(path):
    path = pathlib.Path(path)
    try:
        return f"../shared/{path.relative_to(SHARED).as_posix()} (looked for {path})"
    except ValueError:
        return str(path)


def shared_path(*paths):
    """`paths` (one path: itself) when they all exist; else the test is skipped saying why.

    The one way tests reach ../shared (the `needs_shared` mark calls it too). In CI
    (`shared_is_required()`) a missing file fails the test instead, so CI cannot skip
    silently what it is meant to run.
    """
    missing = [path for path in paths if not pathlib.Path(path).exists()]
    if missing:
        message = ("needs " + ", ".join(_shown(path) for path in missing)
                   + ": the Flickr8k photos / ImageNet weights that CI provides beside the clone"
                   " (SAT_KERAS_SHARED points elsewhere)")
        if shared_is_required():
            pytest.fail(message + "; required here (CI=true or SAT_KERAS_REQUIRE_SHARED=1)",
                        pytrace=False)
        pytest.skip(message)
    return paths[0] if len(paths) == 1 else paths


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


def split_decoder_arguments(settings):
    """(the decoder's arguments, the model's) of one flat dict of settings."""
    decoder = {name: value for name, value in settings.items() if name in decoder_arguments()}
    return decoder, {name: value for name, value in settings.items() if name not in decoder}


def tiny_image_model(image_size=32, **overrides):
    """A tiny seeded model with a SmallCNNEncoder, built on image_size images."""
    keras.utils.set_random_seed(0)
    decoder, settings = split_decoder_arguments(
        {"embedding_dim": 8, "units": 12, "attention_dim": 8, "dropout": 0.0, **overrides})
    model = ShowAttendTell(Vocabulary.build(CAPTIONS), encoder=SmallCNNEncoder(filters=(4, 8)),
                           image_size=image_size, decoder=decoder, **settings)
    model.build({"images": (None, image_size, image_size, 3)})
    return model


def python_captions(model, images, tmp_path, beam_size=2, max_length=6, **search):
    """What `model.caption` says for encoded images, decoded as training decodes files.

    `search`: more `model.caption` settings (e.g. suppress_unknown).
    """
    decoded = []
    for index, data in enumerate(images):
        path = tmp_path / f"image-{index}"
        path.write_bytes(data)
        decoded.append(load_image(tf.constant(str(path)), model.image_size).numpy())
    return model.caption(images=np.stack(decoded), beam_size=beam_size, max_length=max_length,
                         **search)


def process_memory_mb(pid, field):
    """A memory figure of a process from /proc/PID/status, in MB: "VmRSS" (now) or
    "VmHWM" (its peak)."""
    with open(f"/proc/{pid}/status") as file:
        return next(int(line.split()[1]) for line in file if line.startswith(field)) / 1024


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_serving(client, process, seconds=120):
    """The served model's metadata once `client` gets an answer; fails if `process` ends."""
    from sat_keras.serving import CaptionServiceError

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, _output_of(process)
        try:
            return client.metadata()
        except CaptionServiceError:
            time.sleep(0.5)
    raise TimeoutError("the server did not come up")


def _output_of(process):
    """The end of an ended server's output, when it went to a pipe."""
    output = process.communicate()[0]
    if output is None:  # a file: the test that started it names it
        return f"the server ended with code {process.returncode}; its output went to a file"
    return output[-3000:]


def flickr8k_subset(data_dir, train=4, dev=0):
    """A Flickr8k folder of the first `train` and `dev` shared images, official layout."""
    data_dir = pathlib.Path(data_dir)
    (data_dir / "Flicker8k_Dataset").mkdir(parents=True)
    lines = (FLICKR8K_DIR / "Flickr8k.token.txt").read_text(encoding="utf-8").splitlines()
    chosen = []
    lists = (("Flickr_8k.trainImages.txt", train), ("Flickr_8k.devImages.txt", dev))
    for list_file, count in lists:
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


@functools.lru_cache(maxsize=4)
def _one_colour_gif(side):
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("P", (side, side), 0).save(buffer, format="GIF")
    return buffer.getvalue()


def gif_bomb(screen=(64, 64), frame_side=8000, frames=1):
    """A small GIF whose logical screen is `screen` (width, height) and whose
    `frames` image blocks are each frame_side x frame_side pixels of one colour.

    A one-colour frame compresses about 1,300:1, so 40 frames of 8000 x 8000
    take 2 MB and decode to 7.7 GB.
    """
    data = _one_colour_gif(frame_side)
    image_start = data.index(b"\x2c\x00\x00\x00\x00")  # the first image descriptor
    image_block = data[image_start:-1]  # up to the trailer
    screen_bytes = screen[0].to_bytes(2, "little") + screen[1].to_bytes(2, "little")
    return data[:6] + screen_bytes + data[10:image_start] + image_block * frames + b"\x3b"


def gif_bomb_20_mb():
    """`gif_bomb` with 430 frames: 20.6 MB, just under the default 20 MiB item limit."""
    return gif_bomb(frames=430)


def hostile_images():
    """(label, encoded bytes, the refusal's text): files made to exhaust a decoder or fool a check.

    Small to send, large or slow only if decoded.
    """
    png, gif, bmp = encode_image("png"), encode_image("gif"), encode_image("bmp")
    rows = int.from_bytes(bmp[22:26], "little")
    frame = "a GIF frame larger than the logical screen"
    return [
        ("GIF bomb, 1 frame", gif_bomb(frames=1), frame),
        ("GIF bomb, 4 frames", gif_bomb(frames=4), frame),
        ("GIF bomb, 40 frames", gif_bomb(frames=40), frame),
        ("GIF with an unknown block", gif[:-1] + b"\x99\x3b", "malformed GIF (an unknown block)"),
        ("GIF whose blocks run past the end", gif[:len(gif) // 2] + b"\x3b",
         "truncated GIF (its blocks run past the end)"),
        ("PNG whose first chunk is not IHDR", png[:12] + b"tEXt" + png[16:],
         "malformed PNG (IHDR is not the first chunk)"),
        ("BMP with an OS/2 header", bmp[:14] + (12).to_bytes(4, "little") + bmp[18:],
         "unsupported BMP header"),
        ("BMP declaring rows it lacks", bmp[:22] + (rows * 100).to_bytes(4, "little") + bmp[26:],
         "truncated BMP (its pixel rows run past the end)"),
        ("PNG of 49 million pixels", tf.io.encode_png(tf.zeros((7000, 7000, 1), tf.uint8)).numpy(),
         "over 40000000 pixels"),
    ]
