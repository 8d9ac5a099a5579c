"""The committed `saved_models/shapes/1` is a trained captioner that serves."""

import json
import os

import pytest

from sat_keras.data.synthetic import generate_synthetic
from sat_keras.metrics import caption_metrics
from sat_keras.serving import CaptionClient
from sat_keras.serving import LocalServer

SHAPES = os.path.join(os.path.dirname(__file__), "..", "..", "saved_models", "shapes")


@pytest.fixture(scope="module")
def shapes_server():
    server = LocalServer(SHAPES, port=0, host="127.0.0.1")
    yield server
    server.stop()


def test_the_committed_model_captions_unseen_synthetic_images(shapes_server, tmp_path):
    records = generate_synthetic(str(tmp_path), num_images=48, seed=2024)
    images = [open(record.image_path, "rb").read() for record in records]
    with CaptionClient(f"127.0.0.1:{shapes_server.port}", "shapes", timeout=120) as client:
        captions = client.caption(images)["captions"]
    scores = caption_metrics([r.captions for r in records], captions, with_meteor=False)
    assert scores["bleu_4"] >= 0.8, (scores, captions[:3])


def test_the_committed_model_is_small_and_says_how_it_was_exported():
    version = os.path.join(SHAPES, "1")
    size = sum(os.path.getsize(os.path.join(folder, name))
               for folder, _, names in os.walk(version) for name in names)
    assert size < 4 * 1024 * 1024
    with open(os.path.join(version, "assets.extra", "export_config.json")) as file:
        assert json.load(file)["beam_size"] == 3
