"""The training recipe behind `sat-keras train` and `sat-keras demo`.

`train_recipe` trains a preset (`models.presets`) on any dataset: the
built-in synthetic data (generated if missing, a small CNN trained from
scratch) or a real one (a pretrained encoder, optionally on cached
features). With a patience (the real-data presets have one) every epoch's
greedy captions of part of val are scored and training stops when BLEU-4
stops rising, keeping the best epoch (`epoch_selection`). A preset's "search" (the decoding
chosen on dev) is saved with the trained model as the decoding that
`sat-keras caption`, `evaluate` and `export` default to. `run_demo` is the
synthetic recipe with data and model in one folder, then sample captions.
"""

import os
import time

import keras

from sat_keras.data.datasets import read_dataset
from sat_keras.data.features import CachedFeatures
from sat_keras.data.records import select_split
from sat_keras.data.synthetic import generate_synthetic
from sat_keras.decoding import SearchSettings
from sat_keras.encoders import build_encoder
from sat_keras.encoders import weights_argument
from sat_keras.evaluation import evaluate_records
from sat_keras.evaluation import format_metrics
from sat_keras.models.presets import preset_settings
from sat_keras.models.saving import load_captioner
from sat_keras.models.saving import save_captioner
from sat_keras.models.show_attend_tell import ShowAttendTell
from sat_keras.text import Vocabulary
from sat_keras.training.averaging import epoch_weights_callback
from sat_keras.training.backup import ResumableEarlyStopping
from sat_keras.training.callbacks import CaptionMetricsCallback
from sat_keras.training.callbacks import TimeBudget
from sat_keras.training.fit import train
from sat_keras.training.rewards import CiderDReward
from sat_keras.training.runs import start_run

SYNTHETIC = "synthetic"
# A run with a self-critical stage: RUN/self_critical/ is that stage's run
# directory, and start.keras there the cross-entropy model it started from.
SELF_CRITICAL_DIR = "self_critical"
START_FILE = "start.keras"
DEFAULT_PRESETS = {SYNTHETIC: "synthetic", "real": "flickr8k_resnet50"}

# Arguments that have no meaning for generated data (its images exist, it has
# no captions file) or that need a pretrained encoder, which the synthetic
# presets do not use; and the one argument that only generated data has.
_NOT_FOR_SYNTHETIC = {"captions_file": "--captions-file", "features_dir": "--features",
                      "encoder": "--encoder", "encoder_weights": "--encoder-weights",
                      "fine_tune_layers": "--fine-tune-layers",
                      "encoder_multiplier": "--encoder-lr-multiplier"}
_ONLY_FOR_SYNTHETIC = {"num_images": "--num-images"}


def default_preset(dataset, attention="soft"):
    """The preset a dataset trains by default, or its hard-attention twin."""
    name = DEFAULT_PRESETS[SYNTHETIC if dataset == SYNTHETIC else "real"]
    return name + ("_hard" if attention == "hard" else "")


def check_arguments(dataset, **arguments):
    """Raises ValueError for a given (not None) argument that the dataset cannot use."""
    table = _NOT_FOR_SYNTHETIC if dataset == SYNTHETIC else _ONLY_FOR_SYNTHETIC
    given = [f"{flag} ({name})" for name, flag in table.items()
             if arguments.get(name) is not None]
    if given:
        kind = "the synthetic dataset" if dataset == SYNTHETIC else f"--dataset {dataset}"
        raise ValueError(f"{', '.join(given)} does not apply to {kind}.")
    if arguments.get("encoder_multiplier") is not None and not arguments.get(
            "fine_tune_layers"):
        raise ValueError("--encoder-lr-multiplier (encoder_multiplier) applies only when "
                         "fine-tuning: add --fine-tune-layers N.")
    if arguments.get("fine_tune_layers") and arguments.get("features_dir"):
        raise ValueError("Fine-tuning the encoder needs images, not cached features: "
                         "drop --features (features_dir).")


