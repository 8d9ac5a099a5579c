"""Peak memory and time of the exported signature on bombs and on the worst accepted request.

    python benchmarks/image_limits.py [--model-dir saved_models/shapes/1]

Each case runs in a fresh process: load the SavedModel, caption one small
image (warm-up), read the peak RSS (idle), call `serving_default` on the
case's request, read the peak RSS again. Prints, per case, whether it was
accepted, the peak RSS it added and its time. The accepted cases fill one
request up to the default `ImageLimits` (5 images of 40 million pixels, 200
million in all), in each format at its most expensive to decode.
"""

import argparse
import io
import os
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

SIDE = 6324  # 6324^2 = 39.99 million pixels, under the default 40 million


def _smooth(side):
    """A smooth RGB picture (compresses well, so its file stays under 20 MB)."""
    ramp = np.linspace(0, 255, side, dtype=np.float32)
    red = np.broadcast_to(ramp[None, :], (side, side))
    green = np.broadcast_to(ramp[:, None], (side, side))
    return np.stack([red, green, (red + green) / 2], axis=-1).astype(np.uint8)


def _encode(pixels, **options):
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, **options)
    return buffer.getvalue()


def _animated_gif(frames, side):
    from PIL import Image

    images = [Image.new("P", (side, side), index % 2) for index in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:])
    return buffer.getvalue()


def build_cases(folder):
    """{name: [file paths]} of one request each."""
    from helpers import gif_bomb_20_mb
    from helpers import hostile_images

    cases = {}
    for label, data, _ in hostile_images():
        cases[f"refused: {label}"] = [data]
    cases["refused: GIF bomb, 430 frames (20 MB)"] = [gif_bomb_20_mb()]
    pixels = _smooth(SIDE)
    cases["accepted: 5 baseline JPEGs of 40 Mpixel"] = [_encode(pixels, format="JPEG")] * 5
    cases["accepted: 5 progressive JPEGs of 40 Mpixel"] = [
        _encode(pixels, format="JPEG", progressive=True)] * 5
    cases["accepted: 5 PNGs of 40 Mpixel"] = [_encode(pixels, format="PNG")] * 5
    cases["accepted: 5 GIFs of 40 frames of 1000 x 1000"] = [_animated_gif(40, 1000)] * 5
    written = {}
    for index, (name, items) in enumerate(cases.items()):
        paths = []
        for item_index, data in enumerate(items):
            path = os.path.join(folder, f"case{index}-{item_index}")
            with open(path, "wb") as file:
                file.write(data)
            paths.append(path)
        written[name] = paths
    return written


def rss_mb():
    with open("/proc/self/status") as file:
        return next(int(line.split()[1]) for line in file if line.startswith("VmRSS")) / 1024


def run_case(model_dir, paths):
    """In a child process: prints 'outcome|added peak MB|seconds|largest file MB'.

    The peak is the largest RSS sampled every millisecond during the call,
    less the RSS just before it (the process's lifetime peak, ru_maxrss,
    is already set higher by TensorFlow's start-up).
    """
    import tensorflow as tf
    from helpers import encode_image

    signature = tf.saved_model.load(model_dir).signatures["serving_default"]
    signature(image_bytes=tf.constant([encode_image("jpeg", 64, 64)]))
    request = tf.constant([open(path, "rb").read() for path in paths])
    idle, peak, running = rss_mb(), [0.0], [True]

    def sample():
        while running[0]:
            peak[0] = max(peak[0], rss_mb())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.perf_counter()
    try:
        signature(image_bytes=request)
        outcome = "accepted"
    except tf.errors.InvalidArgumentError as error:
        outcome = "refused: " + error.message.split("assertion failed: [")[-1].split("]\n")[0]
    seconds = time.perf_counter() - started
    running[0] = False
    sampler.join()
    largest = max(os.path.getsize(path) for path in paths) / 1e6
    print(f"{outcome}|{max(peak[0] - idle, 0):.0f}|{seconds:.2f}|{largest:.2f}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", default=os.path.join(HERE, "..", "saved_models", "shapes",
                                                            "1"))
    parser.add_argument("--case", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        return run_case(args.model_dir, args.case)
    with tempfile.TemporaryDirectory() as folder:
        cases = build_cases(folder)
        print(f"{'case':46s} {'outcome':72s} {'peak RSS added':>15s} {'time':>7s} "
              f"{'largest file':>12s}")
        for name, paths in cases.items():
            result = subprocess.run(
                [sys.executable, __file__, "--model-dir", args.model_dir, "--case", *paths],
                capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
            line = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else (
                f"crashed ({result.returncode}): {result.stderr[-200:]}|-|-|-")
            outcome, added, seconds, largest = line.split("|")
            print(f"{name:46s} {outcome[:72]:72s} {added + ' MB':>15s} {seconds + ' s':>7s} "
                  f"{largest + ' MB':>12s}")


if __name__ == "__main__":
    main()
