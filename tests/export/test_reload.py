"""Half-precision and int8 exports, and Keras models rebuilt from exports (`export.reload`)."""

import os

import numpy as np
import pytest
import tensorflow as tf
from helpers import encode_image
from helpers import python_captions
from helpers import tiny_image_model

from sat_keras import ShowAttendTell
from sat_keras import cli
from sat_keras import metrics
from sat_keras.decoding import SearchSettings
from sat_keras.export import export_captioner
from sat_keras.export.reload import read_export_config
from sat_keras.export.saved_model import MODEL_CONFIG_FILE
from sat_keras.export.saved_model import export_search
from sat_keras.models.saving import load_captioner
from sat_keras.text import UNK_ID

IMAGES = [encode_image("jpeg", 60, 80, seed=1), encode_image("png", 32, 32, seed=2),
          encode_image("jpeg", 40, 40, seed=3)]


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """(model, {"float32": base, "float16": base, "int8": base}) of one tiny model,
    beam 2, 6 words."""
    model = tiny_image_model()
    root = tmp_path_factory.mktemp("exports")
    bases = {}
    for dtype in ("float32", "float16", "int8"):
        bases[dtype] = str(root / dtype)
        export_captioner(model, os.path.join(bases[dtype], "1"), beam_size=2, max_length=6,
                         weights_dtype=dtype)
    return model, bases


def variables_size(base):
    folder = os.path.join(base, "1", "variables")
    return sum(os.path.getsize(os.path.join(folder, name)) for name in os.listdir(folder))


def stored_dtypes(base):
    """{(dtype, rank >= 2)} of the stored variables."""
    reader = tf.train.load_checkpoint(os.path.join(base, "1", "variables", "variables"))
    shapes = reader.get_variable_to_shape_map()
    return {(dtype.name, len(shapes[name]) >= 2)
            for name, dtype in reader.get_variable_to_dtype_map().items()
            if name.endswith("VARIABLE_VALUE")}


def serve(base, images):
    loaded = tf.saved_model.load(os.path.join(base, "1"))
    return loaded.signatures["serving_default"](image_bytes=tf.constant(images))


def test_a_float16_export_stores_half_precision_and_answers_as_the_float32_one(exports):
    _, bases = exports
    # Matrices and kernels in float16; vectors (biases, statistics) and the
    # int64 seed state as they are.
    assert stored_dtypes(bases["float32"]) == {("float32", True), ("float32", False),
                                               ("int64", False)}
    assert stored_dtypes(bases["float16"]) == {("float16", True), ("float32", False),
                                               ("int64", False)}
    assert variables_size(bases["float16"]) < 0.6 * variables_size(bases["float32"])
    full, half = serve(bases["float32"], IMAGES), serve(bases["float16"], IMAGES)
    np.testing.assert_array_equal(full["token_ids"], half["token_ids"])
    np.testing.assert_allclose(full["scores"], half["scores"], atol=1e-3)
    assert half["attention_weights"].dtype == tf.float32  # it computes in float32


def test_an_int8_export_stores_quantized_kernels_that_python_and_the_server_share(
        exports, tmp_path):
    model, bases = exports
    # Matrices and kernels in int8; vectors, per-channel scales and the seed
    # state in float32 / int64.
    assert stored_dtypes(bases["int8"]) == {("int8", True), ("float32", False),
                                            ("int64", False)}
    loaded = load_captioner(bases["int8"])
    assert read_export_config(bases["int8"])["weights_dtype"] == "int8"
    for original, again in zip(model.variables, loaded.variables):
        original, again = original.numpy(), again.numpy()
        if original.ndim < 2 or original.dtype != np.float32:
            np.testing.assert_array_equal(again, original)  # vectors as they were
            continue
        step = np.abs(original).max(axis=tuple(range(original.ndim - 1))) / 127
        assert np.all(np.abs(again - original) <= step / 2 + 1e-7)  # rounded per channel
        assert not np.array_equal(again, original)
    # A quarter of the bytes of big matrices; names and scales weigh in this tiny model.
    assert variables_size(bases["int8"]) < 0.5 * variables_size(bases["float32"])
    served = serve(bases["int8"], IMAGES)
    python = python_captions(loaded, IMAGES, tmp_path)
    np.testing.assert_array_equal(served["token_ids"], python["token_ids"])
    np.testing.assert_allclose(served["scores"], python["scores"], atol=1e-4)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_an_export_loads_back_as_the_keras_model(exports, dtype, tmp_path):
    model, bases = exports
    loaded = load_captioner(bases[dtype])  # the base directory: its newest version
    assert isinstance(loaded, ShowAttendTell)
    assert loaded.vocabulary == model.vocabulary and loaded.decoder.units == model.decoder.units
    assert read_export_config(bases[dtype])["weights_dtype"] == dtype
    # The export's decoding comes back as the model's own.
    assert loaded.search_settings == SearchSettings(beam_size=2, max_length=6)
    tolerance = 0.0 if dtype == "float32" else 1e-3
    for original, again in zip(model.variables, loaded.variables):
        np.testing.assert_allclose(original.numpy(), again.numpy(), atol=tolerance, rtol=1e-3)
    want = python_captions(model, IMAGES, tmp_path)
    got = python_captions(loaded, IMAGES, tmp_path)
    np.testing.assert_array_equal(want["token_ids"], got["token_ids"])
    np.testing.assert_allclose(want["scores"], got["scores"], atol=tolerance + 1e-5)
    same = ShowAttendTell.from_preset(os.path.join(bases[dtype], "1"))  # and as a preset
    np.testing.assert_array_equal(same.get_weights()[0], loaded.get_weights()[0])


