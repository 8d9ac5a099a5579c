"""Deadlines and the bound on running requests of the local servers' `ModelRunner`."""

import numpy as np
import pytest
from helpers import encode_image

from sat_keras.serving.model_runner import ModelRunner
from sat_keras.serving.model_runner import ServingError

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


def test_when_every_slot_is_held_a_request_is_refused_as_busy(exported_model):
    runner = ModelRunner(exported_model[1], deadline=1e-3, max_running=1)
    with pytest.raises(ServingError, match="deadline"):
        runner.predict({"image_bytes": IMAGES})  # goes on running, holding the only slot
    with pytest.raises(ServingError) as error:
        runner.predict({"image_bytes": IMAGES[:1]})
    assert error.value.code == "RESOURCE_EXHAUSTED" and "busy" in error.value.message
    runner.deadline = 120.0  # waits for the slot, then runs
    assert len(runner.predict({"image_bytes": IMAGES[:1]})["captions"]) == 1


def test_a_sooner_client_deadline_wins(exported_model):
    runner = ModelRunner(exported_model[1], deadline=120.0)
    with pytest.raises(ServingError, match="deadline of 0.001 s"):
        runner.predict({"image_bytes": IMAGES}, deadline=1e-3)


def test_bad_settings_are_refused(exported_model):
    with pytest.raises(ValueError, match="deadline and max_running must be positive"):
        ModelRunner(exported_model[1], deadline=0)
