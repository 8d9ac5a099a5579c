"""Artefacts written by sat_keras 0.2 load and caption as 0.2 captioned them.

tests/data/release_0_2 holds one tiny model (tests/helpers.py's
tiny_image_model with a lowered `<end>` logit, so that its captions run to
full length) as the 0.2.0 release wrote it: `model.keras` (compiled, its
chosen search beam 2, 6 words, length penalty 1), a preset directory, a
float16 export (beam 2, 6 words, no length penalty), the three images it
captioned and what 0.2 answered with the chosen search (`captions.json`).
"""

import json
import pathlib

import numpy as np
import pytest

from sat_keras import ShowAttendTell
from sat_keras.decoding import SearchSettings
from sat_keras.models.saving import load_captioner

RELEASE = pathlib.Path(__file__).resolve().parent.parent / "data" / "release_0_2"
CHOSEN = SearchSettings(beam_size=2, max_length=6, length_penalty=1.0)


@pytest.fixture(scope="module")
def expected():
    with open(RELEASE / "captions.json") as file:
        return json.load(file)


@pytest.mark.parametrize("artefact", ["model.keras", "preset", "export"])
def test_a_0_2_artefact_captions_as_0_2_did(artefact, expected):
    assert expected["sat_keras_version"] == "0.2.0"
    model = ShowAttendTell.from_preset(str(RELEASE / artefact))
    images = np.load(RELEASE / "images.npy")
    result = model.caption(images=images, search=CHOSEN)
    assert result["captions"] == expected["captions"]
    np.testing.assert_array_equal(result["token_ids"], expected["token_ids"])
    # The export stores float16 weights; the others are exact.
    tolerance = 2e-2 if artefact == "export" else 1e-5
    np.testing.assert_allclose(result["scores"], expected["scores"], atol=tolerance)


@pytest.mark.parametrize("artefact, search", [
    ("model.keras", CHOSEN), ("export", SearchSettings(beam_size=2, max_length=6)),
    ("preset", CHOSEN)])
def test_a_0_2_artefact_keeps_its_decoding(artefact, search):
    model = load_captioner(str(RELEASE / artefact))
    assert model.search_settings == search


@pytest.mark.parametrize("artefact", ["model.keras", "preset"])
def test_a_0_2_model_captions_by_default_as_0_2_did_with_its_chosen_search(artefact, expected):
    model = load_captioner(str(RELEASE / artefact))
    assert model.generate(np.load(RELEASE / "images.npy")) == expected["captions"]