def test_caption_takes_an_export_with_its_decoding_settings(exports, tmp_path, capsys):
    model, bases = exports
    path = tmp_path / "photo.jpg"
    path.write_bytes(IMAGES[0])
    assert cli.main(["caption", str(path), "--model", bases["float16"]]) == 0
    caption = python_captions(model, IMAGES[:1], tmp_path)["captions"][0]  # beam 2, 6 words
    assert capsys.readouterr().out == f"{path}: {caption}\n"


def test_export_and_caption_default_to_a_trained_models_chosen_decoding(tmp_path, capsys):
    chosen = {"beam_size": 2, "max_length": 6, "length_penalty": 1.0, "suppress_unknown": True}
    model = tiny_image_model()
    model.compile()
    model.choose_search(chosen)
    model.save(tmp_path / "model.keras")
    for flags, expected in (([], chosen), (["--beam-size", "1", "--no-suppress-unknown"],
                                           {**chosen, "beam_size": 1,
                                            "suppress_unknown": False})):
        output = str(tmp_path / f"export{len(flags)}" / "1")
        assert cli.main(["export", "--model", str(tmp_path / "model.keras"),
                         "--output", output, *flags]) == 0
        exported = read_export_config(output)["search"]  # every field, in one object
        assert exported == SearchSettings(**expected).to_config()
    path = tmp_path / "photo.jpg"
    path.write_bytes(IMAGES[0])
    capsys.readouterr()
    assert cli.main(["caption", str(path), "--model", str(tmp_path / "model.keras")]) == 0
    caption = python_captions(model, IMAGES[:1], tmp_path, **chosen)["captions"][0]
    assert capsys.readouterr().out == f"{path}: {caption}\n"
    greedy = python_captions(model, IMAGES[:1], tmp_path, beam_size=1, max_length=20)
    assert greedy["captions"][0] != caption  # so the chosen settings were used


def test_an_export_blocks_repeated_ngrams_in_its_graph_and_reloads_the_setting(tmp_path,
                                                                                capsys):
    model = tiny_image_model()
    plain = python_captions(model, IMAGES, tmp_path, beam_size=1, max_length=12)
    assert metrics.caption_diversity(plain["captions"])["repeated_bigrams"] > 0  # untrained
    base = str(tmp_path / "blocked")
    model.save(tmp_path / "model.keras")
    assert cli.main(["export", "--model", str(tmp_path / "model.keras"), "--output",
                     os.path.join(base, "1"), "--beam-size", "1", "--max-length", "12",
                     "--no-repeat-ngram-size", "2"]) == 0
    assert read_export_config(base)["search"]["no_repeat_ngram_size"] == 2
    served = [caption.decode() for caption in
              serve(base, IMAGES)["captions"].numpy().tolist()]
    blocked = python_captions(model, IMAGES, tmp_path, beam_size=1, max_length=12,
                              no_repeat_ngram_size=2)["captions"]
    assert served == blocked and blocked != plain["captions"]
    assert metrics.caption_diversity(served)["repeated_bigrams"] == 0.0
    assert load_captioner(base).search_settings.no_repeat_ngram_size == 2
    capsys.readouterr()
    path = tmp_path / "photo.jpg"
    path.write_bytes(IMAGES[0])
    assert cli.main(["caption", str(path), "--model", base]) == 0  # the export's own setting
    assert capsys.readouterr().out == f"{path}: {blocked[0]}\n"


def test_an_export_without_its_model_config_says_what_to_do(exports, tmp_path):
    model, _ = exports
    base = str(tmp_path / "old")
    export_captioner(model, os.path.join(base, "1"), beam_size=1)
    os.remove(os.path.join(base, "1", "assets.extra", MODEL_CONFIG_FILE))
    with pytest.raises(ValueError, match="Export it again"):
        load_captioner(base)
    with pytest.raises(FileNotFoundError, match="or a SavedModel"):
        load_captioner(str(tmp_path / "nothing"))


