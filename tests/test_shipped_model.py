"""The Flickr8k captioner that ships in saved_models/, used with nothing trained first."""

import pathlib

import numpy as np
import pytest
from helpers import FLICKR8K_DIR

from sat_keras import CaptionEnsemble
from sat_keras import Captioner
from sat_keras import cli
from sat_keras.data.flickr8k import read_flickr8k
from sat_keras.data.records import select_split
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


@needs_photos
def test_the_shipped_model_describes_dev_photos_better_than_other_photos(dev_photos):
    model = Captioner.from_preset("flickr8k")
    assert read_export_config(str(SHIPPED))["weights_dtype"] == "int8"
    # two decoders over one ResNet50, which runs once
    assert isinstance(model, CaptionEnsemble) and model.encoder_owners() == (0, 0)
    images = np.stack([np.asarray(keras_image(r.image_path)) for r in dev_photos])
    search = model.search_settings  # the export's: beam 5, lp 1, no <unk>, no repeated bigram
    assert (search.beam_size, search.length_penalty, search.suppress_unknown,
            search.no_repeat_ngram_size) == (5, 1.0, True, 2)
    captions = model.caption(images=images, **search.as_kwargs())["captions"]
    assert all(captions)
    own = cider_d([r.captions for r in dev_photos], captions)
    others = cider_d([r.captions for r in dev_photos[1:] + dev_photos[:1]], captions)
    assert own > 0.3 and own > 4 * others, (own, others, captions[:3])


def keras_image(path):
    from sat_keras.data.images import load_image

    return load_image(path, 224)


@needs_photos
def test_the_shipped_model_captions_a_photo_from_the_command_line_and_over_grpc(
        dev_photos, capsys):
    photo = dev_photos[0].image_path
    assert cli.main(["caption", photo, "--model", str(SHIPPED)]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed.startswith(f"{photo}: ") and len(printed.split(": ", 1)[1].split()) >= 3
    with LocalServer(str(SHIPPED), port=0, host="127.0.0.1") as server:
        client = CaptionClient(f"127.0.0.1:{server.port}", server.model_name, timeout=60)
        served = client.caption([photo])["captions"][0]
    assert printed == f"{photo}: {served}"  # one export: the command line and the server agree
