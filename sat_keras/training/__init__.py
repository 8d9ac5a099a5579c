"""Training: the fit loop, run directories and backups, callbacks, optimizers, recipes."""

from sat_keras.training.fit import train

__all__ = ["train"]
