"""The training loop and the recipe as functions (the CLI and demo call them)."""

import dataclasses
import inspect
import json
import os

import keras
import numpy as np
import pytest

from sat_keras import recipes
from sat_keras.data.records import select_split
from sat_keras.data.synthetic import generate_synthetic
from sat_keras.decoding import SearchSettings
from sat_keras.models import presets
from sat_keras.models.presets import preset_settings
from sat_keras.models.saving import load_captioner
from sat_keras.models.show_attend_tell import ShowAttendTell
from sat_keras.recipes import check_settings
from sat_keras.recipes import default_preset
from sat_keras.recipes import epoch_selection
from sat_keras.recipes import train_recipe
from sat_keras.text import Vocabulary
from sat_keras.training.fit import train
from sat_keras.training.settings import DataSettings
from sat_keras.training.settings import RunSettings
from sat_keras.training.settings import TrainingSettings


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    return generate_synthetic(str(tmp_path_factory.mktemp("data")), num_images=60, seed=0)


def test_train_compiles_adam_with_cosine_decay_and_fits_the_planned_steps(records):
    train_records = select_split(records, "train")
    vocabulary = Vocabulary.build(c for r in train_records for c in r.captions)
    keras.utils.set_random_seed(0)
    model = ShowAttendTell.from_preset("synthetic", vocabulary=vocabulary, decoder={
        "units": 16, "embedding_dim": 8, "attention_dim": 8})
    settings = TrainingSettings(batch_size=16, learning_rate=0.01, epochs=2, max_length=20,
                                image_size=64)
    history = train(model, train_records, select_split(records, "val"), settings,
                    RunSettings(verbose=0))
    assert len(history.history["loss"]) == 2 and "val_loss" in history.history
    assert history.history["loss"][1] < history.history["loss"][0]
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    schedule = model.optimizer._learning_rate  # the schedule the optimizer was given
    steps = int(model.optimizer.iterations)
    assert steps > 0
    # Cosine decay from 0.01 down to alpha = 0.05 of it over the planned steps.
    assert float(schedule(0)) == pytest.approx(0.01)
    assert float(schedule(steps)) == pytest.approx(0.01 * 0.05, rel=1e-3)


