import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from helpers import encode_image
from helpers import gif_bomb_20_mb
from helpers import hostile_images
from helpers import python_captions
from helpers import tiny_image_model

from sat_keras.export import export_captioner
from sat_keras.export.saved_model import ids_to_captions
from sat_keras.export.saved_model import vocabulary_table

SAVED_MODEL_CLI = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
IMAGES = [encode_image("jpeg", 60, 80, seed=1), encode_image("png", 32, 32, 4, seed=2),
          encode_image("gif", 45, 30, seed=3), encode_image("bmp", 20, 64, seed=4),
          encode_image("jpeg", 300, 200, 1, seed=5)]


FRESH_PROCESS = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    images = [bytes.fromhex(h) for h in json.loads(sys.stdin.read())]
    loaded = tf.saved_model.load(sys.argv[1])
    outputs = loaded.signatures["serving_default"](image_bytes=tf.constant(images))
    modules = [m for m in ("sat_keras", "tensorflow_text") if m in sys.modules]
    print(json.dumps({
        "captions": [c.decode() for c in outputs["captions"].numpy()],
        "scores": outputs["scores"].numpy().tolist(),
        "shapes": {k: list(v.shape) for k, v in outputs.items()},
        "dtypes": {k: v.dtype.name for k, v in outputs.items()},
        "modules": modules}))
