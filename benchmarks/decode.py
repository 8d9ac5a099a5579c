"""Captions/s of batched beam search against the same search image by image.

    python benchmarks/decode.py [--model sat_keras_demo/model] [--beam-size 3]

Without --model, an untrained model of the "synthetic" config size decodes
random annotations (8x8 grid, 64 features); untrained models rarely emit
`<end>`, so every caption runs to --max-length, the worst case. With a model
saved by `sat-keras demo` or `train`, it decodes that model's test images.
Both runs use `model.caption` (compiled, in-graph search); the first call of
each shape is excluded as warm-up.
"""

import argparse
import time

import numpy as np

from sat_keras.models.configs import get_config
from sat_keras.text import Vocabulary
from sat_keras.training import build_model
from sat_keras.training import load_captioner


def _inputs(args):
    if args.model:
        model = load_captioner(args.model)
        from sat_keras.data.pipeline import load_image_files
        from sat_keras.data.synthetic import read_synthetic
        import os

        data_dir = os.path.join(os.path.dirname(os.path.abspath(args.model.rstrip("/"))), "data")
        paths = [r.image_path for r in read_synthetic(data_dir) if r.split == "test"]
        paths = (paths * (args.num_images // len(paths) + 1))[: args.num_images]
        images, _, _ = load_image_files(paths, model.image_size)
        return model, {"images": images}
    config = get_config("synthetic")
    vocabulary = Vocabulary(["<pad>", "<start>", "<end>", "<unk>"] + [f"w{i}" for i in range(31)])
    model = build_model(vocabulary, config)
    features = np.random.default_rng(0).normal(size=(args.num_images, 64, 64)).astype("float32")
    return model, {"features": features}


def _rate(model, inputs, batch_size, args):
    def run(subset):
        return model.caption(**subset, max_length=args.max_length, beam_size=args.beam_size,
                             batch_size=batch_size)

    first = {name: value[:batch_size] for name, value in inputs.items()}
    run(first)  # warm-up: tracing and compilation
    count = len(next(iter(inputs.values())))
    started = time.perf_counter()
    if batch_size >= count:
        run(inputs)
    else:
        for index in range(0, count, batch_size):
            run({name: value[index:index + batch_size] for name, value in inputs.items()})
    return count / (time.perf_counter() - started)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None)
    parser.add_argument("--num-images", type=int, default=256)
    parser.add_argument("--beam-size", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=20)
    args = parser.parse_args()
    model, inputs = _inputs(args)
    batched = _rate(model, inputs, args.num_images, args)
    one_by_one = _rate(model, inputs, 1, args)
    print(f"beam search k={args.beam_size}, {args.num_images} images, max_length "
          f"{args.max_length}")
    print(f"batched ({args.num_images} at once): {batched:9.1f} captions/s")
    print(f"image by image:          {one_by_one:9.1f} captions/s")
    print(f"ratio:                   {batched / one_by_one:9.1f}x")


if __name__ == "__main__":
    main()
