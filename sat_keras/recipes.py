"""`sat-keras train` on a real dataset: pretrained encoder, optional cached features."""

import time

import keras

from sat_keras import training
from sat_keras.callbacks import CaptionMetricsCallback
from sat_keras.callbacks import TimeBudget
from sat_keras.data.datasets import read_dataset
from sat_keras.data.features import CachedFeatures
from sat_keras.data.records import select_split
from sat_keras.encoders import build_encoder
from sat_keras.evaluation import format_metrics
from sat_keras.models.configs import get_config
from sat_keras.models.show_attend_tell import ShowAttendTell
from sat_keras.runs import start_run
from sat_keras.text import Vocabulary


def train_captioner(dataset, data_dir, output_dir, config_name="flickr8k_mobilenet",
                    captions_file=None, encoder=None, encoder_weights="imagenet",
                    features_dir=None, fine_tune_layers=None, encoder_multiplier=0.1,
                    epochs=None, batch_size=None, learning_rate=None, max_minutes=None,
                    patience=None, missing="error", seed=0, verbose="auto", print_fn=print,
                    strategy=None, backup_every_steps=100, clip_norm=None, mixed_precision=None):
    """Trains soft attention on a dataset's train split, selected on val BLEU-4.

    Every epoch greedy captions of the first `validation_images` val images
    (config) are scored; training stops early when BLEU-4 stops rising (the
    best weights are restored), or after `max_minutes`. The model is saved
    with its encoder, so it captions image files.

    Args:
        dataset, data_dir, captions_file, missing: see `read_dataset`.
        output_dir: the run directory (`runs.py`): `model.keras`,
            `vocabulary.json`, the config, metrics, TensorBoard logs and a
            backup while training, from which a killed run resumes.
        config_name: a set from `models.configs`.
        encoder: an `encoders.encoder_names()` name (default: the config's).
        encoder_weights: "imagenet", None, or a weights file.
        features_dir: cached features of this encoder (`extract-features`);
            without it images go through the encoder at every step.
        fine_tune_layers: fine-tune the encoder's top N weighted layers, at
            `encoder_multiplier` times the learning rate (needs images, not
            cached features).
        epochs, batch_size, learning_rate, patience: override the config
            (patience: epochs without a better val BLEU-4 before stopping).
        max_minutes: wall-clock training budget.
        strategy: a `tf.distribute` strategy (default: the current one).
        backup_every_steps, clip_norm: see `training.train`.
        mixed_precision: "mixed_float16" or "mixed_bfloat16" (the global Keras
            policy: layers compute in 16 bits, weights and the loss stay float32).

    Returns:
        dict: "model", "history", "val_metrics" (greedy, whole val split),
        "train_minutes".
    """
    config = get_config(config_name, epochs=epochs, batch_size=batch_size,
                        learning_rate=learning_rate, patience=patience)
    settings = config["training"]
    if fine_tune_layers and features_dir:
        raise ValueError(
            "Fine-tuning the encoder needs images, not cached features: drop features_dir.")
    keras.utils.set_random_seed(seed)
    records = read_dataset(dataset, data_dir, captions_file=captions_file, missing=missing,
                           report=print_fn)
    train_records, val_records = select_split(records, "train"), select_split(records, "val")
    vocabulary = Vocabulary.build((c for r in train_records for c in r.captions),
                                  min_count=settings.get("min_count", 1),
                                  max_size=settings.get("max_vocabulary_size"))
    print_fn(f"{len(train_records)} train / {len(val_records)} val images, "
             f"vocabulary of {len(vocabulary)} tokens")
    strategy, chief = start_run(
        output_dir, {"dataset": dataset, "config_name": config_name, "encoder": encoder,
                     "features_dir": features_dir, "fine_tune_layers": fine_tune_layers,
                     "seed": seed, **config}, strategy, mixed_precision)
    with strategy.scope():
        image_encoder = build_encoder(encoder or config["encoder"]["name"],
                                      weights=encoder_weights, trainable=bool(fine_tune_layers),
                                      trainable_layers=fine_tune_layers)
        model = ShowAttendTell(vocabulary, encoder=image_encoder,
                               image_size=image_encoder.image_size, **config["model"])
        model.build({"images": (None, image_encoder.image_size, image_encoder.image_size, 3)})
    features = CachedFeatures(features_dir) if features_dir else None
    callbacks = [
        CaptionMetricsCallback(val_records[: settings["validation_images"]],
                               max_length=settings["max_length"], features=features),
        keras.callbacks.EarlyStopping(monitor="val_bleu_4", mode="max",
                                      patience=settings["patience"],
                                      restore_best_weights=True),
    ]
    if max_minutes:
        callbacks.append(TimeBudget(max_minutes))
    started = time.perf_counter()
    history = training.train(
        model, train_records, val_records, batch_size=settings["batch_size"],
        learning_rate=settings["learning_rate"], epochs=settings["epochs"],
        max_length=settings["max_length"], image_size=image_encoder.image_size, seed=seed,
        callbacks=callbacks, verbose=verbose, features=features,
        encoder_multiplier=encoder_multiplier if fine_tune_layers else None,
        strategy=strategy, run_dir=output_dir, backup_every_steps=backup_every_steps,
        clip_norm=clip_norm, sample_records=val_records[:4], print_fn=print_fn)
    train_minutes = (time.perf_counter() - started) / 60
    val_metrics, _ = training.evaluate_records(model, val_records, settings["max_length"],
                                               features=features)
    print_fn(f"Trained {len(history.history['loss'])} epochs in {train_minutes:.1f} min. "
             f"val ({len(val_records)} images), greedy: {format_metrics(val_metrics)}")
    if chief:
        training.save_captioner(model, output_dir)
        print_fn(f"Model saved to {output_dir}")
    return {"model": model, "history": history.history, "val_metrics": val_metrics,
            "train_minutes": train_minutes}
