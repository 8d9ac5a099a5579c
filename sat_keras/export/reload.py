"""A Keras `ShowAttendTell` (or `CaptionEnsemble`) rebuilt from a SavedModel that
`export_captioner` wrote.

The export holds everything the Python model needs once: the model config
(`assets.extra/model_config.json`, without the vocabulary), the vocabulary
(`assets/vocabulary.txt`, which the serving graph reads too) and the weights
(the `model_weights` collection: float32, float16 cast back, or int8 times
its scales in `model_weight_scales`). So a model
shipped for TF Serving also captions, plots attention and fine-tunes in
Python, with its weights stored once.
"""

import json
import os

import keras
import numpy as np
import tensorflow as tf

from sat_keras.export import saved_model
from sat_keras.export.saved_model import MODEL_CONFIG_FILE
from sat_keras.export.saved_model import SCALES_COLLECTION
from sat_keras.export.saved_model import VOCABULARY_ASSET
from sat_keras.export.saved_model import WEIGHTS_COLLECTION
from sat_keras.export.saved_model import restored
from sat_keras.models.caption_ensemble import CaptionEnsemble
from sat_keras.models.captioner import Captioner
from sat_keras.models.preset_loaders import PresetLoader
from sat_keras.models.preset_loaders import register_preset_loader

SAVED_MODEL_FILE = "saved_model.pb"


def export_version_directory(path):
    """The version directory of an export given itself or its base (the newest version).

    Returns None when `path` is neither.
    """
    if not os.path.isdir(path):
        return None
    if os.path.exists(os.path.join(path, SAVED_MODEL_FILE)):
        return path
    versions = [name for name in os.listdir(path) if name.isdigit()
                and os.path.exists(os.path.join(path, name, SAVED_MODEL_FILE))]
    return os.path.join(path, max(versions, key=int)) if versions else None


def read_export_config(path):
    """The settings an export was written with (`export_config.json`) as a dict."""
    return saved_model.read_export_config(_version_directory(path))


def _version_directory(path):
    version_dir = export_version_directory(path)
    if version_dir is None:
        raise FileNotFoundError(f"No SavedModel in {path} (nor in a numbered version "
                                "directory under it).")
    return version_dir


def load_exported_captioner(path, cls=Captioner):
    """The captioner of an export (a version directory or its base): a
    `ShowAttendTell`, or the `CaptionEnsemble` an ensemble's export holds.

    Args:
        cls: the class the caller needs; another raises `ValueError`.

    Returns:
        The model, built, with the export's weights (float32) and the
        export's decoding (`export_config.json`'s "search") as its own
        `search_settings`.
    """
    version_dir = _version_directory(path)
    extra = os.path.join(version_dir, "assets.extra")
    config_path = os.path.join(extra, MODEL_CONFIG_FILE)
    if not os.path.exists(config_path):
        raise ValueError(f"{version_dir} was exported without {MODEL_CONFIG_FILE} (by "
                         "sat_keras 0.2 or earlier): TF Serving serves it, but Python cannot "
                         "rebuild its model. Export it again from its .keras model.")
    with open(config_path, encoding="utf-8") as file:
        serialized = json.load(file)
    with open(os.path.join(version_dir, "assets", VOCABULARY_ASSET), encoding="utf-8") as file:
        tokens = file.read().split("\n")[:-1]
    model = _rebuilt(serialized, tokens)
    if not isinstance(model, cls):
        raise ValueError(f"{version_dir} holds a {type(model).__name__}, not a {cls.__name__}: "
                         f"{type(model).__name__}.from_preset or Captioner.from_preset "
                         "loads it.")
    _assign_stored_weights(model, tf.saved_model.load(version_dir), version_dir)
    model.choose_search(saved_model.export_search(saved_model.read_export_config(version_dir)))
    return model


def _rebuilt(serialized, tokens):
    """The built model of `model_config.json`, with fresh weights."""
    if serialized.get("class_name") == "CaptionEnsemble":
        return CaptionEnsemble([_rebuilt(member, tokens) for member in serialized["models"]],
                               encoder_owners=serialized["encoder_owners"])
    serialized["config"]["vocabulary"] = tokens
    model = keras.saving.deserialize_keras_object(serialized)
    size = model.image_size
    model.build({"images": (None, size, size, 3)})
    return model


def _assign_stored_weights(model, saved, version_dir):
    """The stored weights into `model.variables`; an ensemble's shared encoders copied
    from the one stored."""
    stored = getattr(saved, WEIGHTS_COLLECTION)
    scales = getattr(saved, SCALES_COLLECTION, None) or [None] * len(stored)
    variables = model.variables
    if len(stored) != len(variables) or len(scales) != len(stored):
        raise ValueError(f"{version_dir} stores {len(stored)} weights ({len(scales)} scales); "
                         f"its model has {len(variables)}.")
    for variable, value, scale in zip(variables, stored, scales):
        value = np.asarray(restored(value, scale, variable.dtype))
        if value.shape != tuple(variable.shape):
            raise ValueError(f"{version_dir}: the stored {variable.path} has shape "
                             f"{value.shape}, the model's {tuple(variable.shape)}.")
        variable.assign(value)
    if isinstance(model, CaptionEnsemble):
        for member, owner in zip(model.models, model.encoder_owners()):
            source = model.models[owner].encoder
            if source is not member.encoder:
                for target, value in zip(member.encoder.variables, source.variables):
                    target.assign(value)


@register_preset_loader
class SavedModelLoader(PresetLoader):
    """A SavedModel written by `export_captioner`: its base or a version directory."""

    @classmethod
    def matches(cls, handle):
        return export_version_directory(handle) is not None

    def load(self, cls, load_weights=True, **overrides):
        self.refuse_overrides(load_weights, overrides)
        return load_exported_captioner(self.handle, cls)
