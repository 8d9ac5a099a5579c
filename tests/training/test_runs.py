import glob
import json
import os
import re
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from sat_keras.models.saving import load_captioner
from sat_keras.text import Vocabulary
from sat_keras.training.backup import CHECKPOINT_FILE
from sat_keras.training.backup import StepBackup
from sat_keras.training.backup import restore_backup
from sat_keras.training.runs import RunDirectory
from sat_keras.training.runs import read_metrics

SAT_KERAS = os.path.join(os.path.dirname(sys.executable), "sat-keras")


def train_command(tmp_path, *extra):
    return [SAT_KERAS, "train", "--dataset", "synthetic", "--data-dir", str(tmp_path / "data"),
            "--output-dir", str(tmp_path / "run"), "--num-images", "60", "--epochs", "3",
            "--batch-size", "8", "--backup-every", "5", *extra]


def backup_step(run_dir):
    try:
        with open(os.path.join(run_dir, "backup", "backup.json")) as file:
            return json.load(file)["step"]
    except (OSError, ValueError, KeyError):
        return 0


def test_a_killed_run_resumes_and_ends_with_the_planned_steps(tmp_path):
    run_dir = str(tmp_path / "run")
    process = subprocess.Popen(train_command(tmp_path), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    while backup_step(run_dir) < 10 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=60)
    killed_at = backup_step(run_dir)
    assert killed_at >= 10

    rerun = subprocess.run(train_command(tmp_path), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    resumed = re.search(r"Resumed from the backup in \S+ at step (\d+) of (\d+)", rerun.stdout)
    assert resumed, rerun.stdout[-3000:]
    step, planned = int(resumed.group(1)), int(resumed.group(2))
    assert killed_at <= step < planned  # the newest backup, not step 0
    entries = read_metrics(run_dir)
    assert entries[-1]["step"] == planned and entries[-1]["epoch"] == 3
    assert not os.path.exists(os.path.join(run_dir, "backup"))
    assert load_captioner(run_dir).decoder.attention == "soft"


def test_the_run_directory_holds_config_metrics_and_tensorboard_logs(tmp_path):
    result = subprocess.run(train_command(tmp_path, "--epochs", "1"), capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "run"
    with open(run_dir / "config.json") as file:
        config = json.load(file)
    assert config["preset"] == "synthetic" and config["training"]["epochs"] == 1
    assert (run_dir / "model.keras").exists()
    assert not (run_dir / "vocabulary.json").exists()  # the model holds the one copy
    entries = read_metrics(str(run_dir))
    assert len(entries) == 1 and {"loss", "nll", "val_loss"} <= set(entries[0])
    rerun = subprocess.run(train_command(tmp_path, "--epochs", "1"), capture_output=True,
                           text=True, timeout=600)
    assert rerun.returncode == 0 and "Resumed" not in rerun.stdout
    assert len(read_metrics(str(run_dir))) == 1  # a fresh run's history only
    tags = set()
    for path in glob.glob(str(run_dir / "tensorboard" / "**" / "events.*"), recursive=True):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(value.tag for value in event.summary.value)
    assert {"sample_captions", "attention", "epoch_loss", "epoch_learning_rate"} <= tags, tags


def tiny_compiled_model():
    from helpers import tiny_image_model

    model = tiny_image_model()
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.optimizer.build(model.trainable_variables)
    return model


def fit_steps(model, steps, callbacks=()):
    rng = np.random.default_rng(0)
    x = {"images": rng.integers(0, 255, (8 * steps, 32, 32, 3)).astype("uint8"),
         "token_ids": rng.integers(1, 10, (8 * steps, 5)).astype("int32")}
    y = rng.integers(1, 10, (8 * steps, 5)).astype("int32")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False, callbacks=list(callbacks))


def test_a_backup_restores_weights_and_optimizer_state(tmp_path):
    model = tiny_compiled_model()
    fit_steps(model, 6, [StepBackup(str(tmp_path), every_steps=3)])
    restored = tiny_compiled_model()
    assert restore_backup(restored, str(tmp_path)) == 6
    for saved, loaded in zip(model.weights + model.optimizer.variables,
                             restored.weights + restored.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(saved), np.asarray(loaded))


def test_a_half_written_backup_never_replaces_the_last_one(tmp_path, monkeypatch):
    model = tiny_compiled_model()
    backup = StepBackup(str(tmp_path), every_steps=2)
    fit_steps(model, 2, [backup])
    before = open(tmp_path / CHECKPOINT_FILE, "rb").read()

    def killed_while_writing(path, overwrite=True):
        open(path, "wb").write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(model, "save_weights", killed_while_writing)
    with pytest.raises(KeyboardInterrupt):
        backup.save(4)
    assert open(tmp_path / CHECKPOINT_FILE, "rb").read() == before
    assert restore_backup(tiny_compiled_model(), str(tmp_path)) == 2


def test_backup_every_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="every_steps"):
        StepBackup(str(tmp_path), every_steps=0)


def test_a_nan_loss_stops_training_with_a_clear_error(tmp_path, capsys):
    from sat_keras import cli

    code = cli.main(["train", "--dataset", "synthetic", "--data-dir", str(tmp_path / "data"),
                     "--output-dir", str(tmp_path / "run"), "--num-images", "40",
                     "--epochs", "3", "--batch-size", "8", "--learning-rate", "1e30"])
    assert code == 2
    error = capsys.readouterr().err
    assert "The loss became NaN or infinite at step" in error and "--clip-norm" in error
    assert not (tmp_path / "run" / "model.keras").exists()


def test_a_resumed_run_must_build_the_backups_vocabulary(tmp_path):
    run = RunDirectory(str(tmp_path / "run"))
    vocabulary = Vocabulary.build(["a red circle", "a blue square"])
    run.check_vocabulary(vocabulary)  # a fresh run: kept with the backup
    assert os.listdir(run.backup_dir) == ["vocabulary.json"]
    (tmp_path / "run" / "backup" / CHECKPOINT_FILE).write_bytes(b"")  # as if one was written
    run.check_vocabulary(vocabulary)  # the same vocabulary resumes
    with pytest.raises(ValueError, match="vocabulary differs"):
        run.check_vocabulary(Vocabulary.build(["a green triangle"]))
    run.finish()
    assert not os.path.exists(run.backup_dir)
