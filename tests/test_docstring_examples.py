"""The `Example:` of every public class's docstring runs and prints what it says."""

import doctest

import keras
import numpy as np
import pytest
import tensorflow as tf

import sat_keras
from sat_keras.decoding import SearchSettings
from sat_keras.export.saved_model import quantize_int8
from sat_keras.training.optimizers import FineTuningAdam
from sat_keras.training.rewards import CiderDReward
from sat_keras.training.self_critical import SelfCritical

DOCUMENTED = [getattr(sat_keras, name) for name in sat_keras.__all__ if name != "__version__"]
DOCUMENTED += [sat_keras.Captioner.from_preset, SearchSettings, FineTuningAdam,
               CiderDReward, SelfCritical, quantize_int8]


@pytest.mark.parametrize("documented", DOCUMENTED, ids=lambda obj: obj.__qualname__)
def test_the_example_runs(documented):
    keras.utils.set_random_seed(0)
    globs = {**{name: getattr(sat_keras, name) for name in sat_keras.__all__},
             "np": np, "keras": keras, "SearchSettings": SearchSettings,
             "FineTuningAdam": FineTuningAdam, "SelfCritical": SelfCritical,
             "CiderDReward": CiderDReward, "tf": tf, "quantize_int8": quantize_int8}
    finder = doctest.DocTestFinder(recurse=False)
    tests = finder.find(documented, globs=globs)
    assert tests and tests[0].examples, f"{documented.__qualname__} has no example"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in tests:
        runner.run(test)
    assert runner.failures == 0, f"{runner.failures} lines of {documented.__qualname__} fail"
