"""A run killed and resumed keeps the best epoch from before the kill."""

import os

import keras
import numpy as np

from sat_keras.data.records import select_split
from sat_keras.data.synthetic import generate_synthetic
from sat_keras.text import Vocabulary
from sat_keras.training.backup import ResumableEarlyStopping
from sat_keras.training.fit import train
from sat_keras.training.runs import RunDirectory
from sat_keras.training.settings import RunSettings
from sat_keras.training.settings import TrainingSettings


class _Scores(keras.callbacks.Callback):
    """Puts a given `val_score` per epoch into the logs (before early stopping sees them)."""

    def __init__(self, scores):
        super().__init__()
        self.scores = scores

    def on_epoch_end(self, epoch, logs=None):
        logs["val_score"] = self.scores[epoch]


def _fit(model, stopping, scores, initial_epoch, epochs):
    x = np.ones((8, 2), "float32")
    model.fit(x, x, batch_size=8, initial_epoch=initial_epoch, epochs=epochs, verbose=0,
              callbacks=[_Scores(scores), stopping])


def _model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    model.compile(keras.optimizers.SGD(0.1), "mse")
    return model


def _stopping(state_dir, epochs, resume, patience=3):
    stopping = ResumableEarlyStopping(monitor="val_score", mode="max", patience=patience,
                                      restore_best_weights=True)
    stopping.keep_in(str(state_dir), epochs, resume=resume)
    return stopping


def test_the_resumed_run_restores_the_best_epoch_from_before_the_kill(tmp_path):
    scores = [0.1, 0.9, 0.2, 0.3, 0.4, 0.5]
    model = _model()
    best = {}

    class _Remember(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                best["weights"] = model.get_weights()

    x = np.ones((8, 2), "float32")
    model.fit(x, x, batch_size=8, epochs=3, verbose=0,
              callbacks=[_Scores(scores), _stopping(tmp_path, 6, resume=False), _Remember()])
    # The process dies here; a new one resumes: one fit call for an epoch, one for the rest.
    resumed = _stopping(tmp_path, 6, resume=True, patience=10)
    _fit(model, resumed, scores, initial_epoch=3, epochs=4)
    assert resumed.best == 0.9 and resumed.best_epoch == 1 and resumed.wait == 2
    assert not np.allclose(model.get_weights()[0], best["weights"][0])  # goes on training
    _fit(model, resumed, scores, initial_epoch=4, epochs=6)
    for restored, kept in zip(model.get_weights(), best["weights"]):
        np.testing.assert_array_equal(restored, kept)


def test_the_patience_counts_the_epochs_waited_before_the_kill(tmp_path):
    scores = [0.9, 0.1, 0.2, 0.3, 0.4, 0.5]
    model = _model()
    _fit(model, _stopping(tmp_path, 6, resume=False), scores, initial_epoch=0, epochs=3)
    resumed = _stopping(tmp_path, 6, resume=True)
    _fit(model, resumed, scores, initial_epoch=3, epochs=6)
    assert resumed.stopped_epoch == 3 and resumed.best_epoch == 0


def test_a_fresh_run_ignores_a_stale_state(tmp_path):
    scores = [0.1, 0.2, 0.3]
    _fit(_model(), _stopping(tmp_path, 3, resume=False), [0.9, 0.1, 0.1], 0, 3)
    fresh = _stopping(tmp_path, 3, resume=False)
    _fit(_model(), fresh, scores, initial_epoch=0, epochs=3)
    assert fresh.best == 0.3 and fresh.best_epoch == 2


def test_without_keep_in_it_is_keras_early_stopping(tmp_path):
    stopping = ResumableEarlyStopping(monitor="val_score", mode="max", patience=1,
                                      restore_best_weights=True)
    _fit(_model(), stopping, [0.5, 0.9, 0.1, 0.1], initial_epoch=0, epochs=4)
    assert stopping.best_epoch == 1 and stopping.stopped_epoch == 2
    assert not list(tmp_path.iterdir())


def test_train_keeps_the_state_in_the_run_backup(tmp_path, make_model, monkeypatch):
    records = generate_synthetic(str(tmp_path / "data"), num_images=24, seed=2)
    training, validation = select_split(records, "train"), select_split(records, "val")
    model = make_model(with_encoder=True, image_size=64,
                       vocabulary=Vocabulary.build(c for r in training for c in r.captions))
    stopping = ResumableEarlyStopping(monitor="val_loss", patience=5, restore_best_weights=True)
    monkeypatch.setattr(RunDirectory, "finish", lambda self: None)  # keep the backup to look at
    train(model, training, validation,
          TrainingSettings(batch_size=8, learning_rate=1e-3, epochs=2, max_length=6,
                           image_size=64),
          RunSettings(str(tmp_path / "run"), verbose=0), callbacks=[stopping])
    state_dir = tmp_path / "run" / "backup"
    assert stopping.state_dir == str(state_dir) and stopping.epochs == 2
    assert not stopping.resume  # nothing to resume from at the start
    assert {"early_stopping.json", "best_epoch.weights.npz"} <= set(os.listdir(state_dir))
