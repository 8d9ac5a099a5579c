"""Latency of an exported ensemble against the single model it is made of, in one run.

    python benchmarks/ensemble_latency.py --model VERSION_DIR
        [--members 2 3 | --against EXPORT ...] [--requests 30] [--rounds 2]

VERSION_DIR is a single model's export, e.g. version 3 of the Flickr8k
captioner, which the repository's history holds:
`git archive 4d7def5 saved_models/flickr8k/3 | tar -x -C /tmp`.

Rebuilds the model of an export (`export.reload`), makes ensembles of 2 and
3 copies of it (`CaptionEnsemble`: the copies' encoders are equal, so the
export runs and stores one; every copy runs its own decoder, which is the
cost of an ensemble of separately trained models of the same size) and
exports each with the single export's settings (decoding and weights
dtype). Then calls the `serving_default` signature of the single export
and of each ensemble in turn, round after round, with real Flickr8k JPEGs:
p50 / p99 for one JPEG and for a batch of 32, after 3 warm-up calls. Copies
average equal distributions, so the ensembles' captions must equal the
single model's: the script checks it. `--against` times the given exports
(version directories, e.g. a trained ensemble's) beside the model instead of
copies of it.
"""

import argparse
import glob
import os
import tempfile
import time

import numpy as np
import tensorflow as tf
from machine import matmul_gflops
from serve_latency import call_times

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.realpath(os.path.join(HERE, "..", "..", "shared"))


def export_ensembles(model_dir, sizes, folder):
    from sat_keras import CaptionEnsemble
    from sat_keras.export import export_captioner
    from sat_keras.export.reload import load_exported_captioner
    from sat_keras.export.reload import read_export_config
    from sat_keras.export.saved_model import export_search

    config = read_export_config(model_dir)
    settings = {"search": export_search(config).one_caption_each(),
                "weights_dtype": config.get("weights_dtype", "float32")}
    exports = {}
    for size in sizes:
        members = [load_exported_captioner(model_dir) for _ in range(size)]
        started = time.perf_counter()
        exports[size] = export_captioner(CaptionEnsemble(members),
                                         os.path.join(folder, f"ensemble{size}", "1"),
                                         **settings)
        print(f"exported the ensemble of {size} in {time.perf_counter() - started:.0f} s")
    return settings, exports


def size_mb(version_dir):
    total = 0
    for root, _, files in os.walk(version_dir):
        total += sum(os.path.getsize(os.path.join(root, name)) for name in files)
    return total / 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True,
                        help="a single model's export: its version directory")
    parser.add_argument("--members", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--against", nargs="+", default=None, metavar="EXPORT",
                        help="version directories to time instead of copies of --model")
    parser.add_argument("--requests", type=int, default=30, help="one-JPEG calls per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--data-dir", default=os.path.join(SHARED, "data", "flickr8k"))
    args = parser.parse_args()
    photos = sorted(glob.glob(os.path.join(args.data_dir, "**", "*.jpg"), recursive=True))[:32]
    images = [open(path, "rb").read() for path in photos]
    with tempfile.TemporaryDirectory() as folder:
        if args.against:
            settings = "see each export's export_config.json"
            exports = {os.path.basename(os.path.dirname(os.path.abspath(d))) + "/"
                       + os.path.basename(d): d for d in args.against}
        else:
            settings, exports = export_ensembles(args.model, args.members, folder)
            exports = {f"{n} models": d for n, d in exports.items()}
        dirs = {"1 model": args.model, **exports}
        signatures = {n: tf.saved_model.load(d).signatures["serving_default"]
                      for n, d in dirs.items()}
        captions = {n: signature(image_bytes=tf.constant(images))["captions"].numpy().tolist()
                    for n, signature in signatures.items()}
        one, batch = {n: [] for n in dirs}, {n: [] for n in dirs}
        matmul = [matmul_gflops()]
        for round_index in range(args.rounds):
            for n, signature in signatures.items():
                one[n] += call_times(signature, images[:1], args.requests)
                batch[n] += call_times(signature, images, max(3, args.requests // 6))
            matmul.append(matmul_gflops())
            print(f"round {round_index + 1}: " + ", ".join(
                f"{n} p50 {np.percentile(one[n], 50):.1f} ms" for n in dirs))
        sizes = {n: size_mb(d) for n, d in dirs.items()}
    print(f"fp32 matmul 2048x2048: {min(matmul):.1f}-{max(matmul):.1f} GFLOP/s")
    print(f"single model: {args.model}; decoding and weights: {settings}")
    base_one, base_batch = (np.percentile(one["1 model"], 50),
                            np.percentile(batch["1 model"], 50))
    for n in dirs:
        p50, p99 = np.percentile(one[n], 50), np.percentile(one[n], 99)
        b50, b99 = np.percentile(batch[n], 50), np.percentile(batch[n], 99)
        print(f"{n}, {sizes[n]:.1f} MB: 1 JPEG p50 {p50:.1f} ms, p99 {p99:.1f} ms "
              f"({p50 / base_one:.2f}x); 32 JPEGs p50 {b50:.0f} ms, p99 {b99:.0f} ms "
              f"({b50 / base_batch:.2f}x, {32000 / b50:.0f} images/s); captions equal to the "
              f"single model's: {captions[n] == captions['1 model']}")


if __name__ == "__main__":
    main()
