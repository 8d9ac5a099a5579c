import keras
import pytest

from sat_keras.data.pipeline import make_caption_dataset
from sat_keras.data.records import select_split
from sat_keras.data.synthetic import generate_synthetic
from sat_keras.decoding import SearchSettings
from sat_keras.evaluation import attention_statistics
from sat_keras.evaluation import caption_records
from sat_keras.metrics import caption_diversity
from sat_keras.text import Vocabulary
from sat_keras.training.callbacks import CaptionMetricsCallback


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    return generate_synthetic(str(tmp_path_factory.mktemp("data")), num_images=30, seed=2)


def test_logs_caption_metrics_every_n_epochs_for_early_stopping(records, make_model):
    train = select_split(records, "train")
    vocabulary = Vocabulary.build(c for r in train for c in r.captions)
    model = make_model(with_encoder=True, vocabulary=vocabulary, image_size=64)
    model.compile(optimizer="adam")
    callback = CaptionMetricsCallback(select_split(records, "val"), max_length=6,
                                      every_n_epochs=2)
    stopper = keras.callbacks.EarlyStopping(monitor="val_bleu_4", mode="max", patience=10)
    history = model.fit(make_caption_dataset(train, vocabulary, batch_size=16), epochs=4,
                        callbacks=[callback, stopper], verbose=0)
    assert len(history.history["val_bleu_4"]) == 2  # epochs 2 and 4 only
    for name in ("val_bleu_1", "val_bleu_4", "val_rouge_l", "val_cider"):
        assert all(0.0 <= value <= 10.0 for value in history.history[name])
    assert "val_meteor" not in history.history
    # How varied the last logged captions were: those of the final weights.
    outputs = caption_records(model, select_split(records, "val"), SearchSettings(max_length=6))
    expected = caption_diversity(outputs["captions"])
    for name, value in expected.items():
        assert history.history[f"val_{name}"][-1] == pytest.approx(value)
    focus = attention_statistics(outputs["attention_weights"])  # and how they attended
    assert history.history["val_attention_entropy"][-1] == pytest.approx(focus["mean_entropy"])
    assert history.history["val_max_alpha"][-1] == pytest.approx(focus["mean_max_alpha"])


def test_argument_checks(records):
    with pytest.raises(ValueError, match="at least one"):
        CaptionMetricsCallback([])
    with pytest.raises(ValueError, match="every_n_epochs"):
        CaptionMetricsCallback(records, every_n_epochs=0)