def train_recipe(dataset, data_dir, output_dir, preset=None, captions_file=None,
                 missing="error", num_images=None, encoder=None, encoder_weights=None,
                 features_dir=None, fine_tune_layers=None, encoder_multiplier=None,
                 epochs=None, batch_size=None, learning_rate=None, max_minutes=None,
                 patience=None, seed=0, verbose="auto", print_fn=print, strategy=None,
                 backup_every_steps=100, clip_norm=None, mixed_precision=None,
                 self_critical=None, doubly_stochastic_weight=None, label_smoothing=None,
                 annotation_dropout=None, embedding_dropout=None, keep_epoch_weights=False,
                 select_from=None, units=None, annotation_projection=None):
    """Trains a preset on a dataset's train split, reports a held-out split, saves.

    Args:
        dataset, data_dir, captions_file, missing: see `data.datasets.read_dataset`;
            "synthetic" generates its data in `data_dir` if missing.
        output_dir: the run directory (`training.runs`): `model.keras`, the
            config, metrics, TensorBoard logs and, while training, a backup
            from which a killed run resumes when started again.
        preset: a `models.presets` name (default: `default_preset(dataset)`).
        num_images: synthetic only: images to generate (default: the preset's).
        encoder: an `encoders.encoder_names()` name (default: the preset's).
        encoder_weights: the pretrained encoder's weights: "imagenet" (what
            None gives; downloads), "none" (random), or a weights file.
        features_dir: cached features of the encoder (`extract-features`);
            without it images go through the encoder at every step.
        fine_tune_layers: fine-tune the encoder's top N weighted layers, at
            `encoder_multiplier` (default 0.1) times the learning rate
            (needs images, not cached features).
        epochs, batch_size, learning_rate, patience, select_from: override
            the preset's training settings (patience: epochs without a better
            val BLEU-4 before stopping; None without one in the preset: no
            selection; select_from: see `epoch_selection`).
        max_minutes: wall-clock training budget.
        seed: seeds data generation, shuffling and weight initialisation.
        verbose: Keras `fit` verbosity (progress bars by default).
        print_fn: where the report lines go.
        strategy: a `tf.distribute` strategy (default: the current one).
        backup_every_steps, clip_norm: see `fit.train`.
        mixed_precision: "mixed_float16" or "mixed_bfloat16" (the global Keras
            policy: layers compute in 16 bits, weights and the loss stay float32).
        self_critical: a `training.self_critical.SelfCriticalSettings`: after
            cross-entropy, fine-tune on the CIDEr-D reward of sampled
            captions (document frequencies from the training references),
            in the run directory RUN/self_critical (start.keras there is the
            cross-entropy model; a rerun with it present goes on with this
            stage). With a patience, its epochs are judged by val CIDEr-D.
            `max_minutes` covers both stages.
        doubly_stochastic_weight: overrides the preset's lambda, the weight of
            the doubly stochastic attention penalty (eq. 14; 0 turns it off).
        label_smoothing: overrides the preset's label smoothing (default 0:
            none; see `ShowAttendTell`).
        annotation_dropout, embedding_dropout: override the preset's dropout
            on the annotations and on the word embeddings (`AttentiveLSTMCell`).
        units, annotation_projection: override the preset's LSTM size and
            its embedding of the features (`AttentiveLSTMCell`; None in the
            presets: the features are the annotations).
        keep_epoch_weights: also save every cross-entropy epoch's weights as
            RUN/epochs/epoch_NN.weights.h5 (for `training.averaging`).

    Not every argument applies to every dataset (`check_arguments`): one
    that does not is an error, not ignored.

    Returns:
        dict: "model", "history", "split" (the reported split: test for the
        synthetic data, val for real data, whose folders may hold no test
        split), "records" (its records), "metrics" (greedy, whole split,
        without METEOR), "captions", "train_minutes", "model_dir".
    """
    check_arguments(dataset, captions_file=captions_file, num_images=num_images,
                    encoder=encoder, encoder_weights=encoder_weights,
                    features_dir=features_dir, fine_tune_layers=fine_tune_layers,
                    encoder_multiplier=encoder_multiplier)
    preset = preset or default_preset(dataset)
    settings_all = preset_settings(preset, epochs=epochs, batch_size=batch_size,
                                   learning_rate=learning_rate, patience=patience,
                                   select_from=select_from,
                                   num_images=num_images)
    if encoder is not None:
        settings_all["encoder"] = {"name": encoder}
    model_overrides = {"doubly_stochastic_weight": doubly_stochastic_weight,
                       "label_smoothing": label_smoothing,
                       "annotation_dropout": annotation_dropout,
                       "embedding_dropout": embedding_dropout, "units": units,
                       "annotation_projection": annotation_projection}
    settings_all["model"].update(
        {name: value for name, value in model_overrides.items() if value is not None})
    settings = settings_all["training"]
    keras.utils.set_random_seed(seed)
    if dataset == SYNTHETIC:
        print_fn(f"Synthetic data: {settings['num_images']} images in {data_dir}")
        records = generate_synthetic(data_dir, num_images=settings["num_images"], seed=seed,
                                     image_size=settings["image_size"])
    else:
        records = read_dataset(dataset, data_dir, captions_file=captions_file, missing=missing,
                               report=print_fn)
    train_records, val_records = select_split(records, "train"), select_split(records, "val")
    vocabulary = Vocabulary.build((c for r in train_records for c in r.captions),
                                  min_count=settings.get("min_count", 1),
                                  max_size=settings.get("max_vocabulary_size"))
    print_fn(f"{len(train_records)} train / {len(val_records)} val images, "
             f"vocabulary of {len(vocabulary)} tokens")
    strategy, chief = start_run(
        output_dir, {"dataset": dataset, "preset": preset, "features_dir": features_dir,
                     "fine_tune_layers": fine_tune_layers,
                     "seed": seed, **settings_all}, strategy, mixed_precision)
    with strategy.scope():
        image_encoder = build_encoder(
            weights=weights_argument(encoder_weights), trainable=bool(fine_tune_layers),
            trainable_layers=fine_tune_layers,
            **settings_all["encoder"])
        model = ShowAttendTell.from_preset(
            preset, vocabulary=vocabulary, encoder=image_encoder,
            **{name: settings_all["model"][name] for name in model_overrides
               if name in settings_all["model"]})
        model.build({"images": (None, model.image_size, model.image_size, 3)})
    features = CachedFeatures(features_dir) if features_dir else None
    started = time.perf_counter()
    stage = dict(train_records=train_records, val_records=val_records, settings=settings,
                 features=features, seed=seed, verbose=verbose, strategy=strategy,
                 backup_every_steps=backup_every_steps, clip_norm=clip_norm,
                 encoder_multiplier=(0.1 if encoder_multiplier is None else encoder_multiplier)
                 if fine_tune_layers else None, print_fn=print_fn)
    stage_dir = os.path.join(output_dir, SELF_CRITICAL_DIR)
    start_file = os.path.join(stage_dir, START_FILE)
    if self_critical is not None and os.path.exists(start_file):
        print_fn(f"Cross-entropy done earlier ({start_file}): going on with the "
                 f"self-critical stage")
        with strategy.scope():
            model, history = load_captioner(start_file), {}
    else:
        history = _train_stage(model, output_dir, settings["epochs"], settings["learning_rate"],
                               max_minutes=max_minutes, keep_epoch_weights=keep_epoch_weights,
                               **stage).history
        if self_critical is not None and chief:
            save_captioner(model, stage_dir, START_FILE)
    if self_critical is not None:
        left = max_minutes - (time.perf_counter() - started) / 60 if max_minutes else None
        reward = CiderDReward([r.captions for r in train_records], model.vocabulary,
                              score_end=self_critical.score_end)
        stage_history = _train_stage(
            model, stage_dir, self_critical.epochs, self_critical.learning_rate,
            max_minutes=left,
            self_critical=self_critical.objective(reward, settings["max_length"]),
            **stage).history
        history = {**history, **{f"self_critical_{k}": v for k, v in stage_history.items()}}
    if settings.get("search"):  # the decoding the preset chose on dev: the model's default
        model.choose_search(settings["search"])
    train_minutes = (time.perf_counter() - started) / 60
    split = "test" if dataset == SYNTHETIC else "val"  # real data dirs may hold no test split
    report_records = select_split(records, split)
    scores, outputs = evaluate_records(model, report_records,
                                       SearchSettings(max_length=settings["max_length"]),
                                       features=features if split == "val" else None)
    epochs_run = len(history.get("loss", [])) + len(history.get("self_critical_loss", []))
    print_fn(f"Trained {epochs_run} epochs in {train_minutes:.1f} min. "
             f"{split} ({len(report_records)} images), free-running greedy captions: "
             f"{format_metrics(scores)}")
    if chief:
        save_captioner(model, output_dir)
        print_fn(f"Model saved to {output_dir}")
    return {"model": model, "history": history, "split": split,
            "records": report_records, "metrics": scores, "captions": outputs["captions"],
            "train_minutes": train_minutes, "model_dir": output_dir}


