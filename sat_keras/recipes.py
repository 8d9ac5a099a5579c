"""The training recipe behind `sat-keras train` and `sat-keras demo`.

`train_recipe` trains a preset (`models.presets`) on any dataset: the
built-in synthetic data (generated if missing, a small CNN trained from
scratch) or a real one (a pretrained encoder, optionally on cached
features). With a patience (the real-data presets have one) every epoch's
greedy captions of part of val are scored and training stops when BLEU-4
stops rising, keeping the best epoch (`epoch_selection`). A preset's "search" (the decoding
chosen on dev) is saved with the trained model as the decoding that
`sat-keras caption`, `evaluate` and `export` default to. Each training stage
saves the model before anything later runs, and a rerun goes on from it.
`run_demo` is the
synthetic recipe with data and model in one folder, then sample captions.
"""

import dataclasses
import json
import os
import shutil
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
from sat_keras.models.saving import MODEL_FILE
from sat_keras.models.saving import load_captioner
from sat_keras.models.saving import save_captioner
from sat_keras.models.show_attend_tell import ShowAttendTell
from sat_keras.models.show_attend_tell import check_arguments as check_model_arguments
from sat_keras.text import Vocabulary
from sat_keras.training.averaging import epoch_weights_callback
from sat_keras.training.backup import ResumableEarlyStopping
from sat_keras.training.backup import write_json_atomically
from sat_keras.training.callbacks import CaptionMetricsCallback
from sat_keras.training.callbacks import TimeBudget
from sat_keras.training.fit import train
from sat_keras.training.rewards import CiderDReward
from sat_keras.training.runs import start_run
from sat_keras.training.settings import DataSettings
from sat_keras.training.settings import RunSettings
from sat_keras.training.settings import TrainingSettings
from sat_keras.training.warm_start import warm_start

SYNTHETIC = "synthetic"
# A run with a self-critical stage: RUN/self_critical/ is that stage's run
# directory, and start.keras there the cross-entropy model it started from.
SELF_CRITICAL_DIR = "self_critical"
START_FILE = "start.keras"
# RUN/trained.json: the stage that RUN/model.keras has finished, and the run's
# config then; a rerun of the same command goes on from there.
TRAINED_FILE = "trained.json"
CROSS_ENTROPY, SELF_CRITICAL = "cross_entropy", "self_critical"
STAGE_NAMES = {CROSS_ENTROPY: "Cross-entropy", SELF_CRITICAL: "Self-critical training"}
DEFAULT_PRESETS = {SYNTHETIC: "synthetic", "real": "flickr8k_resnet50"}


def default_preset(dataset, attention="soft"):
    """The preset a dataset trains by default, or its hard-attention twin."""
    name = DEFAULT_PRESETS[SYNTHETIC if dataset == SYNTHETIC else "real"]
    return name + ("_hard" if attention == "hard" else "")


def check_settings(data, training, encoder):
    """Raises ValueError for a setting that the data cannot use, rather than ignore it.

    The synthetic data is generated (it has no captions file, and its
    presets train a small CNN from scratch: no pretrained encoder, no cached
    features); only it has a number of images to generate. Fine-tuning the
    encoder needs images, not cached features.
    """
    if data.synthetic:
        given = [name for name, value in (
            ("captions_file (--captions-file)", data.captions_file),
            ("features_dir (--features)", data.features_dir),
            ("fine_tune_layers (--fine-tune-layers)", training.fine_tune_layers),
            ("fine_tune_from (--fine-tune-from)", training.fine_tune_from),
            ("encoder_weights (--encoder-weights)", training.encoder_weights))
            if value is not None]
        if encoder.get("name") != "small_cnn":
            given.append(f"a pretrained encoder (--encoder {encoder.get('name')})")
        if training.num_images is None:
            raise ValueError("Synthetic data needs training.num_images, the images to "
                             "generate: this preset has none.")
    else:
        given = ["num_images (--num-images)"] if training.num_images is not None else []
    if given:
        kind = "the synthetic dataset" if data.synthetic else f"--dataset {data.dataset}"
        raise ValueError(f"{', '.join(given)} does not apply to {kind}.")
    if training.fine_tune_layers and data.features_dir and not training.fine_tune_from:
        raise ValueError("Fine-tuning the encoder needs images, or features cached below "
                         "the fine-tuned layers: drop --features (features_dir), or name "
                         "the layer they were cached at (--fine-tune-from LAYER).")


