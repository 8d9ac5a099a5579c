"""Captions/s of greedy and batched beam search, and beam search image by image.

    python benchmarks/decode.py [--num-images 256] [--beam-size 3] [--jit-compile]
        [--mixed-precision mixed_bfloat16]
    python benchmarks/decode.py --model sat_keras_demo/model

Without --model: an untrained model of the benchmark size (see
train_throughput.py: 196 x 512 features, E = U = A = 512, V = 5,000) decodes
cached-feature-shaped random annotations. Untrained models rarely emit
`<end>`, so every caption runs to --max-length words: the worst case, and the
FLOP count (`flops.decoding_flops`) is exact. With a model saved by
`sat-keras demo` or `train`, it decodes that model's synthetic test images.
All runs use `model.caption` (the in-graph search); the first call of each
shape is excluded as warm-up. Prints the matmul rate measured in this process.
--mixed-precision builds the untrained model under that Keras policy (products
in bfloat16 or float16, the search's scores in float32).
"""

import argparse
import os
import time

import keras
import numpy as np
from flops import Sizes
from flops import decoding_flops
from machine import matmul_gflops

from sat_keras import ShowAttendTell
from sat_keras.models.saving import load_captioner
from sat_keras.text import Vocabulary

SIZES = Sizes(locations=196, features=512, embedding=512, units=512, attention=512,
              vocabulary=5000)


def benchmark_model(model_class, vocabulary_class):
    """An untrained, seeded model of the benchmark size, built for cached features."""
    vocabulary = vocabulary_class(["<pad>", "<start>", "<end>", "<unk>"]
                                  + [f"w{i}" for i in range(SIZES.vocabulary - 4)])
    keras.utils.set_random_seed(0)
    # The 0.2 keywords (deprecated since 0.3, not decoder={...}): the A/B scripts
    # build this model from older checkouts too.
    model = model_class(vocabulary, embedding_dim=SIZES.embedding, units=SIZES.units,
                        attention_dim=SIZES.attention)
    model.build({"features": (None, SIZES.locations, SIZES.features)})
    return model


def _inputs(args):
    if args.model:
        from sat_keras.data.images import load_image_files
        from sat_keras.data.synthetic import read_synthetic

        model = load_captioner(args.model)
        data_dir = os.path.join(os.path.dirname(os.path.abspath(args.model.rstrip("/"))), "data")
        paths = [r.image_path for r in read_synthetic(data_dir) if r.split == "test"]
        paths = (paths * (args.num_images // len(paths) + 1))[: args.num_images]
        images, _, _ = load_image_files(paths, model.image_size)
        return model, {"images": images}
    model = benchmark_model(ShowAttendTell, Vocabulary)
    features = np.random.default_rng(0).normal(
        size=(args.num_images, SIZES.locations, SIZES.features)).astype("float32")
    return model, {"features": features}


def _rate(model, inputs, batch_size, beam_size, args, limit=None):
    """(captions/s, words generated per image on average)."""
    def run(subset):
        return model.caption(**subset, max_length=args.max_length, beam_size=beam_size,
                             batch_size=batch_size)

    count = len(next(iter(inputs.values()))) if limit is None else limit
    run({name: value[:batch_size] for name, value in inputs.items()})  # warm-up
    started = time.perf_counter()
    words = 0
    for index in range(0, count, batch_size):
        result = run({name: value[index:index + batch_size] for name, value in inputs.items()})
        words += int(np.sum(result["token_ids"] > 0))
    return count / (time.perf_counter() - started), words / count


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--num-images", type=int, default=256)
    parser.add_argument("--beam-size", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=20)
    parser.add_argument("--one-by-one", type=int, default=32,
                        help="images decoded one at a time for the comparison")
    parser.add_argument("--jit-compile", action="store_true")
    parser.add_argument("--mixed-precision", choices=["mixed_float16", "mixed_bfloat16"])
    args = parser.parse_args()
    if args.mixed_precision:
        keras.mixed_precision.set_global_policy(args.mixed_precision)
    matmul = matmul_gflops()
    model, inputs = _inputs(args)
    if args.jit_compile:
        model.jit_compile = True
    greedy, greedy_words = _rate(model, inputs, args.num_images, 1, args)
    beam, beam_words = _rate(model, inputs, args.num_images, args.beam_size, args)
    one_by_one, _ = _rate(model, inputs, 1, args.beam_size, args, limit=args.one_by_one)
    what = args.model or "untrained, benchmark size"
    print(f"model: {what}; {args.num_images} images, max_length {args.max_length}, "
          f"jit_compile={args.jit_compile}, precision={args.mixed_precision or 'float32'}")
    print(f"fp32 matmul 2048x2048: {matmul:.1f} GFLOP/s")
    for name, rate, words, k in (("greedy", greedy, greedy_words, 1),
                                 (f"beam {args.beam_size}", beam, beam_words, args.beam_size)):
        line = f"{name:>8} batched: {rate:8.1f} captions/s ({words:.1f} words/caption)"
        if not args.model:
            flops = decoding_flops(SIZES, args.max_length, 1, k) * rate / 1e9
            line += f", {flops:.1f} GFLOP/s = {flops / matmul:.1%} of the matmul rate"
        print(line)
    print(f"beam {args.beam_size} image by image ({args.one_by_one} images): "
          f"{one_by_one:8.1f} captions/s; batched is {beam / one_by_one:.1f}x faster")


if __name__ == "__main__":
    main()
