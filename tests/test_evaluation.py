import json

import numpy as np
import pytest

from sat_keras import CaptionEnsemble
from sat_keras import cli
from sat_keras.data.records import select_split
from sat_keras.data.synthetic import generate_synthetic
from sat_keras.decoding import SearchSettings
from sat_keras.evaluation import attention_statistics
from sat_keras.evaluation import caption_records
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
                     "--max-length", "8", "--length-penalty", "0.5", "--output", str(output),
                     "--no-meteor"])
    assert code == 0
    results = json.loads(output.read_text())
    assert results["search"] == SearchSettings(beam_size=2, max_length=8,
                                               length_penalty=0.5).to_config()
    assert set(results["metrics"]) == {"bleu_1", "bleu_2", "bleu_3", "bleu_4", "meteor",
                                       "rouge_l", "cider_d"}
    assert results["metrics"]["meteor"] is None
    assert results["tokenization"] in ("ptb", "normalize")
    assert results["num_images"] == len(results["captions"]) == 2
    assert {"image", "caption", "score", "references"} <= set(results["captions"][0])
    assert "mean_share" in results["attention_in_object"]
    printed = capsys.readouterr().out
    assert "beam 2, length penalty 0.5: BLEU-1" in printed and "METEOR not computed" in printed
    diversity = caption_diversity([entry["caption"] for entry in results["captions"]])
    assert results["diversity"] == diversity
    assert f"{diversity['vocabulary_used']} different words" in printed
    assert results["attention"]["locations"] == 256  # the tiny CNN's 16 x 16 grid at 64 px
    assert "attention per token: entropy" in printed and "log 256 = 5.545" in printed


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


def test_records_are_captioned_once_each(data_dir, make_model):
    records = select_split(generate_synthetic(data_dir, num_images=20, seed=5), "val")
    model = make_model(with_encoder=True, image_size=64)
    outputs = caption_records(model, records, {"max_length": 4, "beam_size": 2})
    assert len(outputs["captions"]) == len(records)
    assert outputs["attention_weights"].shape[:2] == (len(records), 4)
    n_best = SearchSettings(max_length=4, beam_size=2, num_captions=2)
    assert caption_records(model, records, n_best)["captions"] == outputs["captions"]  # the best
    model.choose_search(n_best)  # the model's own, n best and all: still one caption each
    assert caption_records(model, records)["captions"] == outputs["captions"]


def test_an_ensemble_captions_records_from_their_image_files(data_dir, make_model):
    records = select_split(generate_synthetic(data_dir, num_images=20, seed=5), "val")
    model = make_model(with_encoder=True, image_size=64)
    search = {"max_length": 5, "beam_size": 2}
    expected = caption_records(model, records, search)
    outputs = caption_records(CaptionEnsemble([model, model]), records, search)
    assert outputs["captions"] == expected["captions"]
    np.testing.assert_allclose(outputs["scores"], expected["scores"], rtol=1e-5, atol=1e-5)


def test_format_metrics_marks_missing_values():
    line = format_metrics({"bleu_1": 0.5, "meteor": None})
    assert "BLEU-1 0.5000" in line and "METEOR not computed" in line


def test_attention_statistics_against_uniform_and_one_hot_attention():
    uniform = np.full((2, 3, 4), 0.25)
    uniform[1, 2] = 0.0  # after <end>: not a token
    one_hot = np.zeros((1, 2, 4))
    one_hot[0, :, 1] = 1.0
    flat = attention_statistics(uniform)
    assert flat["tokens"] == 5 and flat["locations"] == 4
    assert flat["mean_entropy"] == pytest.approx(np.log(4)) == flat["uniform_entropy"]
    assert flat["mean_max_alpha"] == pytest.approx(0.25) == flat["uniform_max_alpha"]
    sharp = attention_statistics(one_hot)
    assert sharp["mean_entropy"] == pytest.approx(0.0, abs=1e-9)
    assert sharp["mean_max_alpha"] == 1.0
    both = attention_statistics(np.concatenate([uniform[:1], one_hot[:, :1].repeat(3, 1)]))
    assert both["mean_entropy"] == pytest.approx(np.log(4) / 2)
    with pytest.raises(ValueError, match="No emitted token"):
        attention_statistics(np.zeros((1, 2, 4)))
