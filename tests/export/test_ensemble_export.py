"""An ensemble exported as one SavedModel (`export_captioner(CaptionEnsemble(...))`)."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from helpers import encode_image
from helpers import python_captions
from helpers import tiny_image_model

from sat_keras import CaptionEnsemble
from sat_keras import Captioner
from sat_keras import ShowAttendTell
from sat_keras import SmallCNNEncoder
from sat_keras import cli
from sat_keras.export import export_captioner
from sat_keras.export.reload import load_exported_captioner
from sat_keras.export.saved_model import MODEL_CONFIG_FILE
from sat_keras.models.saving import load_captioner
from sat_keras.models.saving import save_captioner

IMAGES = [encode_image("jpeg", 60, 80, seed=1), encode_image("png", 32, 32, seed=2),
          encode_image("gif", 45, 30, seed=3)]
OUTPUTS = ("scores", "token_ids", "attention_weights")


def perturbed(model, seed, layers="decoder"):
    """`model` with noise added to its decoder's (or its encoder's) weights."""
    rng = np.random.default_rng(seed)
    for variable in getattr(model, layers).weights:
        if variable.dtype == "float32":
            variable.assign(variable.numpy() + rng.normal(scale=0.5, size=variable.shape))
    return model


@pytest.fixture(scope="module")
def members():
    """Three tiny models: one encoder's weights (trained apart, equal), decoders differing."""
    return [perturbed(tiny_image_model(), seed) for seed in (1, 2, 3)]


def serve(version_dir, images=IMAGES, signature="serving_default"):
    loaded = tf.saved_model.load(version_dir)
    return loaded, loaded.signatures[signature](image_bytes=tf.constant(images))


def assert_same_outputs(served, expected):
    assert [c.decode() for c in served["captions"].numpy()] == list(expected["captions"])
    for name in OUTPUTS:
        np.testing.assert_allclose(served[name].numpy(), expected[name], rtol=1e-5, atol=1e-5,
                                   err_msg=name)


def conv_ops(loaded, signature="serving_default"):
    """The Conv2D ops of a signature's graph, its functions' included."""
    graph_def = loaded.signatures[signature].graph.as_graph_def()
    nodes = list(graph_def.node) + [n for f in graph_def.library.function for n in f.node_def]
    return sum(node.op == "Conv2D" for node in nodes)


def test_the_export_captions_as_the_python_ensemble(members, tmp_path):
    ensemble = CaptionEnsemble(members)
    version_dir = export_captioner(ensemble, str(tmp_path / "ensemble" / "1"), beam_size=3,
                                   max_length=6, length_penalty=1.0)
    _, served = serve(version_dir)
    expected = python_captions(ensemble, IMAGES, tmp_path, beam_size=3, length_penalty=1.0)
    assert_same_outputs(served, expected)
    # The members' captions differ from the ensemble's, so averaging is what was tested.
    alone = [python_captions(m, IMAGES, tmp_path, beam_size=3, length_penalty=1.0)
             for m in members]
    assert all(not np.allclose(a["scores"], expected["scores"]) for a in alone)


