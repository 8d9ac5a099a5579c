"""A training run's directory: what a run leaves behind to be inspected and resumed.

    RUN/config.json        the settings the run was started with
    RUN/metrics.jsonl      one JSON line per epoch: step, losses, val metrics
    RUN/backup/            the latest backup (`backup.py`) and the vocabulary it
                           was trained with (a resumed run must build the same),
                           removed at the end
    RUN/tensorboard/       TensorBoard logs per epoch: losses, learning rate, val
                           caption metrics, sample captions (text), an attention image
    RUN/model.keras        the final model, its vocabulary inside (written by
                           the caller): the run's one copy of the vocabulary

Under a multi-worker strategy only the chief writes here.
"""

import json
import os
import tempfile

import keras
import tensorflow as tf

from sat_keras.distribute import is_chief
from sat_keras.text import Vocabulary
from sat_keras.training.backup import CHECKPOINT_FILE
from sat_keras.training.backup import StepBackup
from sat_keras.training.backup import remove_backup
from sat_keras.training.backup import restore_backup
from sat_keras.training.backup import write_json_atomically
from sat_keras.training.callbacks import CaptionSamples
from sat_keras.training.callbacks import MetricsHistory

CONFIG_FILE = "config.json"
VOCABULARY_FILE = "vocabulary.json"
METRICS_FILE = "metrics.jsonl"


class RunDirectory:
    """The files of one run; `write` False on workers that must not write."""

    def __init__(self, path, write=True):
        self.path = path
        self.write = write
        self.backup_dir = os.path.join(path, "backup")
        self.tensorboard_dir = os.path.join(path, "tensorboard")
        if write:
            os.makedirs(path, exist_ok=True)

    def save_config(self, config):
        if self.write:
            write_json_atomically(os.path.join(self.path, CONFIG_FILE), config)

    def check_vocabulary(self, vocabulary):
        """Checks that a resumed run built the backup's vocabulary; keeps it with the backup."""
        path = os.path.join(self.backup_dir, VOCABULARY_FILE)
        if self.has_backup() and os.path.exists(path) and Vocabulary.load(path) != vocabulary:
            raise ValueError(f"The vocabulary differs from the one in {path} that the run "
                             "being resumed used: resume it on the same data and settings.")
        if self.write:
            os.makedirs(self.backup_dir, exist_ok=True)
            vocabulary.save(path)

    def has_backup(self):
        return os.path.exists(os.path.join(self.backup_dir, CHECKPOINT_FILE))

    def restore(self, model):
        """Loads the backup into the compiled model; returns the step to go on from.

        Without a backup the run starts afresh: metrics of an earlier run in
        this directory are removed, so the history is this run's alone.
        """
        step = restore_backup(model, self.backup_dir)
        metrics = os.path.join(self.path, METRICS_FILE)
        if step == 0 and self.write and os.path.exists(metrics):
            os.remove(metrics)
        return step

    def callbacks(self, backup_every_steps, sample_records=(), max_length=20, features=None):
        """MetricsHistory, TensorBoard, CaptionSamples and StepBackup, in that order."""
        log_dir = self.tensorboard_dir if self.write else tempfile.mkdtemp()
        callbacks = []
        if self.write:
            callbacks.append(MetricsHistory(os.path.join(self.path, METRICS_FILE)))
        # Per epoch: with a step interval, Keras's TensorBoard leaves its
        # record_if(step % interval == 0) in force at epoch end, and epoch
        # summaries are then dropped unless the epoch ends on the interval.
        callbacks.append(keras.callbacks.TensorBoard(log_dir=log_dir, write_graph=False,
                                                     update_freq="epoch"))
        if sample_records:
            callbacks.append(CaptionSamples(sample_records, log_dir, max_length, features,
                                            write=self.write))
        callbacks.append(StepBackup(self.backup_dir, backup_every_steps, write=self.write))
        return callbacks

    def finish(self):
        """Removes the backup once the run has ended as planned."""
        if self.write:
            remove_backup(self.backup_dir)


def start_run(run_dir, settings, strategy=None, mixed_precision=None):
    """What `demo` and `recipes` do before building a model for a run.

    Sets the Keras precision policy (`mixed_precision`: "mixed_float16" or
    "mixed_bfloat16"), records `settings` as the run's config (on the chief
    only) and returns `(strategy, chief)`, the strategy defaulting to the
    current one.
    """
    if mixed_precision:
        keras.mixed_precision.set_global_policy(mixed_precision)
    strategy = strategy or tf.distribute.get_strategy()
    chief = is_chief(strategy)
    RunDirectory(run_dir, write=chief).save_config(settings)
    return strategy, chief


def read_metrics(run_dir):
    """The entries of RUN/metrics.jsonl, in order."""
    with open(os.path.join(run_dir, METRICS_FILE), encoding="utf-8") as file:
        return [json.loads(line) for line in file if line.strip()]

