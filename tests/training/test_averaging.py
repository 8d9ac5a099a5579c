"""Checkpoint averaging of epoch weight files."""

import os
import subprocess
import sys

import numpy as np
import pytest

from sat_keras.models.saving import load_captioner
from sat_keras.models.saving import save_captioner
from sat_keras.models.show_attend_tell import ShowAttendTell
from sat_keras.text import Vocabulary
from sat_keras.training.averaging import average_weight_files
from sat_keras.training.averaging import epoch_weight_files

REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _model():
    vocabulary = Vocabulary.build(["a red circle", "a blue square"])
    model = ShowAttendTell(vocabulary, decoder={"embedding_dim": 8, "units": 16,
                                                "attention_dim": 8})
    model.build({"features": (None, 4, 8)})
    return model


def _save_scaled(model, directory, scale):
    """Saves the model's weights times `scale` as epoch_NN in directory/epochs."""
    original = model.get_weights()
    model.set_weights([value * scale for value in original])
    path = directory / "epochs" / f"epoch_{scale:02d}.weights.h5"
    path.parent.mkdir(exist_ok=True)
    model.save_weights(str(path))
    model.set_weights(original)


def test_the_average_of_epoch_files_is_their_elementwise_mean(tmp_path):
    model = _model()
    original = model.get_weights()
    for scale in (1, 2, 6):
        _save_scaled(model, tmp_path, scale)
    files = epoch_weight_files(str(tmp_path), [1, 2, 6])
    averaged = average_weight_files(_model(), files)
    for value, expected in zip(averaged.get_weights(), original):
        np.testing.assert_allclose(value, expected * 3, rtol=1e-6)  # (1 + 2 + 6) / 3
    features = np.ones((1, 4, 8), "float32")
    assert averaged.caption(features=features)["captions"]  # a working captioner


def test_missing_epochs_and_no_files_are_clear_errors(tmp_path):
    _save_scaled(_model(), tmp_path, 1)
    with pytest.raises(FileNotFoundError, match="No weights for 1 of the epochs.*keep-epoch"):
        epoch_weight_files(str(tmp_path), [1, 2])
    with pytest.raises(ValueError, match="at least one"):
        average_weight_files(_model(), [])


def test_the_example_script_saves_the_averaged_model_of_a_run(tmp_path):
    model = _model()
    model.choose_search({"beam_size": 3, "length_penalty": 1.0})
    save_captioner(model, str(tmp_path / "run"))
    original = model.get_weights()
    for scale in (1, 3):
        _save_scaled(model, tmp_path / "run", scale)
    result = subprocess.run(
        [sys.executable, os.path.join(REPOSITORY, "examples", "average_epochs.py"),
         "--run", str(tmp_path / "run"), "--epochs", "1", "3", "--output",
         str(tmp_path / "averaged")], capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "The mean of epochs [1, 3] saved to" in result.stdout
    averaged = load_captioner(str(tmp_path / "averaged"))
    for value, expected in zip(averaged.get_weights(), original):
        np.testing.assert_allclose(value, expected * 2, rtol=1e-6)  # (1 + 3) / 2
    assert averaged.search_settings.beam_size == 3
