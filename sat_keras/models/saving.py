"""Saving and loading a trained captioner: a directory holding `model.keras`."""

import os

import keras

from sat_keras.models import show_attend_tell  # noqa: F401  (registers the class for loading)

MODEL_FILE = "model.keras"


def save_captioner(model, directory):
    """Writes `model.keras` (its config holds the vocabulary) into `directory`."""
    if not model.built:
        raise ValueError("The model has no weights yet: train it or call it once before saving.")
    os.makedirs(directory, exist_ok=True)
    partial = os.path.join(directory, f".partial-{os.getpid()}.keras")
    model.save(partial)  # then renamed: a killed save never leaves half a model
    os.replace(partial, os.path.join(directory, MODEL_FILE))
    return directory


def load_captioner(path):
    """Loads a model from a directory written by `save_captioner` or a .keras file."""
    model_path = os.path.join(path, MODEL_FILE) if os.path.isdir(path) else path
    if not os.path.exists(model_path):
        raise FileNotFoundError(
            f"No model at {model_path}. Expected a directory holding {MODEL_FILE} "
            f"(written by `sat-keras train`) or a .keras file."
        )
    return keras.models.load_model(model_path)
