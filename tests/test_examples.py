"""The Flickr8k example scripts, end to end on a few shared photos."""

import json
import os
import subprocess
import sys

import pytest
from helpers import FLICKR8K_DIR
from helpers import MOBILENET_WEIGHTS
from helpers import flickr8k_subset
from resnet50_weights import MAKE_WEIGHTS
from resnet50_weights import resnet50_weights

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = [
    pytest.mark.slow,
    pytest.mark.needs_shared(FLICKR8K_DIR, MOBILENET_WEIGHTS),
]


def run_example(name, *arguments):
    result = subprocess.run([sys.executable, os.path.join(REPOSITORY, "examples", name),
                             *arguments], capture_output=True, text=True, timeout=900,
                            check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_the_flickr8k_recipe_with_scst_then_decoding_tuned_on_dev(tmp_path):
    data_dir = flickr8k_subset(tmp_path / "flickr8k", train=64, dev=16)
    work_dir = str(tmp_path / "run")
    out = run_example("train_flickr8k.py", "--data-dir", data_dir, "--encoder", "mobilenet",
                      "--encoder-weights", str(MOBILENET_WEIGHTS), "--work-dir", work_dir,
                      "--epochs", "2", "--batch-size", "16", "--beam-size", "2",
                      "--scst-epochs", "1", "--max-minutes", "10",
                      "--doubly-stochastic-weight", "0")
    assert "features ready" in out and "Trained 3 epochs" in out  # 2 cross-entropy, 1 SCST
    assert "dev (16 images), beam 1," in out and "whole recipe:" in out
    assert "dev (16 images), beam 2, " in out and "tokenization: BLEU-1" in out
    with open(os.path.join(work_dir, "config.json")) as file:
        config = json.load(file)
    assert config["model"]["doubly_stochastic_weight"] == 0.0
    assert config["training"]["select_from"] == 0.5  # the preset's: epoch 2 alone judged
    assert config["encoder"] == {"name": "mobilenet"}
    assert os.path.exists(os.path.join(work_dir, "model.keras"))
    assert os.path.exists(os.path.join(work_dir, "self_critical", "metrics.jsonl"))
    tuned = run_example("tune_decoding.py", "--model", os.path.join(work_dir, "model.keras"),
                        "--data-dir", data_dir, "--features", os.path.join(work_dir, "features"),
                        "--settings", "1:0,2:1", "--max-length", "12", "--suppress-unknown",
                        "--output", str(tmp_path / "tuning.json"))
    assert "beam 1, length penalty 0: BLEU-1" in tuned and "beam 2, length penalty 1" in tuned
    with open(tmp_path / "tuning.json") as file:
        rows = json.load(file)["rows"]
    assert [(r["beam_size"], r["length_penalty"], r["suppress_unknown"]) for r in rows] == [
        (1, 0.0, True), (2, 1.0, True)]
    assert all(r["locations"] == 196 and r["mean_entropy"] <= r["uniform_entropy"] + 1e-6
               for r in rows)
    # Two copies of the model: their ensemble averages equal distributions, so it
    # captions, and scores, as the model alone does.
    model_path = os.path.join(work_dir, "model.keras")
    run_example("tune_decoding.py", "--model", model_path, "--model", model_path,
                "--data-dir", data_dir, "--features", os.path.join(work_dir, "features"),
                "--settings", "2:1", "--max-length", "12", "--suppress-unknown",
                "--output", str(tmp_path / "ensemble.json"))
    with open(tmp_path / "ensemble.json") as file:
        ensemble = json.load(file)
    assert ensemble["model"] == [model_path, model_path]
    for name in ("bleu_4", "meteor", "cider_d", "distinct_captions", "mean_length"):
        assert ensemble["rows"][0][name] == pytest.approx(rows[1][name], rel=1e-6), name


def test_the_recipe_warm_starts_hard_attention_from_its_soft_model(tmp_path):
    data_dir = flickr8k_subset(tmp_path / "flickr8k", train=32, dev=8)
    work_dir = str(tmp_path / "run")
    out = run_example("train_flickr8k.py", "--data-dir", data_dir, "--encoder", "mobilenet",
                      "--encoder-weights", str(MOBILENET_WEIGHTS), "--work-dir", work_dir,
                      "--epochs", "1", "--batch-size", "16", "--beam-size", "2",
                      "--attention", "hard", "--hard-epochs", "1")
    assert "hard attention trained after" in out and "whole recipe:" in out
    assert out.count("dev (8 images), beam 1,") == 2  # the soft model, then the hard one
    with open(os.path.join(work_dir, "hard", "config.json")) as file:
        config = json.load(file)
    assert config["preset"] == "flickr8k_resnet50_hard"
    assert config["model"]["decoder"]["attention"] == "hard"
    assert config["training"]["init_from"] == work_dir
    # the hard preset's warm-start schedule, its epochs given
    assert (config["training"]["learning_rate"], config["training"]["epochs"],
            config["training"]["select_from"]) == (2e-4, 1, 0.0)
    assert config["encoder"] == {"name": "mobilenet"}
    assert os.path.exists(os.path.join(work_dir, "hard", "model.keras"))
    # The gradient variance of the hard model's attention, per baseline, on a fixed batch.
    out = run_example("attention_gradient_variance.py", "--model", os.path.join(work_dir, "hard"),
                      "--data-dir", data_dir, "--features", os.path.join(work_dir, "features"),
                      "--images", "4", "--draws", "3", "--samples", "2",
                      "--calibration-images", "8", "--output", str(tmp_path / "variance.json"))
    with open(tmp_path / "variance.json") as file:
        figures = json.load(file)
    assert (figures["images"], figures["draws"], figures["samples"]) == (4, 3, 2)
    assert sorted(figures["results"]) == sorted(
        ["none", "moving_average", "caption_mean", "greedy", "leave_one_out", "learned"])
    for estimator, row in figures["results"].items():
        assert f"{estimator}: variance " in out
        assert row["variance"] > 0 and row["snr"] == pytest.approx(
            row["signal"] / row["variance"])
    loo = figures["results"]["leave_one_out"]
    assert loo["variance_per_sample"] == pytest.approx(2 * loo["variance"])


@pytest.mark.needs_shared(MAKE_WEIGHTS)
def test_the_recipe_fine_tunes_resnet50s_conv5_stage_on_cached_conv4_features(tmp_path):
    import keras
    import numpy as np

    from sat_keras import Captioner
    from sat_keras.data.features import CachedFeatures
    from sat_keras.data.flickr8k import read_flickr8k
    from sat_keras.data.images import load_image_files

    data_dir = flickr8k_subset(tmp_path / "flickr8k", train=15, dev=6)
    weights = resnet50_weights(tmp_path / "resnet50")
    work_dir = str(tmp_path / "run")
    out = run_example("train_flickr8k.py", "--data-dir", data_dir, "--encoder-weights", weights,
                      "--work-dir", work_dir, "--epochs", "1", "--batch-size", "15",
                      "--beam-size", "2", "--fine-tune-epochs", "1")
    assert "conv4 features ready" in out and "conv5 fine-tuned after" in out
    assert out.count("dev (6 images), beam 1,") == 2  # the frozen model, then the tuned one
    tuned_dir = os.path.join(work_dir, "fine_tuned")
    with open(os.path.join(tuned_dir, "config.json")) as file:
        training = json.load(file)["training"]
    assert (training["fine_tune_from"], training["batch_by_image"], training["epochs"],
            training["encoder_lr_multiplier"], training["init_from"]) == (
        "conv4_block6_out", True, 1, 0.1, work_dir)
    assert CachedFeatures(os.path.join(work_dir, "features_conv4")).shape == (196, 1024)
    frozen, tuned = Captioner.from_preset(work_dir), Captioner.from_preset(tuned_dir)
    network = {model: model.encoder.network for model in (frozen, tuned)}

    def moved(layer):
        return max(np.abs(keras.ops.convert_to_numpy(a) - keras.ops.convert_to_numpy(b)).max()
                   for a, b in zip(network[frozen].get_layer(layer).weights,
                                   network[tuned].get_layer(layer).weights))

    assert moved("conv4_block6_3_conv") == 0.0 and moved("conv5_block1_1_bn") == 0.0  # frozen
    assert moved("conv5_block3_3_conv") > 0.0  # trained, 5 steps at 2e-5
    # From a photo the tuned model runs the tuned stage, as it did on the cache in training.
    record = read_flickr8k(data_dir)[-1]
    images, _, _ = load_image_files([record.image_path], 224)
    cached = tuned.encoder.to_cache(images)  # conv4_block6_out's 196 x 1024, in float32
    from_photo = keras.ops.convert_to_numpy(tuned.encode({"images": images}))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(tuned.encode({"features": cached})),
                               from_photo, atol=1e-4)
    assert np.abs(from_photo - keras.ops.convert_to_numpy(
        frozen.encode({"images": images}))).max() > 1e-4
