"""Checkpoint averaging: one model whose weights are the mean of several epochs'.

`sat-keras train --keep-epoch-weights` saves each cross-entropy epoch's
weights as RUN/epochs/epoch_NN.weights.h5; the mean of the epochs from
the best one to the last can score better than the best alone
(docs/results/flickr8k.md measures it on Flickr8k).
"""

import os

import keras
from keras import ops

EPOCHS_DIR = "epochs"
EPOCH_WEIGHTS = "epoch_{epoch:02d}.weights.h5"


def epoch_weights_callback(run_dir):
    """A callback saving each epoch's weights as RUN/epochs/epoch_NN.weights.h5."""
    return keras.callbacks.ModelCheckpoint(
        os.path.join(run_dir, EPOCHS_DIR, EPOCH_WEIGHTS), save_weights_only=True)


def epoch_weight_files(run_dir, epochs):
    """The weight files of `epochs` (1-based numbers) in a run directory; all must exist."""
    files = [os.path.join(run_dir, EPOCHS_DIR, EPOCH_WEIGHTS.format(epoch=epoch))
             for epoch in epochs]
    missing = [path for path in files if not os.path.isfile(path)]
    if missing:
        raise FileNotFoundError(
            f"No weights for {len(missing)} of the epochs {list(epochs)}: {missing}. They are "
            f"saved by `sat-keras train --keep-epoch-weights`.")
    return files


def average_weight_files(model, weight_files):
    """Sets `model`'s weights to the element-wise mean of `.weights.h5` files.

    Every file must hold the weights of `model`'s architecture (as
    `model.save_weights` wrote them); variables that are not floating point
    (counters, seeds) keep the last file's values. Returns the model.
    """
    if not weight_files:
        raise ValueError("Give at least one weights file to average.")
    total = None
    for path in weight_files:
        model.load_weights(path)  # the model ends holding the last file
        values = [ops.convert_to_numpy(weight).astype("float64") for weight in model.weights]
        total = values if total is None else [sum_ + value for sum_, value in zip(total, values)]
    for weight, sum_ in zip(model.weights, total):
        if keras.backend.is_float_dtype(weight.dtype):
            weight.assign((sum_ / len(weight_files)).astype(weight.dtype))
    return model
