"""Saving and loading captioners, including files written by sat_keras 0.1."""

import json
import zipfile

import h5py
import numpy as np

from sat_keras.models.saving import load_captioner
from sat_keras.models.saving import save_captioner


def _as_version_0_1(path, old_path):
    """The file as 0.1 wrote it: the decoder's weights under `cell`, its arguments flat."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    decoder = config["config"].pop("decoder")["config"]
    for name in ("name", "trainable", "dtype", "vocabulary_size"):
        decoder.pop(name)
    config["config"].update(decoder)
    members["config.json"] = json.dumps(config).encode()
    weights = old_path.parent / "weights.h5"
    weights.write_bytes(members["model.weights.h5"])
    with h5py.File(weights, "r+") as file:
        file.move("decoder", "cell")
    members["model.weights.h5"] = weights.read_bytes()
    with zipfile.ZipFile(old_path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def test_a_model_file_of_version_0_1_loads_with_its_weights(make_model, batch, tmp_path):
    model = make_model(with_encoder=True, attention="hard", gating="vector")
    model.build({"images": (None, 32, 32, 3)})
    save_captioner(model, str(tmp_path / "new"))
    old = tmp_path / "old" / "model.keras"
    old.parent.mkdir()
    _as_version_0_1(tmp_path / "new" / "model.keras", old)
    before = old.read_bytes()
    loaded = load_captioner(str(old.parent))
    assert old.read_bytes() == before  # upgraded in a temporary copy
    assert loaded.decoder.attention == "hard" and loaded.decoder.gating == "vector"
    for found, expected in zip(loaded.weights, model.weights):
        np.testing.assert_array_equal(np.asarray(found), np.asarray(expected))
    images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_array_equal(loaded.caption(images=images, beam_size=2)["token_ids"],
                                  model.caption(images=images, beam_size=2)["token_ids"])


def test_a_model_trained_with_its_own_optimizer_loads_in_a_fresh_process(
        make_model, batch, tmp_path):
    import subprocess
    import sys

    from sat_keras.training.optimizers import FineTuningAdam

    model = make_model()
    model.compile(optimizer=FineTuningAdam(1e-3, encoder_multiplier=0.1))
    model.train_on_batch(*batch)
    save_captioner(model, str(tmp_path))
    script = ("import sys; from sat_keras.models.saving import load_captioner; "
              "print(type(load_captioner(sys.argv[1]).optimizer).__name__)")
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path)],
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-1] == "FineTuningAdam"
