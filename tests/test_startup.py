"""The `sat-keras` command starts TensorFlow without its C++ start-up lines."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from sat_keras import startup
from sat_keras.models.saving import save_captioner

START_UP_MARKERS = ("I0000", "E0000", "W0000", "cuInit", "oneDNN", "cuda drivers",
                    "absl::InitializeLog")


def test_what_the_start_prints_is_hidden_when_it_succeeds(capfd):
    startup.start_tensorflow_quietly(lambda: os.write(2, b"native start-up noise\n"))
    os.write(2, b"a later error\n")
    assert capfd.readouterr().err == "a later error\n"


def test_what_the_start_prints_is_replayed_when_it_fails(capfd):
    def failing_start():
        os.write(2, b"libtensorflow.so: cannot open shared object file\n")
        raise ImportError("tensorflow failed to start")

    with pytest.raises(ImportError, match="failed to start"):
        startup.start_tensorflow_quietly(failing_start)
    assert "cannot open shared object file" in capfd.readouterr().err


@pytest.mark.parametrize("argv, quiet", [
    (["/venv/bin/sat-keras", "caption", "x.jpg"], True),
    (["/venv/bin/sat-keras", "caption", "x.jpg", "--verbose"], False),
    (["python", "-c"], False),
    ([], False),
])
def test_only_the_command_without_verbose_is_quieted(monkeypatch, argv, quiet):
    started = []
    monkeypatch.setattr(startup, "start_tensorflow_quietly", lambda: started.append(1))
    assert startup.quiet_for_the_command_line(argv) is quiet
    assert bool(started) is quiet


def _command():
    command = pathlib.Path(sys.executable).with_name("sat-keras")
    if not command.exists():
        pytest.fail(f"{command} is missing: install the package (pip install -e .)")
    return str(command)


def test_sat_keras_caption_prints_the_caption_and_nothing_from_tensorflow(make_model, tmp_path):
    model = make_model(with_encoder=True)
    model.build({"images": (None, 32, 32, 3)})
    model_dir = save_captioner(model, str(tmp_path / "model"))
    image = tmp_path / "image.png"
    pixels = np.random.default_rng(0).integers(0, 255, (40, 50, 3)).astype("uint8")
    image.write_bytes(tf.io.encode_png(pixels).numpy())
    environment = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([_command(), "caption", str(image), "--model", model_dir],
                            capture_output=True, text=True, env=environment, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{image}: ")
    assert len(result.stdout.splitlines()) == 1
    noise = [line for line in result.stderr.splitlines()
             if any(marker in line for marker in START_UP_MARKERS)]
    assert noise == []