def test_the_n_best_outputs_of_an_ensemble_export(members, tmp_path):
    ensemble = CaptionEnsemble(members[:2])
    version_dir = export_captioner(ensemble, str(tmp_path / "nbest" / "1"), beam_size=3,
                                   max_length=6, num_captions=2)
    _, served = serve(version_dir)
    expected = python_captions(ensemble, IMAGES, tmp_path, beam_size=3, num_captions=2)
    assert [[c.decode() for c in row] for row in served["nbest_captions"].numpy()] == \
        expected["captions"]
    np.testing.assert_allclose(served["nbest_scores"].numpy(), expected["scores"], rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_array_equal(served["captions"].numpy(),
                                  served["nbest_captions"].numpy()[:, 0])


def test_an_ensemble_of_one_exports_the_single_models_captions(members, tmp_path):
    model = members[0]
    single = export_captioner(model, str(tmp_path / "single" / "1"), beam_size=2, max_length=6)
    alone = export_captioner(CaptionEnsemble([model]), str(tmp_path / "one" / "1"),
                             beam_size=2, max_length=6)
    _, expected = serve(single)
    _, served = serve(alone)
    assert_same_outputs(served, {"captions": [c.decode() for c in expected["captions"].numpy()],
                                 **{name: expected[name].numpy() for name in OUTPUTS}})


def test_a_shared_encoder_runs_and_is_stored_once(members, tmp_path):
    model = members[0]
    single, _ = serve(export_captioner(model, str(tmp_path / "single" / "1"), max_length=6))
    shared_ensemble = CaptionEnsemble(members[:2])
    assert shared_ensemble.encoder_owners() == (0, 0)
    shared, _ = serve(export_captioner(shared_ensemble, str(tmp_path / "shared" / "1"),
                                       max_length=6))
    own_encoder = perturbed(tiny_image_model(), 4, layers="encoder")
    apart_ensemble = CaptionEnsemble([model, own_encoder])
    assert apart_ensemble.encoder_owners() == (0, 1)
    apart, _ = serve(export_captioner(apart_ensemble, str(tmp_path / "apart" / "1"),
                                      max_length=6))
    assert conv_ops(single) > 0
    assert conv_ops(shared) == conv_ops(single)
    assert conv_ops(apart) == 2 * conv_ops(single)
    encoder_weights = len(model.encoder.variables)
    assert len(shared.model_weights) == 2 * len(model.variables) - encoder_weights
    assert len(apart.model_weights) == 2 * len(model.variables)


def test_an_ensemble_export_reloads_as_the_ensemble_with_its_decoding(members, tmp_path):
    ensemble = CaptionEnsemble(members)
    base = tmp_path / "ensemble"
    export_captioner(ensemble, str(base / "1"), beam_size=3, max_length=6,
                     no_repeat_ngram_size=2)
    loaded = load_captioner(str(base))
    assert isinstance(loaded, CaptionEnsemble) and len(loaded.models) == 3
    assert loaded.encoder_owners() == (0, 0, 0)
    assert loaded.search_settings.beam_size == 3
    assert loaded.search_settings.no_repeat_ngram_size == 2
    search = loaded.search_settings.as_kwargs()
    assert_same_outputs(
        {name: tf.constant(value) for name, value in
         python_captions(loaded, IMAGES, tmp_path, **search).items()},
        python_captions(ensemble, IMAGES, tmp_path, **search))
    with pytest.raises(ValueError, match="holds a CaptionEnsemble, not a ShowAttendTell: "
                                         "CaptionEnsemble.from_preset or Captioner"):
        ShowAttendTell.from_preset(str(base))
    for cls in (Captioner, CaptionEnsemble):
        assert type(cls.from_preset(str(base))) is CaptionEnsemble
    with open(base / "1" / "assets.extra" / MODEL_CONFIG_FILE) as file:
        config = json.load(file)
    assert config["class_name"] == "CaptionEnsemble" and config["encoder_owners"] == [0, 0, 0]
    assert all("vocabulary" not in member["config"] for member in config["models"])


def test_an_int8_ensemble_export_reloads_close_to_the_ensemble(members, tmp_path):
    ensemble = CaptionEnsemble(members[:2])
    version_dir = export_captioner(ensemble, str(tmp_path / "int8" / "1"), beam_size=2,
                                   max_length=6, weights_dtype="int8")
    loaded = load_exported_captioner(version_dir)
    for original, restored in zip(ensemble.variables, loaded.variables):
        np.testing.assert_allclose(restored.numpy(), original.numpy(), atol=0.05)
    # The shared encoder, stored once, is copied into the second model again.
    for first, second in zip(loaded.models[0].encoder.weights, loaded.models[1].encoder.weights):
        np.testing.assert_array_equal(first.numpy(), second.numpy())


def test_models_with_different_annotations_export_without_caption_features(members, tmp_path):
    first = members[0]
    wider = ShowAttendTell(first.vocabulary, encoder=SmallCNNEncoder(filters=(4, 16)),
                           image_size=32, decoder={"embedding_dim": 8, "units": 12,
                                                   "attention_dim": 8})
    wider.build({"images": (None, 32, 32, 3)})  # annotations of 16 values, not 8
    version_dir = export_captioner(CaptionEnsemble([members[0], wider]),
                                   str(tmp_path / "mixed" / "1"), max_length=6)
    loaded, _ = serve(version_dir)
    assert sorted(loaded.signatures) == ["serving_default"]


def test_an_ensemble_is_exported_only_with_one_image_size_and_every_encoder(members, tmp_path):
    with pytest.raises(ValueError, match="images of one size"):
        export_captioner(CaptionEnsemble([members[0], tiny_image_model(image_size=40)]),
                         str(tmp_path / "sizes" / "1"))
    no_encoder = tiny_image_model()
    no_encoder.encoder = None
    with pytest.raises(ValueError, match="with an encoder and an image_size"):
        export_captioner(CaptionEnsemble([members[0], no_encoder]), str(tmp_path / "none" / "1"))


def test_the_cli_exports_the_ensemble_of_several_models(members, tmp_path, capsys):
    first, second = (perturbed(tiny_image_model(), seed) for seed in (1, 2))
    first.choose_search({"beam_size": 2, "max_length": 6, "length_penalty": 1.0})
    paths = [save_captioner(model, str(tmp_path / f"run{index}"))
             for index, model in enumerate((first, second))]
    output = tmp_path / "cli" / "1"
    assert cli.main(["export", "--model", paths[0], "--model", paths[1],
                     "--output", str(output)]) == 0
    with open(output / "assets.extra" / "export_config.json") as file:
        exported = json.load(file)
    # The first model's decoding, as no flag gave one.
    assert (exported["models"], exported["search"]["beam_size"],
            exported["search"]["length_penalty"]) == (2, 2, 1.0)
    _, served = serve(str(output))
    expected = python_captions(CaptionEnsemble([first, second]), IMAGES, tmp_path,
                               beam_size=2, length_penalty=1.0)
    assert_same_outputs(served, expected)
    assert os.path.isdir(output / "variables")
