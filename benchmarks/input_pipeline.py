"""Is training on cached Flickr8k features input-bound? Real pipeline vs one repeated batch.

    python benchmarks/input_pipeline.py --features FEATURES [--data-dir ../shared/data/flickr8k]
        [--steps 40]

FEATURES: a folder written by `sat-keras extract-features --dataset flickr8k
--encoder mobilenet`. Trains the "flickr8k_mobilenet" model (cached
features, batch 64) for --steps steps fed by the real training pipeline
(`make_caption_dataset(..., features=...)`: shuffle, tokenise with
tensorflow-text, look up features, bucket), then for --steps steps on one
of its batches repeated from memory (no input work), after warm-up on every
bucket. Prints both step rates and their ratio; within 10% means the input
keeps up with the step.
"""

import argparse
import os
import time

import keras
import tensorflow as tf

from sat_keras.data.datasets import read_dataset
from sat_keras.data.features import CachedFeatures
from sat_keras.data.pipeline import make_caption_dataset
from sat_keras.data.records import select_split
from sat_keras.models.configs import get_config
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
    args = parser.parse_args()
    config = get_config("flickr8k_mobilenet")
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
    # A batch of the most common length, from memory.
    batches = [batch for batch in pipeline.take(30)]
    common = max(set(b[1].shape[1] for b in batches), key=[b[1].shape[1] for b in batches].count)
    one = next(b for b in batches if b[1].shape[1] == common)
    repeated = tf.data.Dataset.from_tensors(one).repeat()
    model.fit(repeated, steps_per_epoch=3, epochs=1, verbose=0)
    real = steps_per_second(model, pipeline, args.steps)
    memory = steps_per_second(model, repeated, args.steps)
    print(f"flickr8k_mobilenet on cached features {features.shape}, batch "
          f"{settings['batch_size']}, {args.steps} steps each")
    print(f"real pipeline:          {real:.2f} steps/s ({1000 / real:.0f} ms/step, buckets of "
          f"every length)")
    print(f"one batch from memory:  {memory:.2f} steps/s ({1000 / memory:.0f} ms/step, "
          f"{common} tokens, the most common bucket)")
    print(f"real / memory: {real / memory:.1%}")


if __name__ == "__main__":
    main()
