"""The real-photo path as a user runs it, held to a bar: the model must see the photos.

Features come from `sat-keras extract-features` with the real MobileNet
ImageNet weights on shared Flickr8k photos. After a short training on them,
held-back photos' own captions must be clearly more likely than under the
same training on zeroed features (a language model that never sees the
image), and clearly more likely than other photos' captions (for a model
blind to the image the two are equal). A regression that extracted
all-zero features once passed every other test.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import FLICKR8K_DIR
from helpers import MOBILENET_WEIGHTS
from helpers import flickr8k_subset

from sat_keras import ShowAttendTell
from sat_keras import Vocabulary
from sat_keras import cli
from sat_keras.data.features import CachedFeatures
from sat_keras.data.flickr8k import read_flickr8k
from sat_keras.data.pipeline import make_caption_dataset
from sat_keras.data.records import CaptionRecord
from sat_keras.data.records import select_split
from sat_keras.metrics import caption_metrics

pytestmark = [
    pytest.mark.slow,
    pytest.mark.needs_shared(FLICKR8K_DIR, MOBILENET_WEIGHTS),
]

TRAIN_IMAGES, HELD_BACK_IMAGES, EPOCHS, MAX_LENGTH = 800, 100, 8, 16


def _zeroed(dataset):
    return dataset.map(lambda inputs, targets: (
        {**inputs, "features": tf.zeros_like(inputs["features"])}, targets))


def _nll(model, records, vocabulary, features, blind):
    """Teacher-forced NLL per caption of records' captions given their images' features."""
    batches = make_caption_dataset(records, vocabulary, batch_size=64, max_length=MAX_LENGTH,
                                   shuffle=False, features=features)
    return model.evaluate(_zeroed(batches) if blind else batches, verbose=0,
                          return_dict=True)["nll"]


def _train_and_score(train, held_back, vocabulary, features, blind):
    keras.utils.set_random_seed(0)
    model = ShowAttendTell(vocabulary, decoder={"embedding_dim": 128, "units": 256,
                                                "attention_dim": 128, "dropout": 0.0})
    model.compile(optimizer=keras.optimizers.Adam(2e-3, clipnorm=5.0))
    batches = make_caption_dataset(train, vocabulary, batch_size=32, max_length=MAX_LENGTH,
                                   seed=0, features=features)
    model.fit(_zeroed(batches) if blind else batches, epochs=EPOCHS, verbose=0)
    # Each photo's captions paired with the next photo's features.
    swapped = [CaptionRecord(held_back[(index + 1) % len(held_back)].image_path,
                             record.captions, record.split)
               for index, record in enumerate(held_back)]
    annotations = np.stack([features.lookup(r.image_path).numpy() for r in held_back])
    captions = model.caption(features=np.zeros_like(annotations) if blind else annotations,
                             max_length=MAX_LENGTH)["captions"]
    scores = caption_metrics([r.captions for r in held_back], captions, with_meteor=False)
    scores["nll"] = _nll(model, held_back, vocabulary, features, blind)
    scores["nll_other_photos"] = _nll(model, swapped, vocabulary, features, blind)
    scores["distinct"] = len(set(captions))
    return scores


def test_held_back_photos_are_described_better_than_by_an_image_blind_baseline(tmp_path):
    data_dir = flickr8k_subset(tmp_path / "flickr8k", train=TRAIN_IMAGES, dev=HELD_BACK_IMAGES)
    assert cli.main(["extract-features", "--dataset", "flickr8k", "--data-dir", data_dir,
                     "--encoder", "mobilenet", "--encoder-weights", str(MOBILENET_WEIGHTS),
                     "--output", str(tmp_path / "features")]) == 0
    features = CachedFeatures(str(tmp_path / "features"))
    records = read_flickr8k(data_dir)
    train, held_back = select_split(records, "train"), select_split(records, "val")
    vocabulary = Vocabulary.build((c for r in train for c in r.captions), min_count=3)

    seeing = _train_and_score(train, held_back, vocabulary, features, blind=False)
    blind = _train_and_score(train, held_back, vocabulary, features, blind=True)
    report = f"with the photos: {seeing}\nimage-blind: {blind}"
    print(report)
    assert seeing["nll"] <= 0.95 * blind["nll"], report
    assert seeing["nll"] <= 0.95 * seeing["nll_other_photos"], report
    assert seeing["cider_d"] >= 2 * blind["cider_d"] and seeing["distinct"] >= 10, report
