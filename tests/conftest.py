import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from helpers import CAPTIONS  # noqa: E402
from helpers import shared_path  # noqa: E402
from helpers import split_decoder_arguments  # noqa: E402
from helpers import tiny_image_model  # noqa: E402

from sat_keras import ShowAttendTell  # noqa: E402
from sat_keras import SmallCNNEncoder  # noqa: E402
from sat_keras import Vocabulary  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "needs_shared(*paths): files under ../shared the test reads; skipped when "
        "missing, failed instead in CI (helpers.shared_path)")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Before any fixture: the `needs_shared` mark's files exist, or a skip (CI: a failure)."""
    for mark in item.iter_markers("needs_shared"):
        shared_path(*mark.args)


@pytest.fixture
def vocabulary():
    return Vocabulary.build(CAPTIONS)  # 4 special tokens + 14 words


@pytest.fixture
def make_model(vocabulary):
    """A tiny seeded model; features (B, L=4, D=8) or 32x32 images."""

    def make(with_encoder=False, vocabulary=vocabulary, **overrides):
        keras.utils.set_random_seed(0)
        decoder, settings = split_decoder_arguments(
            {"embedding_dim": 8, "units": 12, "attention_dim": 8, "dropout": 0.0,
             "image_size": 32, **overrides})
        encoder = SmallCNNEncoder(filters=(4, 8)) if with_encoder else None
        return ShowAttendTell(vocabulary, encoder=encoder, decoder=decoder, **settings)

    return make


@pytest.fixture
def batch():
    """Features (B=2, L=4, D=8), token_ids and targets (T=5) with padding."""
    rng = np.random.default_rng(0)
    features = rng.normal(size=(2, 4, 8)).astype("float32")
    token_ids = np.array([[1, 4, 7, 5, 6], [1, 4, 8, 0, 0]], "int32")
    target_ids = np.array([[4, 7, 5, 6, 2], [4, 8, 2, 0, 0]], "int32")
    return {"features": features, "token_ids": token_ids}, target_ids


@pytest.fixture(scope="session")
def exported_model(tmp_path_factory):
    """(model, base_path): the tiny image model exported as <base>/1, beam 2, 6 words."""
    from sat_keras.export import export_captioner

    model = tiny_image_model()
    base = tmp_path_factory.mktemp("saved_models") / "tiny"
    export_captioner(model, str(base / "1"), beam_size=2, max_length=6)
    return model, str(base)


@pytest.fixture(scope="session")
def local_server(exported_model):
    """The tiny exported model served in-process on free gRPC and REST ports."""
    from sat_keras.serving import LocalServer

    server = LocalServer(exported_model[1], port=0, rest_port=0, host="127.0.0.1")
    yield server
    server.stop()
