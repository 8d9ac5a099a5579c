"""Trains a tiny captioner a few steps under a strategy; run as a script by tests.

    python distributed_training.py mirrored DATA OUT.json     # default, then mirrored
    python distributed_training.py multi_worker DATA OUT.npz  # TF_CONFIG set by the caller

DATA: a folder of synthetic data made by `synthetic_records` (made first, so
that concurrent workers only read it).

Strategies must be set up before TensorFlow runs anything, hence processes.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

STEPS = 5
GLOBAL_BATCH = 8


def synthetic_records(data_dir):
    from sat_keras.data.records import select_split
    from sat_keras.data.synthetic import generate_synthetic

    records = generate_synthetic(data_dir, num_images=120, seed=0, image_size=32)
    return select_split(records, "train"), select_split(records, "val")


def run(strategy, data_dir, run_dir=None):
    from sat_keras import ShowAttendTell
    from sat_keras import SmallCNNEncoder
    from sat_keras import Vocabulary
    from sat_keras.training import RunSettings
    from sat_keras.training import TrainingSettings
    from sat_keras.training import train

    train_records, val_records = synthetic_records(data_dir)
    vocabulary = Vocabulary.build(c for r in train_records for c in r.captions)
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = ShowAttendTell(vocabulary, encoder=SmallCNNEncoder(filters=(4, 8)),
                               image_size=32, decoder={"embedding_dim": 8, "units": 12,
                                                       "attention_dim": 8, "dropout": 0.0})
        model.build({"images": (None, 32, 32, 3)})
    losses = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            losses.append(float(logs["loss"]))
            if len(losses) == STEPS:
                self.model.stop_training = True

    train(model, train_records, val_records[:8],
          TrainingSettings(batch_size=GLOBAL_BATCH, learning_rate=1e-2, epochs=1,
                           max_length=20, image_size=32),
          RunSettings(run_dir, strategy=strategy, verbose=0), callbacks=[Record()])
    return model, losses


def main():
    mode, data_dir, output = sys.argv[1:4]
    if mode == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        # With a run directory each: its step backups read the optimizer's step,
        # a distributed variable under the mirrored strategy.
        runs = os.path.dirname(os.path.abspath(output))
        _, single = run(tf.distribute.get_strategy(), data_dir, os.path.join(runs, "single"))
        mirrored_strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        _, mirrored = run(mirrored_strategy, data_dir, os.path.join(runs, "mirrored"))
        with open(output, "w") as file:
            json.dump({"single": single, "mirrored": mirrored,
                       "replicas": mirrored_strategy.num_replicas_in_sync}, file)
    elif mode == "multi_worker":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        model, losses = run(strategy, data_dir)
        np.savez(output, losses=np.array(losses),
                 **{f"w{i}": np.asarray(w) for i, w in enumerate(model.get_weights())})
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