def train_recipe(data, run, preset=None, overrides=None, self_critical=None):
    """Trains a preset on a dataset's train split, reports a held-out split, saves.

    Args:
        data: a `training.settings.DataSettings`: the dataset (see
            `data.datasets.read_dataset`; "synthetic" is generated in
            `data.data_dir` if missing) and its cached features.
        run: a `training.settings.RunSettings`; its `output_dir` is the run
            directory (`training.runs`): `model.keras`, the config, metrics,
            TensorBoard logs and, while training, a backup from which a
            killed run resumes when started again. `max_minutes` covers
            every stage.
        preset: a `models.presets` name (default: `default_preset(dataset)`).
        overrides: values merged into the preset (`presets.preset_settings`):
            `{"model": {"decoder": {"units": 768}, "label_smoothing": 0.1},
            "encoder": {"name": "mobilenet"}, "training": {"epochs": 3}}`.
            "training" holds a `TrainingSettings`' fields.
        self_critical: a `training.self_critical.SelfCriticalSettings`: after
            cross-entropy, fine-tune on the CIDEr-D reward of sampled
            captions (document frequencies from the training references),
            in the run directory RUN/self_critical (start.keras there is the
            cross-entropy model it started from). With a patience, its
            epochs are judged by val CIDEr-D.

    Every setting is checked before any data is read: the settings objects
    check themselves, the model's arguments build a model without weights
    (`check_model_arguments`), and a setting that does not apply to the
    dataset is an error, not ignored (`check_settings`).

    No finished training is lost: each training stage ends by saving
    RUN/model.keras (with the preset's chosen decoding) and RUN/trained.json
    (`save_stage`), before anything later can fail. Running the same command
    again goes on from there (`finished_stage`): it trains nothing more, or
    only the self-critical stage, and reports the model.

    Returns:
        dict: "model", "history", "split" (the reported split: test for the
        synthetic data, val for real data, whose folders may hold no test
        split), "records" (its records), "metrics" (greedy, whole split,
        without METEOR), "captions", "train_minutes", "model_dir".
    """
    preset = preset or default_preset(data.dataset)
    settings = preset_settings(preset, overrides)
    training = TrainingSettings.from_dict(settings["training"])
    check_settings(data, training, settings["encoder"])
    check_model_arguments(settings["model"])
    config = {"dataset": data.dataset, "data_dir": data.data_dir,
              "captions_file": data.captions_file, "features_dir": data.features_dir,
              "preset": preset, "seed": run.seed, **settings, "training": training.as_dict(),
              "self_critical": dataclasses.asdict(self_critical) if self_critical else None}
    keras.utils.set_random_seed(run.seed)
    records = _read_records(data, training, run)
    train_records, val_records = select_split(records, "train"), select_split(records, "val")
    vocabulary = Vocabulary.build((c for r in train_records for c in r.captions),
                                  min_count=training.min_count,
                                  max_size=training.max_vocabulary_size)
    run.print_fn(f"{len(train_records)} train / {len(val_records)} val images, "
                 f"vocabulary of {len(vocabulary)} tokens")
    strategy, chief = start_run(run.output_dir, config, run.strategy, run.mixed_precision)
    run = dataclasses.replace(run, strategy=strategy)
    with strategy.scope():
        image_encoder = build_encoder(
            weights=weights_argument(training.encoder_weights),
            trainable=training.fine_tunes, trainable_layers=training.fine_tune_layers,
            cache_layer=training.fine_tune_from, **settings["encoder"])
        model = ShowAttendTell.from_preset(
            preset, vocabulary=vocabulary, encoder=image_encoder,
            **{"image_size": getattr(image_encoder, "image_size", None) or training.image_size,
               **(overrides or {}).get("model", {})})
        model.build({"images": (None, model.image_size, model.image_size, 3)})
        if training.search is not None:  # the decoding the preset chose on dev
            model.choose_search(training.search)
        if training.init_from:
            copied = warm_start(model, training.init_from)
            encoder_too = copied > len(model.decoder.trainable_weights)
            parts = "Decoder and encoder" if encoder_too else "Decoder"
            run.print_fn(f"{parts} started from {training.init_from} ({copied} weights)")
        elif "warm_start" in settings:
            run.print_fn("Hard attention from scratch: on Flickr8k it captioned below soft "
                         "attention, and level with it when started from a trained soft "
                         "model (--init-from SOFT_RUN_DIR; docs/training.md).")
    stages = _Stages(data.features_dir, train_records, val_records)
    started = time.perf_counter()
    model_file = os.path.join(run.output_dir, MODEL_FILE)
    done = finished_stage(run.output_dir, config)
    if done is None:
        history = stages.train(model, training, run).history
        if chief:
            save_stage(model, run.output_dir, config, CROSS_ENTROPY)
            run.print_fn(f"Model saved to {model_file}")
        done = CROSS_ENTROPY
    else:
        going_on = ("its self-critical stage" if self_critical is not None and done == CROSS_ENTROPY
                    else "its evaluation")
        run.print_fn(f"{STAGE_NAMES[done]} done earlier ({model_file}): going on with {going_on}")
        with strategy.scope():
            model, history = load_captioner(model_file), {}
    if self_critical is not None and done == CROSS_ENTROPY:
        stage_dir = os.path.join(run.output_dir, SELF_CRITICAL_DIR)
        if chief:  # the model the stage starts from, kept beside its run
            os.makedirs(stage_dir, exist_ok=True)
            shutil.copyfile(model_file, os.path.join(stage_dir, START_FILE))
        left = (run.max_minutes - (time.perf_counter() - started) / 60
                if run.max_minutes else None)
        reward = CiderDReward([r.captions for r in train_records], model.vocabulary,
                              score_end=self_critical.score_end)
        stage_history = stages.train(
            model, dataclasses.replace(training, epochs=self_critical.epochs,
                                       learning_rate=self_critical.learning_rate),
            dataclasses.replace(run, output_dir=stage_dir, max_minutes=left,
                                keep_epoch_weights=False),
            self_critical=self_critical.objective(reward, training.max_length)).history
        history = {**history, **{f"self_critical_{k}": v for k, v in stage_history.items()}}
        if chief:
            save_stage(model, run.output_dir, config, SELF_CRITICAL)
            run.print_fn(f"Model saved to {model_file}")
    train_minutes = (time.perf_counter() - started) / 60
    split = "test" if data.synthetic else "val"  # real data dirs may hold no test split
    report_records = select_split(records, split)
    try:
        scores, outputs = evaluate_records(model, report_records,
                                           SearchSettings(max_length=training.max_length),
                                           features=stages.features if split == "val" else None)
    except Exception:
        run.print_fn(f"The trained model is saved in {model_file}: the same command again "
                     "goes on from it, without training again.")
        raise
    epochs_run = len(history.get("loss", [])) + len(history.get("self_critical_loss", []))
    trained = (f"Trained {epochs_run} epochs in {train_minutes:.1f} min" if history
               else "Trained earlier")
    run.print_fn(f"{trained}. {split} ({len(report_records)} images), free-running greedy "
                 f"captions: {format_metrics(scores)}")
    return {"model": model, "history": history, "split": split,
            "records": report_records, "metrics": scores, "captions": outputs["captions"],
            "train_minutes": train_minutes, "model_dir": run.output_dir}


