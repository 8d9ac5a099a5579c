"""Every field of every settings object refuses a wrong type and an out-of-range value
when the object is built, so a recipe refuses them before reading data or training."""

import dataclasses

import pytest

from sat_keras import recipes
from sat_keras.training.self_critical import SelfCriticalSettings
from sat_keras.training.settings import DataSettings
from sat_keras.training.settings import RunSettings
from sat_keras.training.settings import TrainingSettings

# Per class: the values every field needs besides the one tested, and per field
# (a wrong type, an out-of-range value). A boolean has no range: two wrong types.
# (SearchSettings has its table beside it: tests/decoding/test_search_settings.py.)
BAD_VALUES = {
    TrainingSettings: ({"batch_size": 8, "learning_rate": 1e-3, "epochs": 1, "max_length": 10}, {
        "batch_size": ("8", 0), "learning_rate": ("1e-3", 0.0), "epochs": (1.0, 0),
        "max_length": (True, 0), "image_size": ("64", -1), "min_count": (1.5, 0),
        "max_vocabulary_size": ("9", 0), "num_images": ([8], 0),
        "validation_images": ("all", 0), "patience": (1.5, -1), "select_from": ("half", 1.0),
        "search": ("beam 5", {"beam_size": 0}), "clip_norm": ("1", -1.0),
        "fine_tune_layers": (2.5, 0), "fine_tune_from": (3, ""),
        "batch_by_image": ("yes", 1), "encoder_lr_multiplier": ("0.1", 0.0),
        "encoder_weights": (3, ""), "jit_compile": ("no", 0), "init_from": (3, "")}),
    DataSettings: ({"dataset": "synthetic", "data_dir": "data"}, {
        "dataset": (8, "flickr9k"), "data_dir": (3, ""), "captions_file": (3, ""),
        "missing": (True, "ignore"), "features_dir": (3, "")}),
    RunSettings: ({}, {
        "output_dir": (3, ""), "seed": ("0", -1), "strategy": ("mirrored", 2),
        "mixed_precision": (16, "float16"), "backup_every_steps": ("100", 0),
        "max_minutes": ("5", 0), "keep_epoch_weights": ("yes", 1),
        "terminate_on_nan": ("yes", 0), "verbose": ("loud", 3), "print_fn": ("print", 3)}),
    SelfCriticalSettings: ({"epochs": 1}, {
        "epochs": ("1", 0), "learning_rate": ("5e-5", -1.0), "num_samples": (2.5, 0),
        "baseline": (1, "median"), "score_end": ("yes", 1), "dropout": ("no", 0)}),
}
# A field whose check needs another field set.
NEEDS = {("TrainingSettings", "encoder_lr_multiplier"): {"fine_tune_layers": 1}}


def cases():
    for cls, (base, bad) in BAD_VALUES.items():
        for name, values in bad.items():
            for kind, value in zip(("wrong type", "out of range"), values):
                yield pytest.param(cls, base, name, value, id=f"{cls.__name__}.{name}-{kind}")


@pytest.mark.parametrize("cls", BAD_VALUES)
def test_the_table_covers_every_field(cls):
    assert set(BAD_VALUES[cls][1]) == {field.name for field in dataclasses.fields(cls)}


@pytest.mark.parametrize("cls, base, name, value", cases())
def test_a_bad_value_is_refused_when_the_settings_are_built(cls, base, name, value):
    cls(**base)  # the others are fine
    needed = NEEDS.get((cls.__name__, name), {})
    with pytest.raises(ValueError, match=name):
        cls(**{**base, **needed, name: value})


@pytest.mark.parametrize("cls", BAD_VALUES)
def test_none_is_not_given(cls):
    base = BAD_VALUES[cls][0]
    optional = {field.name: None for field in dataclasses.fields(cls) if field.name not in base}
    assert cls(**base, **optional) == cls(**base)


@pytest.fixture
def nothing_runs(monkeypatch):
    """A recipe that reached its data or its training fails the test."""
    def reached(*args, **kwargs):
        raise AssertionError("the recipe went on past its settings")

    monkeypatch.setattr(recipes, "_read_records", reached)
    monkeypatch.setattr(recipes, "train", reached)


def recipe_cases():
    for name, values in BAD_VALUES[TrainingSettings][1].items():
        if name not in ("batch_by_image", "encoder_lr_multiplier"):  # need other settings
            for kind, value in zip(("wrong type", "out of range"), values):
                yield pytest.param({"training": {name: value}}, name,
                                   id=f"training.{name}-{kind}")
    for overrides, name in (({"training": {"search": {"beam_size": 0}}}, "beam_size"),
                            ({"training": {"search": {"max_length": "20"}}}, "max_length"),
                            ({"training": {"search": {"beam": 3}}}, "beam"),
                            ({"model": {"decoder": {"units": 0}}}, "units"),
                            ({"model": {"label_smoothing": 1.5}}, "label_smoothing"),
                            ({"model": {"label_smoothing": "0.1"}}, "label_smoothing"),
                            ({"model": {"decoder": {"attention": "both"}}}, "attention")):
        yield pytest.param(overrides, name, id=f"{overrides}")


@pytest.mark.parametrize("overrides, name", recipe_cases())
def test_the_recipe_refuses_a_bad_setting_before_it_reads_data(tmp_path, nothing_runs,
                                                               overrides, name):
    with pytest.raises(ValueError, match=name):
        recipes.train_recipe(DataSettings("synthetic", str(tmp_path / "data")),
                             RunSettings(str(tmp_path / "run")), overrides=overrides)
    assert not (tmp_path / "run").exists() and not (tmp_path / "data").exists()