def _train_stage(model, run_dir, epochs, learning_rate, train_records, val_records, settings,
                 features, max_minutes, self_critical=None, keep_epoch_weights=False,
                 **arguments):
    """One stage of `train_recipe` (cross-entropy, or self-critical) with its callbacks.

    With a patience, every epoch's greedy captions of part of val are scored
    and the best epoch is kept (`epoch_selection`).
    """
    callbacks = []
    if keep_epoch_weights:
        callbacks.append(epoch_weights_callback(run_dir))
    if settings.get("patience") is not None:
        callbacks += [
            CaptionMetricsCallback(val_records[: settings.get("validation_images")],
                                   max_length=settings["max_length"], features=features),
            epoch_selection(settings, epochs, self_critical is not None)]
    if max_minutes is not None:
        callbacks.append(TimeBudget(max(max_minutes, 0.0)))
    return train(
        model, train_records, val_records, batch_size=settings["batch_size"],
        learning_rate=learning_rate, epochs=epochs,
        max_length=settings["max_length"], image_size=model.image_size,
        callbacks=callbacks, features=features, run_dir=run_dir,
        sample_records=val_records[:4], self_critical=self_critical, **arguments)


def epoch_selection(settings, epochs, self_critical=False):
    """The early stopping of a stage with a patience, keeping its best epoch.

    Cross-entropy epochs are judged by the check images' greedy BLEU-4, and
    only from `settings["select_from"]` (a fraction, default 0) of the
    cosine schedule on: earlier epochs, at a high learning rate, are
    neither kept nor counted towards the patience. A stage that ends before
    then keeps its last epoch. Self-critical epochs, at a constant learning
    rate, are judged by CIDEr-D from the first.
    """
    select_from = 0.0 if self_critical else settings.get("select_from", 0.0)
    if not 0.0 <= select_from < 1.0:
        raise ValueError(f"select_from must be at least 0 and below 1. Received: {select_from!r}")
    return ResumableEarlyStopping(
        monitor="val_cider" if self_critical else "val_bleu_4", mode="max",
        patience=settings["patience"], restore_best_weights=True,
        start_from_epoch=int(epochs * select_from))


def run_demo(output_dir="sat_keras_demo", epochs=None, num_images=None, seed=0,
             verbose="auto", print_fn=print):
    """`train_recipe` on synthetic data into `output_dir/{data,model}`, then samples."""
    result = train_recipe(SYNTHETIC, os.path.join(output_dir, "data"),
                          os.path.join(output_dir, "model"), epochs=epochs,
                          num_images=num_images, seed=seed, verbose=verbose,
                          print_fn=print_fn)
    print_fn("Sample test captions:")
    for record, caption in list(zip(result["records"], result["captions"]))[:3]:
        print_fn(f"  {record.image_path}: {caption!r}\n    reference: {record.captions[0]!r}")
    print_fn(f"Caption your own images with:\n"
             f"  sat-keras caption IMAGE... --model {result['model_dir']}")
    return result