def finished_stage(run_dir, config):
    """The stage a rerun of `config` goes on after, from RUN/trained.json, or None.

    `SELF_CRITICAL` or `CROSS_ENTROPY` when RUN/model.keras finished that stage
    of a run of this config: a rerun then trains nothing more, or only the
    self-critical stage. `CROSS_ENTROPY` also when only the self-critical
    settings differ and the earlier run had none (a stage added afterwards).
    None otherwise: the run trains afresh (resuming a backup if it has one).
    """
    path = os.path.join(run_dir, TRAINED_FILE)
    if not os.path.exists(path) or not os.path.exists(os.path.join(run_dir, MODEL_FILE)):
        return None
    with open(path, encoding="utf-8") as file:
        trained = json.load(file)
    config = json.loads(json.dumps(config))  # as the file holds it: lists for tuples
    if trained["config"] == config:
        return trained["stage"]
    without_stage = {**config, "self_critical": None}
    if trained["stage"] == CROSS_ENTROPY and trained["config"] == without_stage:
        return CROSS_ENTROPY
    return None


def save_stage(model, run_dir, config, stage):
    """RUN/model.keras, then RUN/trained.json: which stage of which config it finished."""
    save_captioner(model, run_dir)
    write_json_atomically(os.path.join(run_dir, TRAINED_FILE),
                          {"stage": stage, "config": config})


