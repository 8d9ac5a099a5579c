"""A training run's directory: what a run leaves behind to be inspected and resumed.

    RUN/config.json        the settings the run was started with
    RUN/vocabulary.json    its vocabulary (a resumed run must build the same)
    RUN/metrics.jsonl      one JSON line per epoch: step, losses, val metrics
    RUN/backup/            the latest backup (`backup.py`), removed at the end
    RUN/tensorboard/       TensorBoard logs per epoch: losses, learning rate, val
                           caption metrics, sample captions (text), an attention image
    RUN/model.keras        the final model (written by the caller)

Under a multi-worker strategy only the chief writes here.
"""

import json
import os
import tempfile

import keras

from sat_keras.backup import CHECKPOINT_FILE
from sat_keras.backup import StepBackup
from sat_keras.backup import remove_backup
from sat_keras.backup import restore_backup
from sat_keras.backup import write_json_atomically
from sat_keras.text import Vocabulary

CONFIG_FILE = "config.json"
VOCABULARY_FILE = "vocabulary.json"
METRICS_FILE = "metrics.jsonl"


class MetricsHistory(keras.callbacks.Callback):
    """Appends each epoch's logs, with the optimizer step, to a JSON-lines file."""

    def __init__(self, path):
        super().__init__()
        self.path = path

    def on_epoch_end(self, epoch, logs=None):
        entry = {"epoch": epoch + 1, "step": int(self.model.optimizer.iterations)}
        entry.update({name: float(value) for name, value in (logs or {}).items()})
        with open(self.path, "a", encoding="utf-8") as file:
            file.write(json.dumps(entry) + "\n")


def _attention_png(image, words, attention):
    from sat_keras.visualization import plot_attention

    with tempfile.TemporaryDirectory() as folder:
        path = plot_attention(image, words, attention, os.path.join(folder, "attention.png"))
        with open(path, "rb") as file:
            return file.read()


class CaptionSamples(keras.callbacks.Callback):
    """Writes free-running captions of a few images to TensorBoard every epoch.

    Text: a table of image, caption and first reference. Image: the first
    sample's attention picture (`visualization.plot_attention`). Every
    worker captions (under a multi-worker strategy prediction is collective);
    only the one with `write` writes.
    """

    def __init__(self, records, log_dir, max_length=20, features=None, write=True):
        super().__init__()
        self.records = list(records)
        self.log_dir = log_dir
        self.max_length = max_length
        self.features = features
        self.write = write
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        import tensorflow as tf

        from sat_keras.data.pipeline import load_image
        from sat_keras.training import caption_records

        outputs = caption_records(self.model, self.records, self.max_length,
                                  features=self.features)
        if not self.write:
            return
        rows = ["| image | caption | reference |", "| --- | --- | --- |"]
        rows += [f"| {os.path.basename(r.image_path)} | {caption} | {r.captions[0]} |"
                 for r, caption in zip(self.records, outputs["captions"])]
        image = load_image(tf.constant(self.records[0].image_path), self.model.image_size)
        words = outputs["captions"][0].split()
        picture = _attention_png(image.numpy(), words, outputs["attention_weights"][0])
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "samples"))
        with self._writer.as_default(step=epoch + 1), tf.summary.record_if(True):
            tf.summary.text("sample_captions", "\n".join(rows))
            tf.summary.image("attention", tf.expand_dims(tf.io.decode_png(picture, 3), 0))
        self._writer.flush()


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
        """Writes the vocabulary, or checks that a resumed run built the same one."""
        path = os.path.join(self.path, VOCABULARY_FILE)
        if self.has_backup() and os.path.exists(path) and Vocabulary.load(path) != vocabulary:
            raise ValueError(f"The vocabulary differs from the one in {path} that the run "
                             "being resumed used: resume it on the same data and settings.")
        if self.write:
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


def read_metrics(run_dir):
    """The entries of RUN/metrics.jsonl, in order."""
    with open(os.path.join(run_dir, METRICS_FILE), encoding="utf-8") as file:
        return [json.loads(line) for line in file if line.strip()]

