"""Saving and loading a trained captioner: a directory holding `model.keras`.

`load_captioner` also reads model files written by sat_keras 0.1, whose
decoder's weights sat under the attribute `cell` (now `decoder`, with the
decoder's arguments nested in the config): the file is upgraded in a
temporary copy, the original left as it is.
"""

import json
import os
import shutil
import tempfile
import zipfile

import h5py  # a Keras dependency: the weights inside a .keras file
import keras

from sat_keras.export.reload import export_version_directory
from sat_keras.export.reload import load_exported_captioner
from sat_keras.models import show_attend_tell  # noqa: F401  (registers the class for loading)

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


def load_captioner(path):
    """Loads a model from a directory written by `save_captioner`, a .keras file, or an export.

    An export (`export.export_captioner`'s SavedModel: a version directory
    or its base) is rebuilt as a Keras model (`export.reload`).
    """
    model_path = os.path.join(path, MODEL_FILE) if os.path.isdir(path) else path
    if not os.path.exists(model_path) and export_version_directory(path) is not None:
        return load_exported_captioner(path)
    if not os.path.exists(model_path):
        raise FileNotFoundError(
            f"No model at {model_path}. Expected a directory holding {MODEL_FILE} "
            f"(written by `sat-keras train`), a .keras file, or a SavedModel "
            f"(`sat-keras export`)."
        )
    folder = tempfile.mkdtemp()
    try:
        return keras.models.load_model(_upgraded(model_path, folder) or model_path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


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