def _read_records(data, training, run):
    if data.synthetic:
        run.print_fn(f"Synthetic data: {training.num_images} images in {data.data_dir}")
        return generate_synthetic(data.data_dir, num_images=training.num_images, seed=run.seed,
                                  image_size=training.image_size)
    return read_dataset(data.dataset, data.data_dir, captions_file=data.captions_file,
                        missing=data.missing, report=run.print_fn)


class _Stages:
    """The stages of one `train_recipe` run (cross-entropy, then self-critical),
    each a `fit.train` call with its callbacks, on the same data."""

    def __init__(self, features_dir, train_records, val_records):
        self.features = CachedFeatures(features_dir) if features_dir else None
        self.train_records, self.val_records = train_records, val_records

    def train(self, model, training, run, self_critical=None):
        """One stage. With a patience, every epoch's greedy captions of part of val
        are scored and the best epoch is kept (`epoch_selection`)."""
        callbacks = []
        if run.keep_epoch_weights:
            callbacks.append(epoch_weights_callback(run.output_dir))
        if training.patience is not None:
            callbacks += [
                CaptionMetricsCallback(self.val_records[: training.validation_images],
                                       max_length=training.max_length,
                                       features=self.features),
                epoch_selection(training, self_critical is not None)]
        if run.max_minutes is not None:
            callbacks.append(TimeBudget(max(run.max_minutes, 0.0)))
        return train(model, self.train_records, self.val_records, training, run,
                     callbacks=callbacks, features=self.features,
                     sample_records=self.val_records[:4], self_critical=self_critical)


def epoch_selection(training, self_critical=False):
    """The early stopping of a stage with a patience, keeping its best epoch.

    Cross-entropy epochs are judged by the check images' greedy BLEU-4, and
    only from `training.select_from` (a fraction of the cosine schedule) on:
    earlier epochs, at a high learning rate, are neither kept nor counted
    towards the patience. A stage that ends before then keeps its last
    epoch. Self-critical epochs, at a constant learning rate, are judged by
    CIDEr-D from the first.
    """
    select_from = 0.0 if self_critical else training.select_from
    return ResumableEarlyStopping(
        monitor="val_cider" if self_critical else "val_bleu_4", mode="max",
        patience=training.patience, restore_best_weights=True,
        start_from_epoch=int(training.epochs * select_from))


def run_demo(output_dir="sat_keras_demo", epochs=None, num_images=None, seed=0,
             verbose="auto", print_fn=print):
    """`train_recipe` on synthetic data into `output_dir/{data,model}`, then samples."""
    training = {name: value for name, value in (("epochs", epochs), ("num_images", num_images))
                if value is not None}
    result = train_recipe(
        DataSettings(SYNTHETIC, os.path.join(output_dir, "data")),
        RunSettings(os.path.join(output_dir, "model"), seed=seed, verbose=verbose,
                    print_fn=print_fn),
        overrides={"training": training})
    print_fn("Sample test captions:")
    for record, caption in list(zip(result["records"], result["captions"]))[:3]:
        print_fn(f"  {record.image_path}: {caption!r}\n    reference: {record.captions[0]!r}")
    print_fn(f"Caption your own images with:\n"
             f"  sat-keras caption IMAGE... --model {result['model_dir']}")
    return result
