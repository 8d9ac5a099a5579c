"""ms per training step with and without XLA, for the "synthetic" config size.

    python benchmarks/train_step_xla.py [--batch-size 64] [--length 12] [--steps 60]

One repeated in-memory batch (no input pipeline), after 10 warm-up steps; with
images through the encoder and with precomputed features (decoder only). This
is the measurement behind `training.fit.train(jit_compile=False)` by default.
"""

import argparse
import time

import keras
import numpy as np
import tensorflow as tf

from sat_keras import ShowAttendTell
from sat_keras.models.presets import preset_settings
from sat_keras.text import Vocabulary


def _ms_per_step(jit_compile, with_images, args):
    config = preset_settings("synthetic")
    vocabulary = Vocabulary(["<pad>", "<start>", "<end>", "<unk>"] + [f"w{i}" for i in range(31)])
    keras.utils.set_random_seed(0)
    model = ShowAttendTell.from_preset("synthetic", vocabulary=vocabulary)
    rng = np.random.default_rng(0)
    size = config["training"]["image_size"]
    inputs = {"token_ids": rng.integers(1, len(vocabulary), (args.batch_size, args.length))}
    if with_images:
        inputs["images"] = rng.integers(0, 255, (args.batch_size, size, size, 3)).astype("uint8")
    else:
        inputs["features"] = rng.normal(size=(args.batch_size, 64, 64)).astype("float32")
    targets = rng.integers(1, len(vocabulary), (args.batch_size, args.length))
    model.compile(optimizer="adam", jit_compile=jit_compile)
    dataset = tf.data.Dataset.from_tensors((inputs, targets)).repeat()
    model.fit(dataset, steps_per_epoch=10, verbose=0)
    started = time.perf_counter()
    model.fit(dataset, steps_per_epoch=args.steps, verbose=0)
    return 1000 * (time.perf_counter() - started) / args.steps


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--length", type=int, default=12)
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    for with_images in (True, False):
        times = {jit: _ms_per_step(jit, with_images, args) for jit in (False, True)}
        print(f"{'images' if with_images else 'features'}: no XLA {times[False]:.1f} ms/step, "
              f"XLA {times[True]:.1f} ms/step, XLA/no-XLA {times[True] / times[False]:.2f}")


if __name__ == "__main__":
    main()
