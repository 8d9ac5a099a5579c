"""The Flickr8k captioner that ships in saved_models/, used with nothing trained first."""

import pathlib

import numpy as np
import pytest
import tensorflow as tf
from helpers import FLICKR8K_DIR

from sat_keras import CaptionEnsemble
from sat_keras import Captioner
from sat_keras import cli
from sat_keras.data.flickr8k import read_flickr8k
from sat_keras.data.records import select_split
from sat_keras.export.reload import export_version_directory
from sat_keras.export.reload import read_export_config
from sat_keras.metrics import cider_d
from sat_keras.serving import CaptionClient
from sat_keras.serving import LocalServer

REPOSITORY = pathlib.Path(__file__).resolve().parent.parent
SAVED_MODELS = REPOSITORY / "saved_models"
SHIPPED = SAVED_MODELS / "flickr8k"
needs_photos = pytest.mark.needs_shared(FLICKR8K_DIR)


def test_saved_models_stays_within_60_mb():
    size = sum(path.stat().st_size for path in SAVED_MODELS.rglob("*") if path.is_file())
    assert size <= 60 * 2 ** 20, f"saved_models/ holds {size / 2 ** 20:.1f} MB"


@pytest.fixture(scope="module")
def dev_photos():
    return select_split(read_flickr8k(str(FLICKR8K_DIR)), "val")[:24]


@pytest.fixture(scope="module")
def shipped():
    return Captioner.from_preset("flickr8k")


@needs_photos
def test_the_shipped_model_describes_dev_photos_better_than_other_photos(dev_photos, shipped):
    assert read_export_config(str(SHIPPED))["weights_dtype"] == "int8"
    # two decoders over one ResNet50, which runs once
    assert isinstance(shipped, CaptionEnsemble) and shipped.encoder_owners() == (0, 0)
    images = np.stack([np.asarray(keras_image(r.image_path)) for r in dev_photos])
    search = shipped.search_settings  # the export's: beam 5, lp 1, no <unk>, no repeated bigram
    assert (search.beam_size, search.length_penalty, search.suppress_unknown,
            search.no_repeat_ngram_size) == (5, 1.0, True, 2)
    captions = shipped.generate(images)
    assert all(isinstance(caption, str) and caption for caption in captions)
    own = cider_d([r.captions for r in dev_photos], captions)
    others = cider_d([r.captions for r in dev_photos[1:] + dev_photos[:1]], captions)
    assert own > 0.3 and own > 4 * others, (own, others, captions[:3])


def keras_image(path):
    from sat_keras.data.images import load_image

    return load_image(path, 224)


@pytest.mark.slow
@needs_photos
def test_every_door_gives_a_photo_the_same_caption(dev_photos, shipped, capsys):
    """Python's `generate`, `sat-keras caption`, the SavedModel's `serving_default` in
    plain TensorFlow, and the in-process servers (REST and gRPC), on 20 real photos,
    each with its own default decoding: the model's. (Slow: the real model loads
    four times, about 30 s on 2 cores.)"""
    photos = [record.image_path for record in dev_photos[:20]]
    in_python = shipped.generate(photos)

    assert cli.main(["caption", *photos]) == 0  # the default model: the shipped one
    printed = capsys.readouterr().out.strip().split("\n")
    assert [line.split(": ", 1)[0] for line in printed] == photos
    from_the_command_line = [line.split(": ", 1)[1] for line in printed]

    saved = tf.saved_model.load(export_version_directory(str(SHIPPED)))
    encoded = tf.constant([pathlib.Path(photo).read_bytes() for photo in photos])
    in_tensorflow = [caption.decode() for caption in
                     saved.signatures["serving_default"](image_bytes=encoded)["captions"].numpy()]

    with LocalServer(str(SHIPPED), port=0, rest_port=0, host="127.0.0.1") as server:
        over_rest = CaptionClient(f"127.0.0.1:{server.rest_port}", server.model_name,
                                  protocol="rest", timeout=120).caption(photos)["captions"]
        over_grpc = CaptionClient(f"127.0.0.1:{server.port}", server.model_name,
                                  timeout=120).caption(photos)["captions"]

    assert len(set(in_python)) >= 15 and all(len(c.split()) >= 3 for c in in_python)
    assert from_the_command_line == in_python
    assert in_tensorflow == in_python
    assert list(over_rest) == in_python
    assert list(over_grpc) == in_python
