"""`tf.distribute` strategies by name, and who writes files under them.

The pattern (Keras 3 on TensorFlow): create the strategy first, then build
and compile the model inside `strategy.scope()`; `training.fit.train` does the
compiling in the scope and feeds the dataset with the global batch size,
which the strategy splits over its replicas.

    strategy = make_strategy("mirrored")
    with strategy.scope():
        model = ShowAttendTell.from_preset("synthetic", vocabulary=vocabulary)
    train(model, train_records, val_records,
          TrainingSettings(batch_size=64, learning_rate=3e-3, epochs=9, max_length=20,
                           image_size=64),
          RunSettings("runs/shapes", strategy=strategy))

(docs/training.md has the whole example.)
"""

import json
import os

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


def make_strategy(name="default", tpu=None):
    """A strategy: "default" (one device), "mirrored" (all local GPUs, or
    the CPU), "multi_worker" (the cluster in TF_CONFIG) or "tpu" (`tpu`:
    the TPU's name or address; None finds the Colab / Cloud TPU)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("The multi_worker strategy reads its cluster from the TF_CONFIG "
                             "environment variable, which is not set.")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"strategy must be one of {STRATEGIES}. Received: {name!r}")


def is_chief(strategy=None):
    """Whether this process writes the run's files: the chief, or worker 0
    of a cluster without one, or the only process."""
    resolver = getattr(strategy or tf.distribute.get_strategy(), "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    if task_type is None:
        return True
    if task_type == "chief":
        return True
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    return task_type == "worker" and resolver.task_id == 0 and "chief" not in cluster


def shard_by_data(dataset):
    """Each worker takes its share of every batch (the pipeline reads from
    in-memory paths, not files, so file-based sharding does not apply)."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA)
    return dataset.with_options(options)


def scale_for_replicas(loss):
    """`loss / replicas in sync` under a strategy (the model's loss, per replica).

    The replicas' gradients are summed, so a per-replica mean loss is scaled
    down to give the gradient of the global batch's mean, as Keras does for
    its own losses.
    """
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss / replicas if replicas > 1 else loss


def logs_for_multi_worker(logs):
    """Metric results shaped (1,) under MultiWorkerMirroredStrategy, else as they are.

    Keras reduces a step's results over the workers with
    `strategy.reduce("MEAN", value, axis=0)`, which fails on scalars; the
    results are already the same on every replica, so a length-1 axis makes
    that reduction return them unchanged.
    """
    if not isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
        return logs
    return {name: tf.reshape(value, (1,)) for name, value in logs.items()}
