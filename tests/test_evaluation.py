import json

import pytest

from sat_keras import cli
from sat_keras.data.records import select_split
from sat_keras.data.synthetic import generate_synthetic
from sat_keras.evaluation import format_metrics
from sat_keras.metrics import caption_diversity
from sat_keras.models.saving import save_captioner
from sat_keras.text import Vocabulary


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("data"))
    generate_synthetic(path, num_images=20, seed=5)
    return path


@pytest.fixture
def model_dir(data_dir, make_model, tmp_path):
    records = generate_synthetic(data_dir, num_images=20, seed=5)
    train = select_split(records, "train")
    vocabulary = Vocabulary.build(c for r in train for c in r.captions)
    model = make_model(with_encoder=True, vocabulary=vocabulary, image_size=64)
    model.build({"images": (None, 64, 64, 3)})
    return save_captioner(model, str(tmp_path / "model"))


def test_evaluate_writes_every_metric_and_every_caption(model_dir, data_dir, tmp_path, capsys):
    output = tmp_path / "results.json"
    code = cli.main(["evaluate", "--model", model_dir, "--dataset", "synthetic",
                     "--data-dir", data_dir, "--split", "test", "--beam-size", "2",
                     "--max-length", "8", "--output", str(output), "--no-meteor"])
    assert code == 0
    results = json.loads(output.read_text())
    assert set(results["metrics"]) == {"bleu_1", "bleu_2", "bleu_3", "bleu_4", "meteor",
                                       "rouge_l", "cider_d"}
    assert results["metrics"]["meteor"] is None
    assert results["tokenization"] in ("ptb", "normalize")
    assert results["num_images"] == len(results["captions"]) == 2
    assert {"image", "caption", "score", "references"} <= set(results["captions"][0])
    assert "mean_share" in results["attention_in_object"]
    printed = capsys.readouterr().out
    assert "BLEU-4" in printed and "METEOR not computed" in printed
    diversity = caption_diversity([entry["caption"] for entry in results["captions"]])
    assert results["diversity"] == diversity
    assert f"{diversity['vocabulary_used']} different words" in printed


def test_caption_writes_attention_plots(model_dir, data_dir, tmp_path, capsys):
    images = [r.image_path for r in generate_synthetic(data_dir, num_images=20, seed=5)[:2]]
    plot = tmp_path / "attention.png"
    assert cli.main(["caption", *images, "--model", model_dir,
                     "--attention-plot", str(plot)]) == 0
    assert (tmp_path / "attention-1.png").exists() and (tmp_path / "attention-2.png").exists()
    assert cli.main(["caption", images[0], "--model", model_dir, "--beam-size", "3",
                     "--attention-plot", str(plot)]) == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_split_or_dataset_is_reported(model_dir, data_dir, capsys):
    with pytest.raises(SystemExit):
        cli.main(["evaluate", "--model", model_dir, "--dataset", "flickr99",
                  "--data-dir", data_dir])


def test_format_metrics_marks_missing_values():
    line = format_metrics({"bleu_1": 0.5, "meteor": None})
    assert "BLEU-1 0.5000" in line and "METEOR not computed" in line
