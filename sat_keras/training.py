"""Building, training, evaluating and saving a captioner (used by CLI and demo)."""

import os

import keras
import numpy as np

from sat_keras import metrics
from sat_keras.data.pipeline import count_batches
from sat_keras.data.pipeline import make_caption_dataset
from sat_keras.data.pipeline import make_image_dataset
from sat_keras.encoders import SmallCNNEncoder
from sat_keras.models.show_attend_tell import ShowAttendTell
from sat_keras.optimizers import FineTuningAdam
from sat_keras.text import Vocabulary

MODEL_FILE = "model.keras"
VOCABULARY_FILE = "vocabulary.json"


def build_model(vocabulary, config):
    """A `ShowAttendTell` with a `SmallCNNEncoder`, from a `configs` set."""
    return ShowAttendTell(
        vocabulary,
        encoder=SmallCNNEncoder(filters=tuple(config["encoder"]["filters"])),
        image_size=config["training"]["image_size"],
        **config["model"],
    )


def train(model, train_records, val_records, batch_size, learning_rate, epochs,
          max_length, image_size, seed=0, callbacks=(), verbose="auto", jit_compile=False,
          features=None, encoder_multiplier=None):
    """Compiles (Adam with cosine decay) and fits on bucketed caption batches.

    With `features` (a `data.features.CachedFeatures`) the batches hold cached
    encoder features instead of images; the encoder is then not run. With
    `encoder_multiplier` the optimizer is `optimizers.FineTuningAdam`, the
    encoder's learning rate that multiple of the decoder's.

    Training batches drop each bucket's partial batch (see
    `make_caption_dataset`), so that with `jit_compile=True` XLA compiles
    one program per bucket. XLA is off by default: at the "synthetic" config
    size it did not pay on a 2-core CPU (`benchmarks/train_step_xla.py`,
    batch 64, 12 tokens: 84 against 85 ms a step with images, 85 against
    28 ms from features).

    Returns:
        The Keras `History`.
    """
    vocabulary = model.vocabulary
    datasets = {
        name: make_caption_dataset(records, vocabulary, batch_size=batch_size,
                                   image_size=image_size, max_length=max_length,
                                   shuffle=name == "train", seed=seed,
                                   drop_remainder=name == "train", features=features)
        for name, records in (("train", train_records), ("val", val_records))
    }
    steps_per_epoch = count_batches(train_records, batch_size, max_length,
                                    drop_remainder=True)
    if steps_per_epoch == 0:
        raise ValueError(
            f"The training split yields no full batch of {batch_size} captions. "
            f"Use a smaller batch size or more data."
        )
    schedule = keras.optimizers.schedules.CosineDecay(
        learning_rate, epochs * steps_per_epoch, alpha=0.05)
    optimizer = (keras.optimizers.Adam(schedule) if encoder_multiplier is None
                 else FineTuningAdam(schedule, encoder_multiplier=encoder_multiplier))
    model.compile(optimizer=optimizer, jit_compile=jit_compile)
    return model.fit(datasets["train"].repeat(), steps_per_epoch=steps_per_epoch,
                     validation_data=datasets["val"],
                     validation_steps=count_batches(val_records, batch_size, max_length),
                     epochs=epochs, callbacks=list(callbacks), verbose=verbose,
                     shuffle=False)  # the dataset reshuffles itself every epoch


def caption_records(model, records, max_length, beam_size=1, batch_size=64, features=None):
    """Captions each record's image, in order (greedy for beam_size 1).

    With `features` (a `data.features.CachedFeatures`) the cached features are
    decoded instead of the image files.

    Returns:
        dict: "captions" (list of str), "scores" (N,), "attention_weights"
        (N, max_length, L).
    """
    paths = [r.image_path for r in records]
    if features is not None:
        batches = ({"features": features.lookup(paths[start:start + batch_size]).numpy()}
                   for start in range(0, len(paths), batch_size))
    else:
        batches = ({"images": images} for images in
                   make_image_dataset(paths, model.image_size, batch_size=batch_size))
    outputs = [model.caption(**batch, max_length=max_length, beam_size=beam_size,
                             batch_size=batch_size) for batch in batches]
    return {
        "captions": [caption for output in outputs for caption in output["captions"]],
        "scores": np.concatenate([output["scores"] for output in outputs]),
        "attention_weights": np.concatenate([o["attention_weights"] for o in outputs]),
    }


def evaluate_records(model, records, max_length, beam_size=1, batch_size=64,
                     with_meteor=False, tokenization="normalize", features=None):
    """`metrics.caption_metrics` of free-running captions, and `caption_records`' outputs."""
    outputs = caption_records(model, records, max_length, beam_size, batch_size, features)
    references = [record.captions for record in records]
    scores = metrics.caption_metrics(references, outputs["captions"], with_meteor,
                                     tokenization)
    return scores, outputs


def save_captioner(model, directory):
    """Writes `model.keras` and `vocabulary.json` into `directory`."""
    if not model.built:
        raise ValueError("The model has no weights yet: train it or call it once before saving.")
    os.makedirs(directory, exist_ok=True)
    model.save(os.path.join(directory, MODEL_FILE))
    model.vocabulary.save(os.path.join(directory, VOCABULARY_FILE))
    return directory


def load_captioner(path):
    """Loads a model from a directory written by `save_captioner` or a .keras file."""
    model_path = os.path.join(path, MODEL_FILE) if os.path.isdir(path) else path
    if not os.path.exists(model_path):
        raise FileNotFoundError(
            f"No model at {model_path}. Expected a directory holding {MODEL_FILE} "
            f"(written by `sat-keras train`) or a .keras file."
        )
    model = keras.models.load_model(model_path)
    vocabulary_path = os.path.join(os.path.dirname(model_path), VOCABULARY_FILE)
    if os.path.exists(vocabulary_path) and Vocabulary.load(vocabulary_path) != model.vocabulary:
        raise ValueError(
            f"{vocabulary_path} differs from the vocabulary saved inside {model_path}."
        )
    return model
