"""Backups that let a killed training run resume where it was.

A backup is the model's weights with the optimizer's state (its step
count, moments and so the learning-rate schedule's position), written to a
file beside the final name and renamed over it, so a run killed while
writing leaves the previous backup whole. The step a run resumes from is
the optimizer's restored step count. `ResumableEarlyStopping` keeps its
best epoch beside the backup, so a resumed run still keeps the best epoch
from before the kill.
"""

import json
import os
import shutil

import keras
import numpy as np

CHECKPOINT_FILE = "checkpoint.weights.h5"
STATE_FILE = "backup.json"
EARLY_STOPPING_FILE = "early_stopping.json"
BEST_WEIGHTS_FILE = "best_epoch.weights.npz"


def write_atomically(path, write, mode="w"):
    """Calls write(file) on a file beside path, then renames it over path."""
    partial = f"{path}.partial-{os.getpid()}"
    with open(partial, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as file:
        write(file)
        file.flush()
        os.fsync(file.fileno())
    os.replace(partial, path)


def write_json_atomically(path, payload):
    write_atomically(path, lambda file: json.dump(payload, file, indent=2))


def restore_backup(model, backup_dir):
    """Loads the backup in backup_dir into a compiled model; returns its step (0: none).

    The optimizer must be built (`optimizer.build(model.trainable_variables)`,
    in the strategy's scope), so that its state is loaded too.
    """
    path = os.path.join(backup_dir, CHECKPOINT_FILE)
    if not os.path.exists(path):
        return 0
    model.load_weights(path)
    return optimizer_step(model)


def optimizer_step(model):
    """The optimizer's step as an int (under a strategy, `int()` of the
    distributed variable itself raises TypeError)."""
    return int(keras.ops.convert_to_numpy(model.optimizer.iterations))


def remove_backup(backup_dir):
    """Removes the backup folder (the backup, its state, partial writes)."""
    shutil.rmtree(backup_dir, ignore_errors=True)


class StepBackup(keras.callbacks.Callback):
    """Backs up every `every_steps` optimizer steps and at every epoch end.

    Args:
        backup_dir: where the backup lives (created).
        every_steps: steps between backups; a kill loses at most this many.
        write: False on the workers that must not write (not the chief).
    """

    def __init__(self, backup_dir, every_steps, write=True):
        super().__init__()
        if not isinstance(every_steps, int) or every_steps < 1:
            raise ValueError(f"every_steps must be a positive integer. Received: {every_steps!r}")
        self.backup_dir = backup_dir
        self.every_steps = every_steps
        self.write = write
        self.step = 0
        self.last_step = None
        if write:
            os.makedirs(backup_dir, exist_ok=True)

    def on_train_begin(self, logs=None):
        # Read once: reading the optimizer's step every batch would wait for
        # each step to finish on an accelerator.
        self.step = optimizer_step(self.model)

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step % self.every_steps == 0:
            self.save(self.step)

    def on_epoch_end(self, epoch, logs=None):
        self.save(self.step, epoch=epoch + 1)

    def save(self, step, epoch=None):
        if not self.write or step == self.last_step:
            return
        partial = os.path.join(self.backup_dir, f".partial-{os.getpid()}.weights.h5")
        self.model.save_weights(partial, overwrite=True)
        os.replace(partial, os.path.join(self.backup_dir, CHECKPOINT_FILE))
        write_json_atomically(os.path.join(self.backup_dir, STATE_FILE),
                              {"step": step, "epochs_done": epoch})
        self.last_step = step


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """`keras.callbacks.EarlyStopping` whose best epoch survives a resume.

    Keras' callback starts afresh at every `fit` call, so a run killed and
    resumed from its backup (`fit.train`, which resumes with one `fit` call
    for the rest of the interrupted epoch and one for the epochs after it)
    would forget the epochs before the kill: their best score, the best
    weights and the epochs already waited, and keep the best of the resumed
    epochs only. After `keep_in(state_dir, epochs)` (which `fit.train` calls
    for a run directory) every epoch's state is written to state_dir, read
    back when a resumed `fit` begins, and the best weights are restored only
    when training ends (stopped early, or at the last of `epochs`), not at
    the end of the `fit` call that finished an interrupted epoch.
    Without `keep_in` it is Keras' callback.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.state_dir, self.epochs, self.resume, self.write = None, None, False, False
        self.last_epoch = None

    def keep_in(self, state_dir, epochs, resume, write=True):
        """State goes to state_dir (on the chief: `write`); `resume` reads it back."""
        self.state_dir, self.epochs, self.resume, self.write = state_dir, epochs, resume, write

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.last_epoch = None
        if not (self.resume and self.state_dir):
            return
        path = os.path.join(self.state_dir, EARLY_STOPPING_FILE)
        if not os.path.exists(path):  # killed before its first epoch ended
            return
        with open(path, encoding="utf-8") as file:
            state = json.load(file)
        self.best, self.best_epoch, self.wait = state["best"], state["best_epoch"], state["wait"]
        if self.restore_best_weights:
            with np.load(os.path.join(self.state_dir, BEST_WEIGHTS_FILE)) as stored:
                self.best_weights = [stored[f"arr_{index}"] for index in range(len(stored.files))]

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        self.last_epoch = epoch
        if not (self.state_dir and self.write) or self.best is None:
            return
        os.makedirs(self.state_dir, exist_ok=True)
        if self.restore_best_weights and self.best_epoch == epoch:
            write_atomically(os.path.join(self.state_dir, BEST_WEIGHTS_FILE),
                             lambda file: np.savez(file, *self.best_weights), mode="wb")
        write_json_atomically(os.path.join(self.state_dir, EARLY_STOPPING_FILE),
                              {"best": float(self.best), "best_epoch": self.best_epoch,
                               "wait": self.wait})

    def on_train_end(self, logs=None):
        unfinished = (self.epochs is not None and not self.model.stop_training
                      and self.last_epoch is not None and self.last_epoch + 1 < self.epochs)
        if not unfinished:
            super().on_train_end(logs)
