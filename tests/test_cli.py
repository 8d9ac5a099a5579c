import argparse
import csv
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from sat_keras import cli
from sat_keras import recipes
from sat_keras.models.presets import preset_settings
from sat_keras.models.saving import load_captioner
from sat_keras.models.saving import save_captioner
from sat_keras.recipes import default_preset
from sat_keras.training.rewards import CiderDReward
from sat_keras.training.self_critical import SelfCriticalSettings


@pytest.fixture
def model_dir(make_model, tmp_path):
    model = make_model(with_encoder=True)
    model.build({"images": (None, 32, 32, 3)})
    return save_captioner(model, str(tmp_path / "model"))


@pytest.fixture
def good_image(tmp_path):
    image = np.random.default_rng(0).integers(0, 255, (40, 50, 3)).astype("uint8")
    path = tmp_path / "good.png"
    path.write_bytes(tf.io.encode_png(image).numpy())
    return str(path)


def test_caption_prints_one_line_per_image(model_dir, good_image, capsys):
    assert cli.main(["caption", good_image, good_image, "--model", model_dir]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"{good_image}: ")


def test_caption_reports_bad_files_captions_the_rest_and_fails(model_dir, good_image,
                                                              tmp_path, capsys):
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    missing = str(tmp_path / "missing.png")
    code = cli.main(["caption", str(corrupt), good_image, missing, "--model", model_dir])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.out.splitlines()[0].startswith(f"{good_image}: ")
    errors = captured.err.splitlines()
    assert len(errors) == 2
    assert errors[0].startswith(f"{corrupt}: error: not a decodable image")
    assert errors[1] == f"{missing}: error: file not found"


def test_caption_with_a_missing_model_says_so(tmp_path, good_image, capsys):
    assert cli.main(["caption", good_image, "--model", str(tmp_path / "none")]) == 2
    assert "No model at" in capsys.readouterr().err


@pytest.mark.parametrize("attention", ["soft", "hard"])
def test_train_on_synthetic_data_saves_a_loadable_model(tmp_path, capsys, attention):
    output_dir = tmp_path / "model"
    code = cli.main(["train", "--dataset", "synthetic", "--data-dir", str(tmp_path / "data"),
                     "--output-dir", str(output_dir), "--num-images", "40", "--epochs", "1",
                     "--batch-size", "8", "--attention", attention])
    assert code == 0
    assert "BLEU-4" in capsys.readouterr().out
    model = load_captioner(str(output_dir))
    assert sorted(os.listdir(output_dir)) == [  # one vocabulary: inside the model
        "config.json", "metrics.jsonl", "model.keras", "tensorboard", "trained.json"]
    assert model.image_size == 64 and model.decoder.attention == attention


def subcommands():
    parser = cli.build_parser()
    return next(action for action in parser._actions
                if isinstance(action, argparse._SubParsersAction)).choices


def test_every_option_shows_its_default_in_the_help():
    missing = []
    for name, command in subcommands().items():
        text = "".join(command.format_help().split())  # argparse wraps, at hyphens too
        for action in command._actions:
            flag = next((f for f in action.option_strings if f.startswith("--")), None)
            if flag in (None, "--help") or action.required:
                continue
            shown = "".join(command._get_formatter()._get_help_string(action).split())
            if "default" not in shown or shown.replace("%%", "%") not in text:
                missing.append(f"sat-keras {name} {flag}")
    assert not missing, missing


def test_extract_features_defaults_to_the_encoder_that_train_uses():
    args = cli.build_parser().parse_args(["extract-features", "--data-dir", "D",
                                          "--output", "F"])
    assert args.encoder == preset_settings(default_preset("flickr8k"))["encoder"]["name"]
    assert args.encoder == "resnet50"
    assert "default:resnet50" in "".join(subcommands()["extract-features"].format_help().split())


def test_extract_features_command(tmp_path, capsys):
    from sat_keras.data.features import CachedFeatures
    from sat_keras.data.synthetic import generate_synthetic

    generate_synthetic(str(tmp_path / "data"), num_images=4, seed=0)
    # Random weights: MobileNetV3's outputs are about 1e-9, all 0.0 in float16,
    # which extraction refuses (tests/test_pretrained_encoder.py has real weights).
    code = cli.main(["extract-features", "--dataset", "synthetic", "--data-dir",
                     str(tmp_path / "data"), "--encoder", "mobilenet_v3_small",
                     "--encoder-weights", "none", "--dtype", "float32",
                     "--output", str(tmp_path / "features")])
    assert code == 0
    assert "images/s" in capsys.readouterr().out
    assert len(CachedFeatures(str(tmp_path / "features")).paths) == 4


