"""Training: the fit loop, run directories and backups, callbacks, optimizers, recipes."""

from sat_keras.training.fit import train
from sat_keras.training.settings import DataSettings
from sat_keras.training.settings import RunSettings
from sat_keras.training.settings import TrainingSettings

__all__ = ["DataSettings", "RunSettings", "TrainingSettings", "train"]