""")


def test_a_fresh_process_without_sat_keras_or_tf_text_runs_the_export(exported_model, tmp_path):
    model, base = exported_model
    result = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, os.path.join(base, "1")],
        input=json.dumps([data.hex() for data in IMAGES]), capture_output=True, text=True,
        cwd=str(tmp_path), env={**os.environ, "PYTHONPATH": "", "TF_CPP_MIN_LOG_LEVEL": "2"},
        timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    assert served["modules"] == []
    expected = python_captions(model, IMAGES, tmp_path)
    assert served["captions"] == expected["captions"]
    np.testing.assert_allclose(served["scores"], expected["scores"], rtol=1e-5, atol=1e-5)
    assert served["shapes"] == {"captions": [5], "scores": [5], "token_ids": [5, 6],
                                "attention_weights": [5, 6, 64]}
    assert served["dtypes"] == {"captions": "string", "scores": "float32", "token_ids": "int32",
                                "attention_weights": "float32"}


def test_the_graph_holds_no_python_and_no_tensorflow_text_ops(exported_model):
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(exported_model[1], "1", "saved_model.pb"), "rb") as file:
        saved_model.ParseFromString(file.read())
    graph = saved_model.meta_graphs[0].graph_def
    ops = {node.op for node in graph.node}
    ops |= {node.op for function in graph.library.function for node in function.node_def}
    assert ops.isdisjoint({"PyFunc", "EagerPyFunc", "PyFuncStateless"})
    stripped = saved_model.meta_graphs[0].meta_info_def.stripped_op_list
    # Only stock TensorFlow ops (tf.raw_ops lists them; tensorflow-text's are not there),
    # so TF Serving runs the graph as it is.
    assert [op.name for op in stripped.op if not hasattr(tf.raw_ops, op.name)] == []
    assert "InitializeTableFromTextFileV2" in ops  # the vocabulary, read from its asset


def test_saved_model_cli_shows_both_signatures(exported_model):
    result = subprocess.run([SAVED_MODEL_CLI, "show", "--dir", os.path.join(exported_model[1], "1"),
                             "--all"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    shown = result.stdout
    default = shown[shown.index("signature_def['serving_default']"):]
    assert ("inputs['image_bytes'] tensor_info:\n        dtype: DT_STRING\n"
            "        shape: (-1)") in default
    for name, dtype in [("captions", "DT_STRING"), ("scores", "DT_FLOAT"),
                        ("token_ids", "DT_INT32"), ("attention_weights", "DT_FLOAT")]:
        assert f"outputs['{name}'] tensor_info:\n        dtype: {dtype}" in default
    features = shown[shown.index("signature_def['caption_features']"):]
    assert ("inputs['features'] tensor_info:\n        dtype: DT_FLOAT\n        "
            "shape: (-1, 64, 8)") in features


def test_saved_model_cli_runs_the_export(exported_model, tmp_path):
    model, base = exported_model
    inputs = tmp_path / "images.npy"
    np.save(inputs, np.array(IMAGES[:2], dtype=object), allow_pickle=True)
    result = subprocess.run(
        [SAVED_MODEL_CLI, "run", "--dir", os.path.join(base, "1"), "--tag_set", "serve",
         "--signature_def", "serving_default", "--inputs", f"image_bytes={inputs}"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    expected = python_captions(model, IMAGES[:2], tmp_path)["captions"]
    for caption in expected:
        assert repr(caption.encode()) in result.stdout


def test_caption_features_equals_model_caption_on_features(exported_model):
    model, base = exported_model
    rng = np.random.default_rng(0)
    features = rng.normal(size=(3, 64, 8)).astype("float32")
    outputs = tf.saved_model.load(os.path.join(base, "1")).signatures["caption_features"](
        features=tf.constant(features))
    expected = model.caption(features=features, beam_size=2, max_length=6)
    assert [c.decode() for c in outputs["captions"].numpy()] == expected["captions"]
    np.testing.assert_array_equal(outputs["token_ids"].numpy(), expected["token_ids"])


def test_export_config_and_vocabulary_travel_with_the_model(exported_model):
    model, base = exported_model
    extra = os.path.join(base, "1", "assets.extra")
    with open(os.path.join(extra, "export_config.json")) as file:
        config = json.load(file)
    assert config["search"]["beam_size"] == 2 and config["search"]["max_length"] == 6
    assert config["image_size"] == 32
    assert sorted(os.listdir(extra)) == ["export_config.json", "model_config.json"]
    with open(os.path.join(extra, "model_config.json")) as file:
        assert "vocabulary" not in json.load(file)["config"]  # the asset is its one copy
    with open(os.path.join(base, "1", "assets", "vocabulary.txt"), encoding="utf-8") as file:
        assert file.read().splitlines() == model.vocabulary.tokens  # the export's one copy


def test_an_empty_or_oversized_batch_is_refused(exported_model):
    signature = tf.saved_model.load(os.path.join(exported_model[1], "1")).signatures[
        "serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="1 to 64 items; it holds 0"):
        signature(image_bytes=tf.constant([], tf.string))
    with pytest.raises(tf.errors.InvalidArgumentError, match="1 to 64 items; it holds 65"):
        signature(image_bytes=tf.constant([IMAGES[0]] * 65))


def test_the_stock_signature_names_a_refused_item_and_its_reason(exported_model):
    # What TF Serving answers is the op's own message: it must read well unprocessed.
    signature = tf.saved_model.load(os.path.join(exported_model[1], "1")).signatures[
        "serving_default"]
    bomb_20_mb = ("GIF bomb of 20 MB", gif_bomb_20_mb(),
                  "a GIF frame larger than the logical screen")
    for label, data, problem in hostile_images() + [bomb_20_mb]:
        with pytest.raises(tf.errors.InvalidArgumentError) as error:
            signature(image_bytes=tf.constant([IMAGES[0], data]))
        assert "assertion failed: [Bad image" in error.value.message, label
        assert f"image_bytes[1]: {problem}" in error.value.message, label


def test_ids_to_captions_matches_vocabulary_decode(vocabulary, tmp_path):
    rng = np.random.default_rng(0)
    ids = rng.integers(0, len(vocabulary), size=(50, 9)).astype("int32")
    ids[:5] = [[1, 4, 5, 2, 7, 8, 0, 0, 0]] * 5
    path = tmp_path / "vocabulary.txt"
    path.write_text("".join(token + "\n" for token in vocabulary.tokens), encoding="utf-8")
    table = vocabulary_table(str(path))
    captions = [c.decode() for c in ids_to_captions(ids, table).numpy()]
    assert captions == [vocabulary.decode(row) for row in ids]


def test_the_version_directory_is_checked_and_never_half_written(tmp_path):
    model = tiny_image_model()
    with pytest.raises(ValueError, match="positive version number"):
        export_captioner(model, str(tmp_path / "name" / "latest"))
    path = export_captioner(model, str(tmp_path / "name" / "3"), beam_size=1, max_length=4)
    with pytest.raises(FileExistsError, match="overwrite"):
        export_captioner(model, path)
    export_captioner(model, path, beam_size=1, max_length=4, overwrite=True)
    assert sorted(os.listdir(tmp_path / "name")) == ["3"]


def test_a_model_without_an_encoder_cannot_be_exported(make_model, batch, tmp_path):
    model = make_model()
    model(batch[0])
    with pytest.raises(ValueError, match="encoder and an image_size"):
        export_captioner(model, str(tmp_path / "m" / "1"))


def test_the_xla_compiled_search_gives_the_same_captions(exported_model, tmp_path):
    model, base = exported_model
    path = export_captioner(model, str(tmp_path / "xla" / "1"), beam_size=2, max_length=6,
                            jit_compile=True)
    graph = tf.saved_model.load(path).signatures["serving_default"].graph.as_graph_def()
    compiled = [f for f in graph.library.function if f.attr["_XlaMustCompile"].b]
    assert compiled  # the search really is marked for XLA
    plain = tf.saved_model.load(os.path.join(base, "1")).signatures["serving_default"]
    xla = tf.saved_model.load(path).signatures["serving_default"]
    expected, outputs = plain(image_bytes=tf.constant(IMAGES)), xla(image_bytes=tf.constant(IMAGES))
    np.testing.assert_array_equal(outputs["captions"].numpy(), expected["captions"].numpy())
    np.testing.assert_allclose(outputs["scores"].numpy(), expected["scores"].numpy(), atol=1e-4)
    with open(os.path.join(path, "assets.extra", "export_config.json")) as file:
        assert json.load(file)["jit_compile"] is True


def test_the_n_best_export_adds_the_beams_best_and_keeps_the_default_outputs(
        exported_model, tmp_path):
    model, base = exported_model
    path = export_captioner(model, str(tmp_path / "nbest" / "1"), beam_size=3, max_length=6,
                            num_captions=3)
    signatures = tf.saved_model.load(path).signatures
    rng = np.random.default_rng(1)
    features = rng.normal(size=(2, 64, 8)).astype("float32")
    outputs = signatures["caption_features"](features=tf.constant(features))
    expected = model.caption(features=features, beam_size=3, max_length=6, num_captions=3)
    assert outputs["nbest_captions"].shape == (2, 3)
    assert [[c.decode() for c in row] for row in outputs["nbest_captions"].numpy()] == \
        expected["captions"]
    np.testing.assert_array_equal(outputs["nbest_token_ids"].numpy(), expected["token_ids"])
    np.testing.assert_allclose(outputs["nbest_scores"].numpy(), expected["scores"], rtol=1e-5)
    np.testing.assert_allclose(outputs["nbest_attention_weights"].numpy(),
                               expected["attention_weights"], atol=1e-6)
    # The default outputs are the best of the n, as an export without n gives them.
    assert [c.decode() for c in outputs["captions"].numpy()] == \
        [row[0] for row in expected["captions"]]
    assert outputs["attention_weights"].shape == (2, 6, 64)
    from_images = signatures["serving_default"](image_bytes=tf.constant(IMAGES[:2]))
    assert from_images["nbest_attention_weights"].shape == (2, 3, 6, 64)
    with open(os.path.join(path, "assets.extra", "export_config.json")) as file:
        assert json.load(file)["search"]["num_captions"] == 3
    with pytest.raises(ValueError, match="num_captions"):
        export_captioner(model, str(tmp_path / "bad" / "1"), beam_size=2, num_captions=3)


def test_a_model_fine_tuned_above_a_cached_layer_exports_its_tuned_stage(vocabulary, tmp_path):
    import keras

    from sat_keras import ShowAttendTell
    from sat_keras.encoders import PretrainedEncoder

    keras.utils.set_random_seed(0)
    encoder = PretrainedEncoder("mobilenet", weights=None, trainable=True,
                                backbone_kwargs={"alpha": 0.25}, cache_layer="conv_pw_10_relu")
    model = ShowAttendTell(vocabulary, encoder=encoder, image_size=224,
                           decoder={"embedding_dim": 8, "units": 12, "attention_dim": 8})
    model.build({"images": (None, 224, 224, 3)})
    top = encoder.network.get_layer("conv_pw_11")
    top.kernel.assign(top.kernel * 3.0)  # a "tuned" stage that differs from the initial one
    path = export_captioner(model, str(tmp_path / "tuned" / "1"), beam_size=2, max_length=6)
    loaded = tf.saved_model.load(path)
    outputs = loaded.signatures["serving_default"](image_bytes=tf.constant(IMAGES[:2]))
    expected = python_captions(model, IMAGES[:2], tmp_path)
    assert [c.decode() for c in outputs["captions"].numpy()] == expected["captions"]
    np.testing.assert_allclose(outputs["scores"].numpy(), expected["scores"], rtol=1e-4)
    # caption_features takes what the cache holds: conv_pw_10's 14 x 14 x 128 grid.
    images = np.random.default_rng(0).integers(0, 255, (2, 224, 224, 3)).astype("uint8")
    cached = keras.ops.convert_to_numpy(encoder.to_cache(images))
    assert cached.shape == (2, 196, 128)
    from_cache = loaded.signatures["caption_features"](features=tf.constant(cached))
    np.testing.assert_array_equal(from_cache["token_ids"].numpy(),
                                  model.caption(images=images, beam_size=2,
                                                max_length=6)["token_ids"])