@pytest.fixture
def csv_dataset(tmp_path):
    """A CSV over 10 synthetic images (7 train, 3 val), and its flags."""
    from sat_keras.data.synthetic import generate_synthetic

    records = generate_synthetic(str(tmp_path / "data"), num_images=10, seed=1)
    with open(tmp_path / "captions.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["image", "caption", "split"])
        writer.writerows([record.image_path, caption, "train" if i < 7 else "val"]
                         for i, record in enumerate(records) for caption in record.captions[:2])
    flags = ["--dataset", "csv", "--data-dir", "/", "--captions-file",
             str(tmp_path / "captions.csv"), "--encoder", "mobilenet_v3_small",
             "--encoder-weights", "none"]
    return records, flags


def test_train_on_a_csv_dataset_from_cached_features(tmp_path, capsys, csv_dataset):
    records, flags = csv_dataset
    # float32: see test_extract_features_command.
    assert cli.main(["extract-features", *flags, "--dtype", "float32",
                     "--output", str(tmp_path / "features")]) == 0
    assert cli.main(["train", *flags, "--features", str(tmp_path / "features"),
                     "--output-dir", str(tmp_path / "model"), "--epochs", "1",
                     "--batch-size", "2", "--patience", "7",
                     "--doubly-stochastic-weight", "0", "--label-smoothing", "0.2",
                     "--annotation-dropout", "0.4", "--embedding-dropout", "0.3",
                     "--keep-epoch-weights", "--select-from", "0.25", "--units", "24",
                     "--annotation-projection", "16", "--set", "decoder.embedding_dim=12",
                     "--set", "decoder.gating=vector", "--set", "training.clip_norm=5"]) == 0
    assert "val (3 images), free-running greedy captions: BLEU-1" in capsys.readouterr().out
    with open(tmp_path / "model" / "config.json") as file:
        config = json.load(file)
    assert config["training"]["patience"] == 7 and config["training"]["select_from"] == 0.25
    assert config["encoder"] == {"name": "mobilenet_v3_small"}  # the encoder given, recorded
    model = load_captioner(str(tmp_path / "model"))
    assert model.encoder.backbone == "mobilenet_v3_small" and model.image_size == 224
    assert model.doubly_stochastic_weight == 0.0 and model.label_smoothing == 0.2
    decoder = model.decoder
    assert (decoder.annotation_dropout, decoder.embedding_dropout) == (0.4, 0.3)
    assert (decoder.units, decoder.annotation_projection) == (24, 16)
    assert (decoder.embedding_dim, decoder.gating) == (12, "vector")  # from --set
    assert config["model"]["decoder"]["units"] == 24 and config["training"]["clip_norm"] == 5
    assert os.listdir(tmp_path / "model" / "epochs") == ["epoch_01.weights.h5"]
    assert cli.main(["caption", records[0].image_path, "--model", str(tmp_path / "model")]) == 0


def test_train_fine_tuning_the_encoder_on_images(tmp_path, csv_dataset):
    _, flags = csv_dataset
    assert cli.main(["train", *flags, "--fine-tune-layers", "1", "--output-dir",
                     str(tmp_path / "model"), "--epochs", "1", "--batch-size", "2"]) == 0
    model = load_captioner(str(tmp_path / "model"))
    trainable = [v.path for v in model.trainable_weights if "encoder" in v.path.split("/")]
    assert len(trainable) >= 1 and model.encoder.trainable_layers == 1


def test_fine_tuning_needs_images_not_features(tmp_path, capsys):
    code = cli.main(["train", "--dataset", "csv", "--data-dir", str(tmp_path),
                     "--captions-file", "x.csv", "--output-dir", str(tmp_path / "m"),
                     "--features", str(tmp_path), "--fine-tune-layers", "2"])
    assert code == 2
    assert "needs images, or features cached below" in capsys.readouterr().err


@pytest.mark.parametrize("dataset, flags, named", [
    ("synthetic", ["--features", "F"], "--features"),
    ("synthetic", ["--encoder", "mobilenet"], "--encoder"),
    ("synthetic", ["--encoder-weights", "none"], "--encoder-weights"),
    ("synthetic", ["--captions-file", "c.json"], "--captions-file"),
    ("flickr8k", ["--num-images", "40"], "--num-images"),
    ("flickr8k", ["--encoder-lr-multiplier", "0.5"], "--encoder-lr-multiplier"),
    ("synthetic", ["--preset", "synthetic", "--attention", "hard"], "synthetic_hard"),
    ("synthetic", ["--set", "decoder.unitz=3"], "Unknown decoder arguments ['unitz']"),
    ("synthetic", ["--set", "label_smoothin=0.1"], "Unknown model arguments ['label_smoothin']"),
    ("synthetic", ["--set", "training.epoch=3"], "Unknown training settings ['epoch']"),
    ("synthetic", ["--set", "decoder.units"], "--set takes PATH=VALUE"),
    ("synthetic", ["--set", "training.search.beam_size=0"],
     "search: beam_size must be a positive integer. Received: beam_size=0"),
    ("synthetic", ["--set", "training.search.beams=3"], "Unknown decoding settings ['beams']"),
    ("synthetic", ["--set", "decoder.units=0"], "units must be a positive integer"),
    ("synthetic", ["--set", "label_smoothing=2"], "label_smoothing must be in [0, 1)"),
    ("synthetic", ["--epochs", "0"], "epochs must be a positive integer"),
    ("synthetic", ["--mixed-precision", "mixed_float16", "--backup-every", "0"],
     "backup_every_steps must be a positive integer"),
    ("flickr8k", ["--set", "training.select_from=1.5"], "select_from must be a number"),
])
def test_a_flag_that_does_not_apply_to_the_dataset_is_an_error(tmp_path, capsys, dataset,
                                                              flags, named):
    code = cli.main(["train", "--dataset", dataset, "--data-dir", str(tmp_path / "data"),
                     "--output-dir", str(tmp_path / "run"), *flags])
    assert code == 2
    assert named in capsys.readouterr().err
    assert not (tmp_path / "run").exists() and not (tmp_path / "data").exists()  # nothing ran


def test_set_paths_and_values():
    args = cli.build_parser().parse_args([
        "train", "--data-dir", "D", "--output-dir", "R", "--units", "32", "--epochs", "3",
        "--set", "decoder.units=64", "--set", "label_smoothing=0.1",
        "--set", "encoder.filters=[8, 16]", "--set", "decoder.attention=hard",
        "--set", "training.search.beam_size=3"])
    assert cli.preset_overrides(args) == {
        "training": {"epochs": 3, "search": {"beam_size": 3}},
        "model": {"decoder": {"units": 64, "attention": "hard"},  # --set after the flags
                  "label_smoothing": 0.1},
        "encoder": {"filters": [8, 16]}}
    with pytest.raises(ValueError, match="null means not given"):
        cli.parse_setting("model.decoder.annotation_projection=null")


def test_train_takes_a_preset_and_patience_on_synthetic_data(tmp_path, capsys):
    code = cli.main(["train", "--dataset", "synthetic", "--data-dir", str(tmp_path / "data"),
                     "--output-dir", str(tmp_path / "run"), "--preset", "synthetic_hard",
                     "--num-images", "40", "--epochs", "2", "--batch-size", "8",
                     "--patience", "1"])
    assert code == 0
    out = capsys.readouterr().out
    assert "test (" in out  # the held-out split of the synthetic data
    with open(tmp_path / "run" / "config.json") as file:
        config = json.load(file)
    assert config["preset"] == "synthetic_hard" and config["training"]["patience"] == 1
    entries = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
    assert "val_bleu_4" in entries[0]  # patience selects on val BLEU-4, here too
    assert load_captioner(str(tmp_path / "run")).decoder.attention == "hard"


def test_train_with_a_self_critical_stage_and_going_on_with_it(tmp_path, capsys, monkeypatch):
    rewards = []  # the rewards the recipe builds

    def recorded_reward(*args, **kwargs):
        rewards.append(CiderDReward(*args, **kwargs))
        return rewards[-1]

    monkeypatch.setattr(recipes, "CiderDReward", recorded_reward)
    objectives = []  # the objectives the stage trains
    build_objective = SelfCriticalSettings.objective
    monkeypatch.setattr(SelfCriticalSettings, "objective", lambda settings, *args: (
        objectives.append(build_objective(settings, *args)) or objectives[-1]))
    cross_entropy = ["train", "--dataset", "synthetic", "--data-dir", str(tmp_path / "data"),
                     "--output-dir", str(tmp_path / "run"), "--num-images", "40",
                     "--epochs", "1", "--batch-size", "8", "--patience", "1"]
    assert cli.main(cross_entropy) == 0
    assert "Trained 1 epochs" in capsys.readouterr().out and not rewards
    command = cross_entropy + ["--scst-epochs", "2", "--scst-samples", "3",
                               "--scst-learning-rate", "1e-4", "--no-scst-score-end",
                               "--scst-dropout"]
    assert cli.main(command) == 0  # the cross-entropy model is there: only the stage runs
    assert [reward.score_end for reward in rewards] == [False]
    assert [(o.num_samples, o.dropout) for o in objectives] == [(3, True)]
    out = capsys.readouterr().out
    assert "Cross-entropy done earlier" in out and "Trained 2 epochs" in out
    stage = tmp_path / "run" / "self_critical"
    assert sorted(os.listdir(stage)) == ["metrics.jsonl", "start.keras", "tensorboard"]
    entries = [json.loads(line) for line in open(stage / "metrics.jsonl")]
    assert len(entries) == 2
    assert {"reward", "baseline_reward", "val_cider"} <= set(entries[0])  # judged by CIDEr-D
    start, final = load_captioner(str(stage / "start.keras")), load_captioner(
        str(tmp_path / "run"))
    assert any(not np.array_equal(a, b) for a, b in zip(start.get_weights(),
                                                         final.get_weights()))
    assert cli.main(command) == 0  # both stages are done: nothing trains again
    out = capsys.readouterr().out
    assert "Self-critical training done earlier" in out and "Trained earlier." in out
    assert len(objectives) == 1


def test_scst_flags_need_scst_epochs(tmp_path, capsys):
    code = cli.main(["train", "--dataset", "synthetic", "--data-dir", str(tmp_path / "data"),
                     "--output-dir", str(tmp_path / "run"), "--scst-baseline", "greedy"])
    assert code == 2
    assert "--scst-baseline apply to the self-critical stage" in capsys.readouterr().err
    assert not (tmp_path / "run").exists() and not (tmp_path / "data").exists()  # nothing ran
