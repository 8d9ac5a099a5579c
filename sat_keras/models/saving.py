"""Saving and loading a trained captioner: a directory holding `model.keras`.

`load_captioner(handle)` loads any preset handle, as
`ShowAttendTell.from_preset` does (`models.preset_loaders`). The loader of
`.keras` files registered here also reads model files written by sat_keras
0.1, whose decoder's weights sat under the attribute `cell` (now `decoder`,
with the decoder's arguments nested in the config): the file is upgraded in
a temporary copy, the original left as it is.
"""

import json
import os
import shutil
import tempfile
import zipfile

import h5py  # a Keras dependency: the weights inside a .keras file
import keras

from sat_keras.models.captioner import Captioner
from sat_keras.models.preset_loaders import PresetLoader
from sat_keras.models.preset_loaders import register_preset_loader

MODEL_FILE = "model.keras"
_WEIGHTS = "model.weights.h5"


def save_captioner(model, directory, filename=MODEL_FILE):
    """Writes `model.keras` (its config holds the vocabulary) into `directory`."""
    if not model.built:
        raise ValueError("The model has no weights yet: train it or call it once before saving.")
    os.makedirs(directory, exist_ok=True)
    partial = os.path.join(directory, f".partial-{os.getpid()}.keras")
    model.save(partial)  # then renamed: a killed save never leaves half a model
    os.replace(partial, os.path.join(directory, filename))
    return directory


def load_captioner(handle):
    """The model a preset handle names: a directory written by `save_captioner`
    (or `sat-keras train`), a .keras file, an export, a preset directory, a
    registered name ("flickr8k") or an archive URL (`models.preset_loaders`).
    A `ShowAttendTell`, or the `CaptionEnsemble` of an ensemble's export."""
    return Captioner.from_preset(handle)


@register_preset_loader
class KerasFileLoader(PresetLoader):
    """A .keras file, or a directory holding `model.keras`; 0.1 files upgraded."""

    @classmethod
    def matches(cls, handle):
        path = cls.model_file(handle)
        return os.path.isfile(path) and (path.endswith(".keras") or zipfile.is_zipfile(path))

    @staticmethod
    def model_file(handle):
        return os.path.join(handle, MODEL_FILE) if os.path.isdir(handle) else handle

    def load(self, cls, load_weights=True, **overrides):
        self.refuse_overrides(load_weights, overrides)
        model_path = self.model_file(self.handle)
        folder = tempfile.mkdtemp()
        try:
            model = keras.models.load_model(_upgraded(model_path, folder) or model_path)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        if not isinstance(model, cls):
            raise ValueError(f"{model_path} holds a {type(model).__name__}, not a "
                             f"{cls.__name__}: Captioner.from_preset loads it.")
        return model


def _upgraded(model_path, folder):
    """A 0.1 model file rewritten in the present layout inside `folder`, or None."""
    if not zipfile.is_zipfile(model_path):
        return None
    with zipfile.ZipFile(model_path) as archive:
        names = archive.namelist()
        if "config.json" not in names or _WEIGHTS not in names:
            return None
        config = json.loads(archive.read("config.json"))
        if config.get("class_name") != "ShowAttendTell" or "decoder" in config.get("config", {}):
            return None
        members = {name: archive.read(name) for name in names}
    weights = os.path.join(folder, _WEIGHTS)
    with open(weights, "wb") as file:
        file.write(members[_WEIGHTS])
    with h5py.File(weights, "r+") as file:
        if "cell" in file:
            file.move("cell", "decoder")  # the config's flat decoder arguments still apply
    with open(weights, "rb") as file:
        members[_WEIGHTS] = file.read()
    upgraded = os.path.join(folder, MODEL_FILE)
    with zipfile.ZipFile(upgraded, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return upgraded
