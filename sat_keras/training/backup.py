"""Backups that let a killed training run resume where it was.

A backup is the model's weights with the optimizer's state (its step
count, moments and so the learning-rate schedule's position), written to a
file beside the final name and renamed over it, so a run killed while
writing leaves the previous backup whole. The step a run resumes from is
the optimizer's restored step count.
"""

import json
import os
import shutil

import keras

CHECKPOINT_FILE = "checkpoint.weights.h5"
STATE_FILE = "backup.json"


def write_json_atomically(path, payload):
    partial = f"{path}.partial-{os.getpid()}"
    with open(partial, "w", encoding="utf-8") as file:
        json.dump(payload, file, indent=2)
        file.flush()
        os.fsync(file.fileno())
    os.replace(partial, path)


def restore_backup(model, backup_dir):
    """Loads the backup in backup_dir into a compiled model; returns its step (0: none).

    The optimizer must be built (`optimizer.build(model.trainable_variables)`,
    in the strategy's scope), so that its state is loaded too.
    """
    path = os.path.join(backup_dir, CHECKPOINT_FILE)
    if not os.path.exists(path):
        return 0
    model.load_weights(path)
    return int(model.optimizer.iterations)


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
        self.step = int(self.model.optimizer.iterations)

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