def test_values_beyond_float16_stay_exact_in_vectors_and_are_refused_in_kernels(tmp_path):
    model = tiny_image_model()
    index, vector = next((i, v) for i, v in enumerate(model.variables)
                         if len(v.shape) == 1 and v.dtype == "float32")
    vector.assign(np.full(vector.shape, 1e6, "float32"))  # beyond float16's 65504
    export_captioner(model, str(tmp_path / "big" / "1"), beam_size=1, weights_dtype="float16")
    loaded = load_captioner(str(tmp_path / "big"))
    np.testing.assert_array_equal(loaded.variables[index].numpy(), vector.numpy())
    kernel = next(v for v in model.variables if len(v.shape) == 2)
    kernel.assign(np.full(kernel.shape, 1e6, "float32"))
    with pytest.raises(ValueError, match="beyond float16's range"):
        export_captioner(model, str(tmp_path / "bigger" / "1"), weights_dtype="float16")


def test_bad_weights_dtype_is_refused(exports, tmp_path):
    model, _ = exports
    with pytest.raises(ValueError, match="weights_dtype must be one of"):
        export_captioner(model, str(tmp_path / "m" / "1"), weights_dtype="int4")


def test_an_exports_search_is_one_object_and_older_exports_flat_fields_still_read(exports):
    _, bases = exports
    config = read_export_config(bases["float32"])
    assert config["search"] == SearchSettings(beam_size=2, max_length=6).to_config()
    assert export_search(config) == SearchSettings(beam_size=2, max_length=6)
    shipped = {"max_length": 20, "beam_size": 5, "length_penalty": 1.0,
               "suppress_unknown": True, "no_repeat_ngram_size": 2, "num_captions": 3,
               "image_size": 224, "weights_dtype": "int8"}  # saved_models/flickr8k/4's
    assert export_search(shipped) == SearchSettings(
        beam_size=5, length_penalty=1.0, suppress_unknown=True, no_repeat_ngram_size=2,
        num_captions=3)
    assert export_search({"max_length": 6, "beam_size": 2}) == SearchSettings(
        beam_size=2, max_length=6)  # 0.2's: no length penalty, nothing else recorded
    with pytest.raises(ValueError, match=r"Unknown decoding settings \['beam'\]"):
        export_search({"search": {"beam": 4}})


def test_an_export_takes_the_models_decoding_with_the_changes_given(tmp_path):
    model = tiny_image_model()
    model.choose_search({"beam_size": 3, "suppress_unknown": True})  # the CLI's own-decoding
    # export: test_export_and_caption_default_to_a_trained_models_chosen_decoding
    export_captioner(model, str(tmp_path / "changed" / "1"), beam_size=2, num_captions=2)
    assert export_search(read_export_config(str(tmp_path / "changed"))) == (
        model.search_settings.replace(beam_size=2, num_captions=2))
    with pytest.raises(ValueError, match="temperature"):
        export_captioner(model, str(tmp_path / "sampled" / "1"), search=SearchSettings(
            temperature=0.7))
    assert not (tmp_path / "sampled").exists()


def test_suppress_unknown_keeps_unk_out_of_python_exported_and_cli_captions(tmp_path, capsys):
    model = tiny_image_model()
    kernel, bias = (next(v for v in model.variables if v.path.endswith("logits/" + name))
                    for name in ("kernel", "bias"))
    kernel.assign(np.zeros(kernel.shape))  # the logits are the bias:
    # <unk> always wins, and without it the first real word (id 4).
    bias.assign(np.select([np.arange(bias.shape[0]) == UNK_ID, np.arange(bias.shape[0]) == 4],
                          [50.0, 40.0], 0.0))
    word = model.vocabulary.tokens[4]
    jpegs = [IMAGES[0], IMAGES[2]]
    assert python_captions(model, jpegs, tmp_path, beam_size=1, max_length=4)["captions"] == [
        "<unk> " * 3 + "<unk>"] * 2
    for beam_size in (1, 3):
        captions = python_captions(model, jpegs, tmp_path, beam_size=beam_size, max_length=4,
                                   suppress_unknown=True)["captions"]
        assert captions == [" ".join([word] * 4)] * 2
    base = str(tmp_path / "suppressed")
    export_captioner(model, os.path.join(base, "1"), beam_size=2, max_length=4,
                     suppress_unknown=True)
    served = tf.saved_model.load(os.path.join(base, "1")).signatures["serving_default"](
        image_bytes=tf.constant(IMAGES))["captions"].numpy()
    assert served.tolist() == [" ".join([word] * 4).encode()] * 3
    assert load_captioner(base).search_settings.suppress_unknown is True
    path = _write(tmp_path, 0)
    assert cli.main(["caption", path, "--model", base]) == 0
    assert "<unk>" not in capsys.readouterr().out
    assert cli.main(["caption", path, "--model", base, "--no-suppress-unknown"]) == 0
    assert "<unk>" in capsys.readouterr().out


def _write(tmp_path, index):
    path = tmp_path / f"image-{index}.jpg"
    path.write_bytes(IMAGES[index])
    return str(path)
