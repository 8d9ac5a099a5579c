"""Batched decoding speed of two git revisions, interleaved in one process.

    python benchmarks/decode_ab.py REVISION_A REVISION_B [--beam-size 3] [--rounds 8]
        [--jit-compile]

The decoding counterpart of `train_ab.py` (see there why: the machine's speed
drifts more between runs than the changes being measured). Builds the
benchmark-size model of `decode.py` from each revision's `sat_keras`, then
captions the same --num-images random annotations with each in turn,
`--rounds` times, alternating which goes first. Prints each revision's median
captions/s, the median over rounds of B's rate divided by A's, how many
images got the same words from both revisions, and the largest difference
between their attention maps on those images.
"""

import argparse
import importlib
import sys
import tempfile
import time

import decode
import numpy as np
from train_ab import package_copy


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revisions", nargs=2)
    parser.add_argument("--beam-size", type=int, default=3)
    parser.add_argument("--num-images", type=int, default=256)
    parser.add_argument("--max-length", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--jit-compile", action="store_true")
    args = parser.parse_args()

    folder = tempfile.mkdtemp(prefix="decode_ab_")
    sys.path.insert(0, folder)
    names = ["revision_a", "revision_b"]
    features = np.random.default_rng(0).normal(
        size=(args.num_images, decode.SIZES.locations, decode.SIZES.features)).astype("float32")

    def run(model):
        return model.caption(features=features, max_length=args.max_length,
                             beam_size=args.beam_size, batch_size=args.num_images)

    models, results = {}, {}
    for name, revision in zip(names, args.revisions):
        package_copy(revision, name, folder)
        package = importlib.import_module(name)
        models[name] = decode.benchmark_model(package.ShowAttendTell, package.Vocabulary)
        models[name].jit_compile = args.jit_compile
        results[name] = run(models[name])  # also the warm-up

    rates = {name: [] for name in names}
    for round_index in range(args.rounds):
        for name in (names if round_index % 2 == 0 else names[::-1]):
            started = time.perf_counter()
            run(models[name])
            rates[name].append(args.num_images / (time.perf_counter() - started))
    a, b = (np.array(rates[name]) for name in names)
    print(f"beam {args.beam_size}, {args.num_images} images, max_length {args.max_length}, "
          f"jit_compile={args.jit_compile}")
    for revision, values in zip(args.revisions, (a, b)):
        print(f"{revision}: median {np.median(values):.1f} captions/s "
              f"(rounds: {', '.join(f'{value:.1f}' for value in values)})")
    print(f"B / A, median over rounds: {np.median(b / a):.3f} "
          f"(rounds: {np.min(b / a):.3f}-{np.max(b / a):.3f})")
    first, second = results[names[0]], results[names[1]]
    same = np.all(first["token_ids"] == second["token_ids"], axis=1)  # (images,)
    difference = np.max(np.abs(first["attention_weights"][same]
                               - second["attention_weights"][same]), initial=0.0)
    print(f"same caption from both: {same.mean():.1%} of images; largest difference of "
          f"their attention weights: {difference:.2g}")


if __name__ == "__main__":
    main()
