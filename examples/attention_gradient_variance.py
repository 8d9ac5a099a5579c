"""The variance of hard attention's REINFORCE gradient on one fixed batch, per baseline.

    python examples/attention_gradient_variance.py --model RUN_DIR --data-dir DATA_DIR \
        --features FEATURES_DIR [--images 64] [--draws 32] [--samples 4] \
        [--calibration-images 512] [--output F.json]

Takes the first caption of each of the first N train images (Flickr8k
layout), their cached features, and the model's decoder (a soft model's
weights work too: they are a hard model's), and draws the attention layer's
REINFORCE gradient `--draws` times for every estimator of
`sat_keras.training.attention_gradients`. The learned baseline is fitted on
the first captions of the next `--calibration-images` train images. Prints, per estimator, the
gradient's variance, the signal above it, their ratio, and the variance at
equal compute (leave-one-out costs `--samples` paths a draw).
"""

import argparse
import json
import time

import numpy as np

from sat_keras import Captioner
from sat_keras.data.datasets import read_dataset
from sat_keras.data.features import CachedFeatures
from sat_keras.data.records import select_split
from sat_keras.training import attention_gradients


def fixed_batch(model, data_dir, features_dir, images, first=0):
    records = select_split(read_dataset("flickr8k", data_dir), "train")[first:first + images]
    features = CachedFeatures(features_dir).lookup([r.image_path for r in records]).numpy()
    encoded = [model.vocabulary.encode(r.captions[0]) for r in records]
    sequences = np.zeros((len(encoded), max(map(len, encoded))), "int32")
    for row, ids in enumerate(encoded):
        sequences[row, :len(ids)] = ids
    return features, sequences


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a model handle: run directory, "
                        ".keras file, export or name")
    parser.add_argument("--data-dir", required=True, help="the Flickr8k folder")
    parser.add_argument("--features", required=True, help="its cached features "
                        "(sat-keras extract-features) for the model's encoder")
    parser.add_argument("--images", type=int, default=64, help="captions in the batch")
    parser.add_argument("--draws", type=int, default=32)
    parser.add_argument("--samples", type=int, default=4,
                        help="location paths per caption for leave-one-out")
    parser.add_argument("--calibration-images", type=int, default=512,
                        help="captions the learned baseline is fitted on")
    parser.add_argument("--estimators", nargs="+", default=list(attention_gradients.ESTIMATORS),
                        choices=attention_gradients.ESTIMATORS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=None, help="also write the figures as JSON")
    args = parser.parse_args()
    model = attention_gradients.sampling_copy(Captioner.from_preset(args.model))
    features, sequences = fixed_batch(model, args.data_dir, args.features, args.images)
    calibration = None
    if "learned" in args.estimators:
        calibration = fixed_batch(model, args.data_dir, args.features, args.calibration_images,
                                  first=args.images)
    print(f"{args.model}: {len(sequences)} captions, {args.draws} draws per estimator")
    results = {}
    for estimator in args.estimators:
        started = time.perf_counter()
        draws = attention_gradients.gradient_draws(model, features, sequences, estimator,
                                                   args.draws, args.samples, args.seed,
                                                   calibration)
        paths = args.samples if estimator == "leave_one_out" else 1
        results[estimator] = {**attention_gradients.summarize(draws, paths),
                              "seconds": time.perf_counter() - started}
        figures = results[estimator]
        print(f"{estimator}: variance {figures['variance']:.4g}, signal "
              f"{figures['signal']:.4g}, snr {figures['snr']:.4g}, variance at equal compute "
              f"{figures['variance_per_sample']:.4g} ({figures['seconds']:.0f} s)", flush=True)
    if args.output:
        with open(args.output, "w") as file:
            json.dump({"model": args.model, "images": len(sequences), "draws": args.draws,
                       "calibration_images": args.calibration_images,
                       "samples": args.samples, "seed": args.seed, "results": results},
                      file, indent=1)


if __name__ == "__main__":
    main()
