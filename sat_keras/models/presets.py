"""Presets: named architectures with their training settings, and preset directories.

A built-in name (`preset_names()`) gives a documented architecture: the
model's arguments, its encoder, and the settings the recipes train it with,
kept apart from the model's own config (`preset_settings`). A preset
directory, written by `ShowAttendTell.save_to_preset`, holds one model:

    PRESET/config.json            the model's Keras config, without its vocabulary
    PRESET/assets/vocabulary.json its vocabulary (the only copy)
    PRESET/model.weights.h5       its weights
    PRESET/metadata.json          the preset format and the versions that wrote it

`ShowAttendTell.from_preset(handle)` reads either, and the other formats,
through the loader registry of `models.preset_loaders`. A built-in name
gives the architecture, built for the vocabulary the caller passes; the
trained captioners that ship are registered names there ("flickr8k").
"""

import copy
import json
import os

import keras

from sat_keras.text import Vocabulary
from sat_keras.version import __version__

# Each preset: "model" (ShowAttendTell's arguments, "decoder" among them the
# arguments of its `AttentiveLSTMCell`), "encoder" (the arguments
# of `encoders.build_encoder`: a name, and for the small CNN its filters) and
# "training" (the recipe's settings, never passed to the model; "search", where
# given, is the decoding chosen on dev, which the trained model is saved with).
# A hard-attention twin of a real-data preset also has "warm_start": the
# training settings that replace the preset's when its decoder starts from a
# trained soft model (training.init_from, `sat-keras train --init-from`).

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
METADATA_FILE = "metadata.json"
VOCABULARY_ASSET = os.path.join("assets", "vocabulary.json")
FORMAT = "sat_keras.preset"

_PRESETS = {
    # The built-in synthetic data on a laptop CPU: `sat-keras demo`.
    "synthetic": {
        "model": {"decoder": {"embedding_dim": 64, "units": 128, "attention_dim": 64,
                              "dropout": 0.1},
                  "doubly_stochastic_weight": 1.0},
        "encoder": {"name": "small_cnn", "filters": [16, 32, 64]},
        "training": {"batch_size": 64, "learning_rate": 3e-3, "epochs": 9,
                     "image_size": 64, "max_length": 20, "num_images": 8000,
                     # The shipped `shapes` export's decoding: a beam of 3, whose
                     # three best captions the caption page lists.
                     "search": {"beam_size": 3}},
    },
    # Flickr8k on cached ResNet50 conv5_block3_out features (7x7x2048) on a CPU,
    # the recipe of the shipped saved_models/flickr8k: `examples/train_flickr8k.py`
    # and `sat-keras train --dataset flickr8k`. 12 epochs: about an hour on 2 cores.
    "flickr8k_resnet50": {
        "model": {"decoder": {"embedding_dim": 256, "units": 512, "attention_dim": 256,
                              "dropout": 0.5},
                  "doubly_stochastic_weight": 1.0},
        "encoder": {"name": "resnet50"},
        "training": {"batch_size": 64, "learning_rate": 1e-3, "epochs": 12,
                     "image_size": 224, "max_length": 22, "min_count": 5,
                     "validation_images": 250, "patience": 3,
                     # Epochs are compared from half the cosine schedule on: with
                     # patience 3 from the start, one ResNet50 run stopped after epoch
                     # 8 of 12, keeping epoch 5 (dev CIDEr-D 0.503; its epoch 9: 0.541).
                     "select_from": 0.5,
                     # Dev (docs/results/flickr8k.md): of greedy search and beams
                     # 3, 5, 7, 10 with length penalties 0 to 2, beam 5 with penalty 1
                     # gave the soft model its best BLEU-4 and CIDEr-D, and the hard
                     # one better scores than greedy search and beam 3.
                     "search": {"beam_size": 5, "length_penalty": 1.0,
                                "suppress_unknown": True}},
    },
    # The authors' Flickr8k settings (arctic-captions evaluate_flickr8k.py):
    # word embedding 512, LSTM 1800, 512-d annotations, lambda 1, gating
    # scalar, deep output with prev2out and ctx2out, dropout, a 2-layer
    # initial-state MLP (n_layers_init=2), batch 64, a 10,000-word vocabulary.
    # Not reproduced: their 2-layer attention MLP (n_layers_att=2; ours has one).
    "paper_soft": {
        "model": {"decoder": {"embedding_dim": 512, "units": 1800, "attention_dim": 512,
                              "dropout": 0.5, "initial_state_layers": 2},
                  "doubly_stochastic_weight": 1.0},
        "encoder": {"name": "vgg19"},
        "training": {"batch_size": 64, "learning_rate": 1e-3, "epochs": 20,
                     "image_size": 224, "max_length": 30, "min_count": 1,
                     "max_vocabulary_size": 10000, "validation_images": 1000,
                     "patience": 5},
    },
}


# The same decoder and schedule on cached MobileNet conv_pw_11 features (14x14x512, the
# shape of the paper's VGG conv5_4): a smaller, faster encoder, trained for 30 epochs.
_PRESETS["flickr8k_mobilenet"] = copy.deepcopy(_PRESETS["flickr8k_resnet50"])
_PRESETS["flickr8k_mobilenet"]["encoder"] = {"name": "mobilenet"}
_PRESETS["flickr8k_mobilenet"]["training"]["epochs"] = 30

