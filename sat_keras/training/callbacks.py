"""Keras callbacks: caption metrics, a time budget, a run's history and samples."""

import json
import os
import tempfile
import time

import keras
import tensorflow as tf

from sat_keras import metrics
from sat_keras.data.images import load_image
from sat_keras.decoding import SearchSettings
from sat_keras.evaluation import attention_statistics
from sat_keras.evaluation import caption_records
from sat_keras.evaluation import evaluate_records
from sat_keras.training.backup import optimizer_step


class CaptionMetricsCallback(keras.callbacks.Callback):
    """Adds `val_bleu_1`..`val_bleu_4`, `val_rouge_l`, `val_cider` to the logs.

    With them, how varied the captions are (`metrics.caption_diversity`):
    `val_distinct_captions`, `val_vocabulary_used`, `val_mean_length`; and
    how focused their attention is (`evaluation.attention_statistics`):
    `val_attention_entropy` (uniform attention: log L) and `val_max_alpha`.

    Every `every_n_epochs` epochs it captions the validation images without
    teacher forcing (greedy, or beam search) and scores the captions with
    `metrics.caption_metrics` (`val_cider` is CIDEr-D). Teacher-forced
    accuracy says little about captions; select models on these instead.
    Place it before `EarlyStopping` / `ModelCheckpoint` in the callbacks list
    so they see the values of the same epoch, and with `every_n_epochs > 1`
    give them `patience` in those units (they warn on epochs without it).

    Args:
        records: validation `CaptionRecord`s.
        max_length: the longest caption generated.
        beam_size: 1 for greedy search.
        every_n_epochs: how often to decode and score.
        batch_size: images decoded at once.
        with_meteor: also METEOR (`val_meteor`), which starts Java each time.
        features: a `data.features.CachedFeatures` to decode instead of images.
    """

    def __init__(self, records, max_length=20, beam_size=1, every_n_epochs=1, batch_size=64,
                 with_meteor=False, features=None):
        super().__init__()
        if not records:
            raise ValueError("CaptionMetricsCallback needs at least one validation record.")
        if not isinstance(every_n_epochs, int) or every_n_epochs < 1:
            raise ValueError(
                f"every_n_epochs must be a positive integer. Received: {every_n_epochs!r}")
        self.records = list(records)
        self.search = SearchSettings(max_length=max_length, beam_size=beam_size)
        self.every_n_epochs = every_n_epochs
        self.batch_size = batch_size
        self.with_meteor = with_meteor
        self.features = features

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_n_epochs:
            return
        scores, outputs = evaluate_records(
            self.model, self.records, self.search, batch_size=self.batch_size,
            with_meteor=self.with_meteor, features=self.features)
        scores["cider"] = scores.pop("cider_d")
        scores.update(metrics.caption_diversity(outputs["captions"]))
        focus = attention_statistics(outputs["attention_weights"])
        scores.update(attention_entropy=focus["mean_entropy"],
                      max_alpha=focus["mean_max_alpha"])
        if logs is not None:
            logs.update({f"val_{name}": value for name, value in scores.items()
                         if value is not None})


class TimeBudget(keras.callbacks.Callback):
    """Stops training once `minutes` of wall-clock time have passed (checked every batch).

    The epoch in progress ends early; callbacks still see its end, so a
    `ModelCheckpoint` or `CaptionMetricsCallback` runs one last time.
    """

    def __init__(self, minutes):
        super().__init__()
        if minutes <= 0:
            raise ValueError(f"minutes must be positive. Received: {minutes!r}")
        self.minutes = minutes
        self.started = None

    def on_train_begin(self, logs=None):
        self.started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if time.perf_counter() - self.started > 60 * self.minutes:
            self.model.stop_training = True


class MetricsHistory(keras.callbacks.Callback):
    """Appends each epoch's logs, with the optimizer step, to a JSON-lines file."""

    def __init__(self, path):
        super().__init__()
        self.path = path

    def on_epoch_end(self, epoch, logs=None):
        entry = {"epoch": epoch + 1, "step": optimizer_step(self.model)}
        entry.update({name: float(value) for name, value in (logs or {}).items()})
        with open(self.path, "a", encoding="utf-8") as file:
            file.write(json.dumps(entry) + "\n")


def _attention_png(image, words, attention):
    from sat_keras.visualization import plot_attention  # matplotlib: imported when needed

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
        self.search = SearchSettings(max_length=max_length)
        self.features = features
        self.write = write
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        outputs = caption_records(self.model, self.records, self.search, features=self.features)
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
