"""Presets: built-in names (architecture and training settings) and preset directories."""

import json
import os

import numpy as np
import pytest

from sat_keras import ShowAttendTell
from sat_keras import SmallCNNEncoder
from sat_keras.models import presets


def test_overrides_merge_into_the_preset_and_each_call_gets_a_fresh_copy():
    settings = presets.preset_settings(
        "synthetic", {"training": {"epochs": 2}, "model": {"decoder": {"units": 24}}})
    fresh = presets.preset_settings("synthetic")
    assert settings["training"]["epochs"] == 2 and fresh["training"]["epochs"] != 2
    assert settings["training"]["batch_size"] == fresh["training"]["batch_size"]
    assert settings["model"]["decoder"] == {**fresh["model"]["decoder"], "units": 24}
    with pytest.raises(ValueError, match=r"Unknown preset sections \['trainnig'\]"):
        presets.preset_settings("synthetic", {"trainnig": {"epochs": 2}})


def test_hard_twins_and_unknown_names():
    assert presets.preset_settings("synthetic_hard")["model"]["decoder"]["attention"] == "hard"
    for name in ("synthetic", "flickr8k_resnet50", "flickr8k_mobilenet", "paper_soft"):
        hard = presets.preset_settings(name.replace("_soft", "") + "_hard")["model"]
        assert presets.preset_settings(name)["model"]["doubly_stochastic_weight"] == 1.0
        assert hard["doubly_stochastic_weight"] == 0.0  # sec. 4.2.1's term is soft attention's
    assert "paper_hard" in presets.preset_names()
    with pytest.raises(ValueError, match="Unknown preset"):
        presets.preset_settings("nope")


def test_hard_twins_started_from_a_soft_model_take_the_warm_start_schedule():
    start = {"training": {"init_from": "runs/soft"}}
    for name in ("flickr8k_resnet50_hard", "flickr8k_mobilenet_hard", "paper_hard"):
        scratch = presets.preset_settings(name)["training"]
        warm = presets.preset_settings(name, start)["training"]
        assert (warm["epochs"], warm["learning_rate"], warm["select_from"]) == (3, 2e-4, 0.0)
        assert scratch["epochs"] > 3 and scratch["learning_rate"] == 1e-3
        assert warm["batch_size"] == scratch["batch_size"]  # the rest is the preset's
        chosen = presets.preset_settings(
            name, {"training": {"init_from": "runs/soft", "epochs": 5}})["training"]
        assert (chosen["epochs"], chosen["learning_rate"]) == (5, 2e-4)  # overrides win
    # Soft presets, and the synthetic twin, train as they are from any start.
    for name in ("flickr8k_resnet50", "synthetic_hard"):
        assert presets.preset_settings(name, start)["training"] == {
            **presets.preset_settings(name)["training"], "init_from": "runs/soft"}


def test_a_name_gives_its_architecture_for_the_vocabulary_given(vocabulary):
    model = ShowAttendTell.from_preset("synthetic", vocabulary=vocabulary)
    expected = presets.preset_settings("synthetic")
    assert isinstance(model.encoder, SmallCNNEncoder)
    assert model.encoder.filters == tuple(expected["encoder"]["filters"])
    assert model.image_size == expected["training"]["image_size"]
    assert model.doubly_stochastic_weight == expected["model"]["doubly_stochastic_weight"]
    for name, value in expected["model"]["decoder"].items():
        assert getattr(model.decoder, name) == value, name
    assert model.vocabulary == vocabulary
    changed = ShowAttendTell.from_preset("synthetic", vocabulary=vocabulary,
                                         decoder={"units": 32})
    assert changed.decoder.units == 32  # merged into the preset's decoder ...
    assert changed.decoder.embedding_dim == expected["model"]["decoder"]["embedding_dim"]
    with pytest.warns(DeprecationWarning, match="pass decoder="):  # ... as the 0.2 keyword is
        assert ShowAttendTell.from_preset("synthetic", vocabulary=vocabulary,
                                          units=32).decoder.units == 32


def test_a_name_with_a_pretrained_encoder(vocabulary):
    model = ShowAttendTell.from_preset("flickr8k_mobilenet", vocabulary=vocabulary,
                                       encoder_weights=None, decoder={"units": 16})
    assert model.encoder.backbone == "mobilenet" and model.encoder.weights_source is None
    assert model.image_size == 224 and model.decoder.units == 16
    assert model.decoder.embedding_dim == presets.preset_settings(
        "flickr8k_mobilenet")["model"]["decoder"]["embedding_dim"]


def test_names_without_weights_need_a_vocabulary_and_unknown_presets_are_refused(tmp_path):
    with pytest.raises(ValueError, match="ships no trained weights.*vocabulary="):
        ShowAttendTell.from_preset("synthetic")
    with pytest.raises(ValueError, match="Unknown preset 'nope'.*save_to_preset"):
        ShowAttendTell.from_preset("nope")
    with pytest.raises(ValueError, match="Unknown preset"):
        ShowAttendTell.from_preset(str(tmp_path))  # a directory without config.json


def test_save_to_preset_and_from_preset_give_identical_captions(make_model, tmp_path):
    model = make_model(with_encoder=True)
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    model.build({"images": (None, 32, 32, 3)})
    directory = model.save_to_preset(str(tmp_path / "preset"))
    assert sorted(os.listdir(directory)) == ["assets", "config.json", "metadata.json",
                                             "model.weights.h5"]
    with open(os.path.join(directory, "config.json")) as file:
        assert "vocabulary" not in json.load(file)["config"]  # stored once, as the asset
    loaded = ShowAttendTell.from_preset(directory)
    assert loaded.vocabulary == model.vocabulary
    expected = model.caption(images=images, beam_size=2, max_length=6)
    found = loaded.caption(images=images, beam_size=2, max_length=6)
    assert found["captions"] == expected["captions"]
    np.testing.assert_allclose(found["scores"], expected["scores"], rtol=1e-6)
    fresh = ShowAttendTell.from_preset(directory, load_weights=False)
    assert not np.allclose(fresh.caption(images=images)["scores"],
                           model.caption(images=images)["scores"])
