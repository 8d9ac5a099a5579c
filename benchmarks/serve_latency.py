"""p50 / p99 latency of an exported SavedModel for 1 image and for a batch of 32.

    python benchmarks/serve_latency.py [--model-dir saved_models/NAME/1] [--requests 100]
        [--jit-compile]

Without --model-dir it exports a model of the Flickr8k recipe's size first
(MobileNet to conv_pw_11 with the shared ImageNet weights, the
"flickr8k_mobilenet" decoder, a 2,500-word vocabulary, beam 3, at most 20
words) into a temporary folder; untrained, so every caption runs to 20 words,
the slowest case. Calls the `serving_default` signature in this process
with real 224 x 224 Flickr8k JPEGs (decode, resize, encoder, beam search,
words), after 3 warm-up calls per batch size. --jit-compile exports with
the search XLA-compiled (`export_captioner(jit_compile=True)`).
"""

import argparse
import glob
import os
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf
from machine import matmul_gflops

SHARED = os.path.realpath(os.path.join(os.path.dirname(__file__), "..", "..", "shared"))


def export_recipe_size_model(folder, weights, jit_compile):
    from sat_keras import ShowAttendTell
    from sat_keras import Vocabulary
    from sat_keras.encoders import build_encoder
    from sat_keras.export import export_captioner
    from sat_keras.models.presets import preset_settings

    config = preset_settings("flickr8k_mobilenet")
    keras.utils.set_random_seed(0)
    encoder = build_encoder("mobilenet", weights=weights)
    vocabulary = Vocabulary(["<pad>", "<start>", "<end>", "<unk>"]
                            + [f"w{i}" for i in range(2496)])
    model = ShowAttendTell(vocabulary, encoder=encoder, image_size=encoder.image_size,
                           **config["model"])
    model.build({"images": (None, 224, 224, 3)})
    return export_captioner(model, os.path.join(folder, "recipe", "1"), beam_size=3,
                            max_length=20, jit_compile=jit_compile)


def call_times(signature, images, requests):
    """Milliseconds of each of `requests` calls with `images`, after 3 warm-up calls."""
    batch = tf.constant(images)
    for _ in range(3):
        signature(image_bytes=batch)
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        signature(image_bytes=batch)["captions"].numpy()
        times.append(1000 * (time.perf_counter() - started))
    return times


def latencies(signature, images, requests):
    times = call_times(signature, images, requests)
    return np.percentile(times, 50), np.percentile(times, 99)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default=None, help="an exported version directory")
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--jit-compile", action="store_true",
                        help="export the recipe-size model with XLA (without --model-dir)")
    parser.add_argument("--data-dir", default=os.path.join(SHARED, "data", "flickr8k"))
    parser.add_argument("--weights", default=os.path.join(
        SHARED, "weights", "mobilenet_1_0_224_imagenet_no_top.weights.h5"))
    args = parser.parse_args()
    photos = sorted(glob.glob(os.path.join(args.data_dir, "**", "*.jpg"), recursive=True))[:32]
    images = [open(path, "rb").read() for path in photos]
    matmul = matmul_gflops()
    with tempfile.TemporaryDirectory() as folder:
        model_dir = args.model_dir or export_recipe_size_model(
            folder, args.weights, args.jit_compile)
        signature = tf.saved_model.load(model_dir).signatures["serving_default"]
        single = latencies(signature, images[:1], args.requests)
        batch = latencies(signature, images, max(10, args.requests // 5))
    print(f"fp32 matmul 2048x2048: {matmul:.1f} GFLOP/s")
    default = ("Flickr8k recipe size (MobileNet + flickr8k_mobilenet decoder, untrained: "
               "20 words), beam 3")
    print(f"model: {args.model_dir or default}"
          + ("" if args.model_dir else f", jit_compile={args.jit_compile}"))
    print(f"1 JPEG ({tf.image.decode_jpeg(images[0]).shape[0]}px): p50 {single[0]:.1f} ms, "
          f"p99 {single[1]:.1f} ms")
    print(f"32 JPEGs: p50 {batch[0]:.1f} ms, p99 {batch[1]:.1f} ms "
          f"({32000 / batch[0]:.0f} images/s at p50)")


if __name__ == "__main__":
    main()
