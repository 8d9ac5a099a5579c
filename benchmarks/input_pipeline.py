"""Is training on cached Flickr8k features input-bound? Real pipeline vs its batches in memory.

    python benchmarks/input_pipeline.py --features FEATURES [--data-dir ../shared/data/flickr8k]
        [--steps 40] [--rounds 3]

FEATURES: a folder written by `sat-keras extract-features --dataset flickr8k
--encoder mobilenet`. Trains the "flickr8k_mobilenet" model (cached
features, batch 64) for --steps steps fed by the real training pipeline
(`make_caption_dataset(..., features=...)`: shuffle, tokenise with
tensorflow-text, look up features, bucket), then for --steps steps on
--steps of its batches cached in memory (the same mix of caption lengths, no
input work), alternating --rounds times, after warm-up on every bucket.
Prints the median step rates and their ratio; within 10% means the input
keeps up with the step.
"""

import argparse
import os
import time

import keras
import numpy as np

from sat_keras.data.datasets import read_dataset
from sat_keras.data.features import CachedFeatures
from sat_keras.data.pipeline import make_caption_dataset
from sat_keras.data.records import select_split
from sat_keras.models.presets import preset_settings
from sat_keras.models.show_attend_tell import ShowAttendTell
from sat_keras.text import Vocabulary

SHARED = os.path.realpath(os.path.join(os.path.dirname(__file__), "..", "..", "shared"))


def steps_per_second(model, dataset, steps):
    started = time.perf_counter()
    model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
    return steps / (time.perf_counter() - started)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", required=True)
    parser.add_argument("--data-dir", default=os.path.join(SHARED, "data", "flickr8k"))
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    config = preset_settings("flickr8k_mobilenet")
    settings = config["training"]
    records = select_split(read_dataset("flickr8k", args.data_dir, report=lambda *a: None),
                           "train")
    vocabulary = Vocabulary.build((c for r in records for c in r.captions),
                                  min_count=settings["min_count"])
    features = CachedFeatures(args.features)
    keras.utils.set_random_seed(0)
    model = ShowAttendTell(vocabulary, **config["model"])
    model.build({"features": (None,) + tuple(features.shape)})
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    pipeline = make_caption_dataset(records, vocabulary, batch_size=settings["batch_size"],
                                    max_length=settings["max_length"], seed=0,
                                    drop_remainder=True, features=features, from_epoch=0)
    model.fit(pipeline, steps_per_epoch=30, epochs=1, verbose=0)  # warm-up: every bucket
    # The same kind of batches with no input work: `steps` batches of the
    # pipeline (every bucket, in its proportions) cached in memory.
    memory = pipeline.take(args.steps).cache().repeat()
    model.fit(memory, steps_per_epoch=args.steps, epochs=1, verbose=0)  # fills the cache
    real_rates, memory_rates = [], []
    for _ in range(args.rounds):  # alternated: the machine's speed drifts
        real_rates.append(steps_per_second(model, pipeline, args.steps))
        memory_rates.append(steps_per_second(model, memory, args.steps))
    real, memory = np.median(real_rates), np.median(memory_rates)
    print(f"flickr8k_mobilenet on cached features {features.shape}, batch "
          f"{settings['batch_size']}, {args.steps} steps each, {args.rounds} rounds")
    print(f"real pipeline:          {real:.2f} steps/s ({1000 / real:.0f} ms/step, median)")
    print(f"cached in memory:       {memory:.2f} steps/s ({1000 / memory:.0f} ms/step, "
          f"the same kind of batches)")
    ratios = [r / m for r, m in zip(real_rates, memory_rates)]
    print(f"real / memory: {real / memory:.1%} (rounds: "
          f"{', '.join(f'{ratio:.1%}' for ratio in ratios)})")


if __name__ == "__main__":
    main()