# The second stage of fine-tuning ResNet50's conv5 stage (`sat-keras train
# --fine-tune-from conv4_block6_out` on features cached at conv4_block6_out,
# examples/train_flickr8k.py --fine-tune-epochs): started from a model trained
# on the frozen encoder (--init-from), the decoder and conv5 train together,
# conv5 at a tenth of the decoder's learning rate, in batches of whole images.
FINE_TUNE_STAGE = {"epochs": 2, "learning_rate": 2e-4, "select_from": 0.0,
                   "fine_tune_from": "conv4_block6_out", "encoder_lr_multiplier": 0.1,
                   "batch_by_image": True}
FINE_TUNE_FEATURES = "resnet50_conv4"  # the encoder whose features that stage reads

# Hard-attention twins: the same sets with attention="hard" and without the
# doubly stochastic penalty, which belongs to soft attention (sec. 4.2.1)
# and is not part of hard attention's objective (sec. 4.1).
# On Flickr8k, hard attention from scratch captioned far below soft attention
# (dev BLEU-4 0.1956 against 0.2128), and level with it when started from the
# soft model: 3 epochs at a peak learning rate of 2e-4, each compared (0.2134
# against 0.2146; docs/results/flickr8k.md, "Warm start from the soft model").
WARM_START = {"epochs": 3, "learning_rate": 2e-4, "select_from": 0.0}
for _name in ("synthetic", "flickr8k_resnet50", "flickr8k_mobilenet", "paper_soft"):
    _hard = copy.deepcopy(_PRESETS[_name])
    _hard["model"]["decoder"]["attention"] = "hard"
    _hard["model"]["doubly_stochastic_weight"] = 0.0
    if _name != "synthetic":
        _hard["warm_start"] = dict(WARM_START)
    _PRESETS[_name.replace("_soft", "") + "_hard"] = _hard


def preset_names():
    return sorted(_PRESETS)


def preset_settings(name, overrides=None):
    """A deep copy of a built-in preset: {"model": ..., "encoder": ..., "training": ...},
    with `overrides` (the same nesting) merged in by `merge_config`:
    `{"model": {"decoder": {"units": 768}}, "training": {"epochs": 3}}`.

    When the training starts from a trained model (`"init_from"` in the
    training overrides) and the preset has "warm_start" settings, those
    replace the preset's training settings first, and the overrides still win.
    """
    if name not in _PRESETS:
        raise ValueError(f"Unknown preset {name!r}. Available: {preset_names()}")
    overrides = overrides or {}
    unknown = sorted(set(overrides) - set(_PRESETS[name]))
    if unknown:
        raise ValueError(f"Unknown preset sections {unknown}: a preset has "
                         f"{sorted(_PRESETS[name])}.")
    settings = copy.deepcopy(_PRESETS[name])
    if overrides.get("training", {}).get("init_from") and "warm_start" in settings:
        settings["training"].update(settings["warm_start"])
    return merge_config(settings, overrides)


def is_preset_directory(path):
    """A directory written by `save_preset` (a run directory has a config.json too)."""
    return all(os.path.isfile(os.path.join(path, name)) for name in (CONFIG_FILE, WEIGHTS_FILE))


def save_preset(model, directory):
    """Writes `model` as a preset directory (see the module docstring)."""
    if not model.built:
        raise ValueError("The model has no weights yet: train it or build it before saving.")
    os.makedirs(os.path.join(directory, "assets"), exist_ok=True)
    config = keras.saving.serialize_keras_object(model)
    del config["config"]["vocabulary"]  # stored once, as the asset
    with open(os.path.join(directory, CONFIG_FILE), "w", encoding="utf-8") as file:
        json.dump(config, file, indent=1)
    model.vocabulary.save(os.path.join(directory, VOCABULARY_ASSET))
    model.save_weights(os.path.join(directory, WEIGHTS_FILE), overwrite=True)
    with open(os.path.join(directory, METADATA_FILE), "w", encoding="utf-8") as file:
        json.dump({"format": FORMAT, "sat_keras_version": __version__,
                   "keras_version": keras.__version__}, file, indent=1)
    return directory


def load_preset(directory, load_weights=True, **overrides):
    """The model a preset directory holds; `overrides` merge into its config
    (`merge_config`: `decoder={"units": 768}` changes one decoder argument)."""
    with open(os.path.join(directory, CONFIG_FILE), encoding="utf-8") as file:
        config = json.load(file)
    config["config"]["vocabulary"] = Vocabulary.load(
        os.path.join(directory, VOCABULARY_ASSET)).tokens
    config["config"] = merge_config(config["config"], overrides)
    model = keras.saving.deserialize_keras_object(config)
    if load_weights:
        model.load_weights(os.path.join(directory, WEIGHTS_FILE))
    return model


def merge_config(config, overrides):
    """`config` with `overrides` merged in: a dict value merges into the nested
    config (a serialized Keras object's "config"), other values replace, and
    None is not given (the config keeps its value)."""
    merged = dict(config)
    for key, value in overrides.items():
        if value is None:
            continue
        nested = merged.get(key)
        if isinstance(value, dict) and isinstance(nested, dict):
            if "class_name" in nested and "config" in nested:
                merged[key] = {**nested, "config": merge_config(nested["config"], value)}
            else:
                merged[key] = merge_config(nested, value)
        else:
            merged[key] = value
    return merged