def test_per_image_batches_fit_their_planned_steps(records):
    train_records = select_split(records, "train")
    vocabulary = Vocabulary.build(c for r in train_records for c in r.captions)
    keras.utils.set_random_seed(0)
    model = ShowAttendTell.from_preset("synthetic", vocabulary=vocabulary, decoder={
        "units": 16, "embedding_dim": 8, "attention_dim": 8})
    settings = TrainingSettings(batch_size=16, learning_rate=0.01, epochs=2, max_length=20,
                                image_size=64, batch_by_image=True)
    history = train(model, train_records, select_split(records, "val"), settings,
                    RunSettings(verbose=0))
    per_image = max(len(r.captions) for r in train_records)
    assert int(model.optimizer.iterations) == 2 * (len(train_records) // (16 // per_image))
    assert history.history["loss"][1] < history.history["loss"][0]
    assert "val_loss" in history.history


def test_the_recipe_trains_reports_and_saves(tmp_path, records, monkeypatch):
    search = {"beam_size": 2, "length_penalty": 1.0, "suppress_unknown": True}
    monkeypatch.setitem(presets._PRESETS["synthetic"]["training"], "search", search)
    lines = []
    result = train_recipe(
        DataSettings("synthetic", str(tmp_path / "data")),
        RunSettings(str(tmp_path / "run"), verbose=0, print_fn=lines.append,
                    keep_epoch_weights=True),
        overrides={"training": {"num_images": 40, "epochs": 2, "batch_size": 8,
                                "patience": 1, "select_from": 0.5},
                   "model": {"doubly_stochastic_weight": 0.25, "label_smoothing": 0.1,
                             "decoder": {"annotation_dropout": 0.3, "embedding_dropout": 0.2,
                                         "units": 24, "annotation_projection": 16}}})
    assert result["split"] == "test" and 0.0 <= result["metrics"]["bleu_4"] <= 1.0
    assert len(result["captions"]) == len(result["records"])
    assert any(line.startswith("Trained 2 epochs") for line in lines)
    loaded = load_captioner(str(tmp_path / "run"))
    assert preset_settings("synthetic")["model"]["decoder"]["units"] != 24
    decoder = loaded.decoder
    assert (decoder.units, decoder.annotation_projection) == (24, 16)  # the preset's overridden
    assert decoder.embedding_dim == preset_settings("synthetic")["model"]["decoder"][
        "embedding_dim"]  # ... and the rest of its decoder kept
    assert loaded.doubly_stochastic_weight == 0.25  # overrides the preset's 1.0
    assert loaded.label_smoothing == 0.1
    assert (decoder.annotation_dropout, decoder.embedding_dropout) == (0.3, 0.2)
    # Both epochs were scored, but only the second half of the schedule (epoch 2)
    # could be kept. Each epoch's weights, for checkpoint averaging: the last is
    # the trained model's.
    assert len(result["history"]["val_bleu_4"]) == 2
    assert sorted(os.listdir(tmp_path / "run" / "epochs")) == [
        "epoch_01.weights.h5", "epoch_02.weights.h5"]
    last = load_captioner(str(tmp_path / "run"))
    last.load_weights(str(tmp_path / "run" / "epochs" / "epoch_02.weights.h5"))
    for saved, trained in zip(last.weights, result["model"].weights):
        np.testing.assert_array_equal(saved.numpy(), trained.numpy())
    # The preset's chosen decoding is the saved model's own.
    assert loaded.search_settings == SearchSettings(beam_size=2, length_penalty=1.0,
                                                    suppress_unknown=True)
    with open(tmp_path / "run" / "config.json") as file:
        config = json.load(file)
    assert config["preset"] == "synthetic"
    assert config["model"]["doubly_stochastic_weight"] == 0.25
    assert config["model"]["label_smoothing"] == 0.1
    assert config["encoder"] == preset_settings("synthetic")["encoder"]
    assert config["training"]["epochs"] == 2 and config["training"]["clip_norm"] is None
    images = np.zeros((1, 64, 64, 3), "uint8")
    assert (loaded.caption(images=images)["captions"]
            == result["model"].caption(images=images)["captions"])
    # A hard-attention run can start from this soft run's decoder (a warm start):
    # at a vanishing learning rate its decoder ends where the soft one was.
    hard = train_recipe(
        DataSettings("synthetic", str(tmp_path / "data")),
        RunSettings(str(tmp_path / "hard"), verbose=0, print_fn=lines.append),
        preset="synthetic_hard",
        overrides={"training": {"num_images": 40, "epochs": 1, "batch_size": 8,
                                "learning_rate": 1e-12, "init_from": str(tmp_path / "run")},
                   "model": {"decoder": {"units": 24, "annotation_projection": 16}}})["model"]
    assert hard.decoder.attention == "hard"
    # the small CNN trains with the decoder, so it starts from the soft run's too
    assert any(line.startswith(f"Decoder and encoder started from {tmp_path / 'run'}")
               for line in lines)
    for started, soft in zip(hard.decoder.trainable_weights + hard.encoder.weights,
                             loaded.decoder.trainable_weights + loaded.encoder.weights):
        np.testing.assert_allclose(started.numpy(), soft.numpy(), atol=1e-6, err_msg=soft.path)


def test_a_failure_after_training_keeps_the_model_and_a_rerun_does_not_train_again(
        tmp_path, monkeypatch):
    data, lines = DataSettings("synthetic", str(tmp_path / "data")), []
    run = RunSettings(str(tmp_path / "run"), verbose=0, print_fn=lines.append)
    overrides = {"training": {"num_images": 40, "epochs": 1, "batch_size": 8},
                 "model": {"decoder": {"units": 16}}}

    def failing_evaluation(*args, **kwargs):
        raise RuntimeError("the evaluation failed")

    monkeypatch.setattr(recipes, "evaluate_records", failing_evaluation)
    with pytest.raises(RuntimeError, match="the evaluation failed"):
        train_recipe(data, run, overrides=overrides)
    model_file = tmp_path / "run" / "model.keras"
    assert model_file.exists() and (tmp_path / "run" / "trained.json").exists()
    assert any(f"The trained model is saved in {model_file}" in line for line in lines)
    trained = load_captioner(str(model_file))
    assert trained.search_settings == SearchSettings(beam_size=3)  # the preset's decoding

    monkeypatch.undo()
    def training_again(*args, **kwargs):
        raise AssertionError("training again")

    monkeypatch.setattr(recipes, "train", training_again)
    lines.clear()
    result = train_recipe(data, run, overrides=overrides)  # the same command: no training
    assert lines[-2] == (f"Cross-entropy done earlier ({model_file}): going on with its "
                         "evaluation")
    assert lines[-1].startswith("Trained earlier. test (")
    for again, saved in zip(result["model"].weights, trained.weights):
        np.testing.assert_array_equal(again.numpy(), saved.numpy())

    changed = {**overrides, "training": {**overrides["training"], "epochs": 2}}
    with pytest.raises(AssertionError, match="training again"):
        train_recipe(data, run, overrides=changed)  # another command trains afresh


def test_epochs_are_compared_from_the_presets_share_of_the_schedule_on():
    settings = TrainingSettings.from_dict(preset_settings("flickr8k_resnet50")["training"])
    assert (settings.select_from, settings.epochs) == (0.5, 12)
    stopping = epoch_selection(settings)
    assert (stopping.monitor, stopping.patience, stopping.start_from_epoch) == (
        "val_bleu_4", 3, 6)  # epochs 7 to 12, counted from 1
    assert stopping.restore_best_weights
    self_critical = epoch_selection(dataclasses.replace(settings, epochs=4),
                                    self_critical=True)  # a constant rate
    assert (self_critical.monitor, self_critical.start_from_epoch) == ("val_cider", 0)
    all_epochs = dataclasses.replace(settings, select_from=0.0)
    assert epoch_selection(all_epochs).start_from_epoch == 0
    with pytest.raises(ValueError, match="select_from must be"):
        dataclasses.replace(settings, select_from=1.0)


def test_training_settings_are_checked_and_unknown_names_refused():
    values = preset_settings("synthetic")["training"]
    assert TrainingSettings.from_dict(values).num_images == values["num_images"]
    with pytest.raises(ValueError, match=r"Unknown training settings \['epoch'\]"):
        TrainingSettings.from_dict({**values, "epoch": 3})
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        TrainingSettings.from_dict({**values, "batch_size": 0})
    with pytest.raises(ValueError, match="applies only when fine-tuning"):
        TrainingSettings.from_dict({**values, "encoder_lr_multiplier": 0.5})
    staged = TrainingSettings.from_dict({**values, "fine_tune_from": "conv4_block6_out",
                                         "encoder_lr_multiplier": 0.5})
    assert staged.fine_tunes and staged.encoder_multiplier == 0.5
    tuned = TrainingSettings.from_dict({**values, "fine_tune_layers": 2})
    assert tuned.encoder_multiplier == 0.1  # the default multiplier when fine-tuning
    assert TrainingSettings.from_dict(values).encoder_multiplier is None  # one rate
    with pytest.raises(dataclasses.FrozenInstanceError):
        tuned.epochs = 3


def test_default_presets_and_the_settings_each_dataset_takes():
    assert default_preset("synthetic") == "synthetic"
    assert default_preset("flickr8k", "hard") == "flickr8k_resnet50_hard"
    synthetic = preset_settings("synthetic")
    training = TrainingSettings.from_dict(synthetic["training"])
    real = TrainingSettings.from_dict(preset_settings("flickr8k_resnet50")["training"])
    check_settings(DataSettings("synthetic", "D"), training, synthetic["encoder"])
    check_settings(DataSettings("flickr8k", "D", features_dir="F"), real,
                   {"name": "mobilenet"})
    with pytest.raises(ValueError, match="--features"):
        check_settings(DataSettings("synthetic", "D", features_dir="F"), training,
                       synthetic["encoder"])
    with pytest.raises(ValueError, match=r"a pretrained encoder \(--encoder resnet50\)"):
        check_settings(DataSettings("synthetic", "D"), training, {"name": "resnet50"})
    with pytest.raises(ValueError, match="--num-images"):
        check_settings(DataSettings("coco", "D"), dataclasses.replace(real, num_images=10),
                       {"name": "resnet50"})
    with pytest.raises(ValueError, match="needs images, or features cached below"):
        check_settings(DataSettings("csv", "D", features_dir="F"),
                       dataclasses.replace(real, fine_tune_layers=2), {"name": "resnet50"})
    check_settings(DataSettings("csv", "D", features_dir="F"), dataclasses.replace(
        real, fine_tune_layers=2, fine_tune_from="conv4_block6_out"), {"name": "resnet50"})
    with pytest.raises(ValueError, match="fine_tune_from"):
        check_settings(DataSettings("synthetic", "D"),
                       dataclasses.replace(training, fine_tune_from="conv_1"),
                       synthetic["encoder"])


def test_the_training_path_takes_settings_objects_not_dozens_of_keywords():
    """The recipe takes a preset and settings objects; nothing on its way to `fit`
    relays more than 10 values (a setting is added to its object, not to each call)."""
    from sat_keras import cli
    from sat_keras import recipes

    assert len(inspect.signature(train_recipe).parameters) <= 8
    for function in (train, recipes._Stages.train, recipes.run_demo, cli._train):
        assert len(inspect.signature(function).parameters) <= 10, function.__qualname__
