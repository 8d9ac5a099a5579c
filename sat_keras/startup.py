"""Quiet TensorFlow start-up for the `sat-keras` command.

Importing TensorFlow prints lines from its C++ runtime before any setting
can silence them ("oneDNN custom operations are on", "Could not find cuda
drivers"), and on a machine without a GPU the first device query logs
`E0000 ... failed call to cuInit: ... CUDA error`, which reads as a failure.
The command starts TensorFlow with its C++ output captured, and only
replays that output if the start itself fails. Later C++ warnings and
errors, Python warnings and exceptions still reach the user.

This module imports nothing heavy: `sat_keras/__init__.py` runs it before
anything imports TensorFlow.
"""

import os
import sys
import tempfile

COMMAND = "sat-keras"


def quiet_for_the_command_line(argv=None):
    """Quiets the start-up when this process is `sat-keras` without `--verbose`."""
    argv = sys.argv if argv is None else argv
    if not argv or os.path.basename(argv[0]) != COMMAND or "--verbose" in argv:
        return False
    start_tensorflow_quietly()
    return True


def _start_tensorflow():
    import tensorflow as tf  # the point of this module: started here, quietly

    tf.config.list_physical_devices()  # the device query that logs cuInit


def start_tensorflow_quietly(start=_start_tensorflow):
    """Runs `start` (importing TensorFlow, listing its devices) with descriptor 2 captured.

    `TF_CPP_MIN_LOG_LEVEL` defaults to 2 (C++ errors only) unless already
    set. If the start fails, what it printed is written to stderr before
    the exception propagates.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            start()
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode("utf-8", "replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
