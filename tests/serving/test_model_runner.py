"""Deadlines and the bound on running requests of the local servers' `ModelRunner`."""

import os
import threading
from concurrent import futures

import numpy as np
import pytest
from helpers import encode_image

from sat_keras.serving.model_runner import ModelRunner
from sat_keras.serving.model_runner import ServingError

SHAPES = os.path.join(os.path.dirname(__file__), "..", "..", "saved_models", "shapes")
IMAGES = np.array([encode_image("jpeg", 300, 300, seed=seed) for seed in range(32)],
                  dtype=object)


def test_a_request_past_its_deadline_is_answered_and_the_runner_goes_on(exported_model):
    runner = ModelRunner(exported_model[1], deadline=1e-3)
    with pytest.raises(ServingError) as error:
        runner.predict({"image_bytes": IMAGES})
    assert error.value.code == "DEADLINE_EXCEEDED"
    assert "deadline of 0.001 s" in error.value.message
    runner.deadline = 120.0
    assert len(runner.predict({"image_bytes": IMAGES})["captions"]) == 32


class HeldSignature:
    """A signature function that, once called, holds its slot until the test releases it."""

    def __init__(self, function):
        self.function = function
        self.started = threading.Event()
        self.release = threading.Event()

    @property
    def structured_input_signature(self):
        return self.function.structured_input_signature

    def __call__(self, **inputs):
        self.started.set()
        self.release.wait()
        return self.function(**inputs)


def test_when_every_slot_is_held_a_request_is_refused_as_busy(exported_model):
    runner = ModelRunner(exported_model[1], deadline=120.0, max_running=1)
    held = HeldSignature(runner.signatures["serving_default"])
    runner.signatures["serving_default"] = held
    first = futures.ThreadPoolExecutor(1).submit(runner.predict, {"image_bytes": IMAGES[:1]})
    assert held.started.wait(120)  # the first request runs, holding the only slot
    with pytest.raises(ServingError) as error:
        runner.predict({"image_bytes": IMAGES[:1]}, deadline=0.05)
    assert error.value.code == "RESOURCE_EXHAUSTED" and "busy" in error.value.message
    held.release.set()
    assert len(first.result(120)["captions"]) == 1
    assert len(runner.predict({"image_bytes": IMAGES[:1]})["captions"]) == 1  # slot free again


def test_a_sooner_client_deadline_wins(exported_model):
    runner = ModelRunner(exported_model[1], deadline=120.0)
    with pytest.raises(ServingError, match="deadline of 0.001 s"):
        runner.predict({"image_bytes": IMAGES}, deadline=1e-3)


def test_bad_settings_are_refused(exported_model):
    with pytest.raises(ValueError, match="deadline and max_running must be positive"):
        ModelRunner(exported_model[1], deadline=0)


def test_an_export_without_the_gif_frame_limit_gets_it_from_the_runner(tmp_path):
    """Older exports (the shipped ones) check images in-graph without `max_gif_frames`:
    the runner refuses a GIF of thousands of frames before the model walks it."""
    import json
    import shutil

    from helpers import gif_bomb

    base = tmp_path / "old"
    shutil.copytree(SHAPES, base)
    config_path = base / "1" / "assets.extra" / "export_config.json"
    config = json.loads(config_path.read_text())
    assert "max_gif_frames" not in config["image_limits"]
    runner = ModelRunner(str(base))
    frames = np.array([gif_bomb(screen=(16, 16), frame_side=16, frames=2000)], dtype=object)
    with pytest.raises(ServingError) as error:
        runner.predict({"image_bytes": frames})
    assert error.value.code == "INVALID_ARGUMENT"
    assert error.value.message == "Bad image: image_bytes[0]: over 64 GIF frames"
    config["image_limits"]["max_gif_frames"] = 2000  # an export that allows them
    config_path.write_text(json.dumps(config))
    assert ModelRunner(str(base))._image_precheck is None


def test_a_new_export_checks_gif_frames_in_its_graph(exported_model):
    from helpers import gif_bomb

    runner = ModelRunner(exported_model[1])
    assert runner._image_precheck is None and runner.max_batch_size == 64
    frames = np.array([gif_bomb(screen=(16, 16), frame_side=16, frames=2000)], dtype=object)
    with pytest.raises(ServingError, match=r"image_bytes\[0\]: over 64 GIF frames"):
        runner.predict({"image_bytes": frames})
