"""A trained captioner -> SavedModel for TF Serving (image bytes in, captions out).

Layout: `<base>/<name>/<version>/` with `saved_model.pb`, `variables/`,
`assets/vocabulary.txt` (one token per line, line i for id i: the export's
one copy of the vocabulary, which the graph's id-to-word table reads) and
`assets.extra/export_config.json`. Signatures:

- `serving_default`: `image_bytes` string (N,) -> `captions` string (N,),
  `scores` float32 (N,), `token_ids` int32 (N, T), `attention_weights`
  float32 (N, T, L);
- `caption_features`: `features` float32 (N, L, D) -> the same outputs.

Exported with `num_captions=n`, both also return the beam's n best, best
first: `nbest_captions` string (N, n), `nbest_scores` float32 (N, n),
`nbest_token_ids` int32 (N, n, T), `nbest_attention_weights` float32
(N, n, T, L); the outputs above are then the first of them.

Decoding, resizing, the encoder's preprocessing, the search and the
id-to-word lookup are all in the graph, built from stock TensorFlow ops
(no tensorflow-text, no Python), so TF Serving runs it as it is.
A bad image fails the whole request with `InvalidArgumentError` naming
each bad item (`image_checks.check_image_bytes`).
"""

import dataclasses
import json
import os
import shutil
import tempfile

import keras
import tensorflow as tf

from sat_keras.decoding import SearchSettings
from sat_keras.export.image_checks import ImageLimits
from sat_keras.export.image_checks import decode_image_batch
from sat_keras.text import END_ID
from sat_keras.text import PAD_ID
from sat_keras.text import START_ID

EXPORT_CONFIG_FILE = "export_config.json"
VOCABULARY_ASSET = "vocabulary.txt"


def vocabulary_table(path):
    """id -> word, read from a file of one token per line (a SavedModel asset once saved)."""
    initializer = tf.lookup.TextFileInitializer(
        path, key_dtype=tf.int64, key_index=tf.lookup.TextFileIndex.LINE_NUMBER,
        value_dtype=tf.string, value_index=tf.lookup.TextFileIndex.WHOLE_LINE)
    return tf.lookup.StaticHashTable(initializer, default_value="<unk>")


def ids_to_captions(token_ids, table):
    """In-graph `Vocabulary.decode`: int (..., T) ids -> string (...) captions.

    `table` maps ids to words (`vocabulary_table`). Words up to the first
    `<end>`, without `<pad>` and `<start>`, joined by single spaces.
    """
    token_ids = tf.cast(token_ids, tf.int32)
    words = table.lookup(tf.cast(token_ids, tf.int64))  # (N, T)
    before_end = tf.equal(tf.cumsum(tf.cast(tf.equal(token_ids, END_ID), tf.int32), axis=-1), 0)
    keep = before_end & tf.not_equal(token_ids, PAD_ID) & tf.not_equal(token_ids, START_ID)
    return tf.strings.strip(tf.strings.reduce_join(tf.where(keep, words + " ", ""), axis=-1))


def _check_batch(batch_size, max_batch_size, name):
    return tf.debugging.Assert(
        tf.logical_and(batch_size >= 1, batch_size <= max_batch_size),
        [tf.strings.join([f"{name} must hold 1 to {max_batch_size} items; it holds",
                          tf.strings.as_string(batch_size)], separator=" ")])


class _CaptionFunctions:
    """The two signatures' functions over one model and one set of settings."""

    def __init__(self, model, settings, limits, max_batch_size, vocabulary_file,
                 jit_compile=False):
        self.model = model
        self.vocabulary = vocabulary_table(vocabulary_file)
        self.settings = settings
        self.limits = limits
        self.max_batch_size = max_batch_size
        # The search as one function, XLA-compiled on request (the encoder is
        # not: XLA runs MobileNet's depthwise convolutions slower on CPUs).
        self._search = tf.function(self._search_outputs, jit_compile=jit_compile)

    def _search_outputs(self, annotations):
        outputs = self.model.search(annotations, **self.settings)
        return {name: outputs[name] for name in ("scores", "token_ids", "attention_weights")}

    def _caption(self, inputs):
        """Encoder inputs ({"images"} or {"features"}) -> the signature's outputs."""
        found = self._search(self.model.encode(inputs, training=False))
        found = {"token_ids": tf.cast(found["token_ids"], tf.int32),
                 "scores": tf.cast(found["scores"], tf.float32),
                 "attention_weights": tf.cast(found["attention_weights"], tf.float32)}
        found["captions"] = ids_to_captions(found["token_ids"], self.vocabulary)
        if self.settings.get("num_captions") is None:
            return found
        outputs = {name: value[:, 0] for name, value in found.items()}  # the best
        outputs.update({"nbest_" + name: value for name, value in found.items()})
        return outputs

    def caption_image_bytes(self, image_bytes):
        with tf.control_dependencies(
                [_check_batch(tf.size(image_bytes), self.max_batch_size, "image_bytes")]):
            images = decode_image_batch(image_bytes, self.model.image_size, self.limits)
        return self._caption({"images": images})

    def caption_features(self, features):
        with tf.control_dependencies(
                [_check_batch(tf.shape(features)[0], self.max_batch_size, "features")]):
            features = tf.identity(features)
        return self._caption({"features": features})


def _annotation_shape(model):
    """(L, D) of the model's annotations, from its encoder or its built features."""
    if model.encoder is not None and model.image_size is not None:
        size = model.image_size
        shape = model.encoder.compute_output_shape((None, size, size, 3))
        return tuple(shape[1:])
    built = model.get_build_config().get("input_shape") or {}
    if "features" in built:
        return tuple(built["features"][1:])
    raise ValueError("The model has no encoder with an image_size and was never built on "
                     "features, so the shape of its annotations is unknown.")


def export_captioner(model, path, beam_size=3, max_length=20, length_penalty=0.0,
                     num_captions=None, max_batch_size=64, limits=ImageLimits(),
                     jit_compile=False, overwrite=False):
    """Writes `model` as a SavedModel at `path` (`.../<name>/<version>`).

    Args:
        model: a built `ShowAttendTell` with an encoder and `image_size`.
        path: the version directory; its name must be a positive integer,
            as TF Serving loads only numbered versions.
        beam_size: 1 exports greedy search, more the batched beam search.
        max_length: the most words per caption, `<end>` included.
        length_penalty: as in `decoding.beam_search`.
        num_captions: None, or n (1 to beam_size) to add the beam's n best
            captions to the outputs (`nbest_*`, see the module docstring).
        max_batch_size: requests with more items are refused.
        limits: `image_checks.ImageLimits` for the accepted images.
        jit_compile: XLA-compile the search (the server compiles it once
            per batch size it meets; benchmarks/serve_latency.py measures
            what it gains).
        overwrite: replace an existing version directory.

    The directory appears whole or not at all (written beside it, then
    renamed), so a server watching the base directory never loads half of it.

    Returns:
        `path`.
    """
    if model.encoder is None or model.image_size is None:
        raise ValueError("Only models with an encoder and an image_size can be exported: the "
                         "SavedModel takes encoded images.")
    if not model.built:
        raise ValueError("The model has no weights yet: train or load it before exporting.")
    version = os.path.basename(os.path.normpath(path))
    if not version.isdigit() or int(version) < 1:
        raise ValueError(f"The export path must end in a positive version number, as TF "
                         f"Serving expects (e.g. saved_models/shapes/1). Received: {path!r}")
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it.")
    SearchSettings(max_length=max_length, beam_size=beam_size,
                   length_penalty=length_penalty, num_captions=num_captions)  # checks them
    settings = {"max_length": max_length, "beam_size": beam_size,
                "length_penalty": float(length_penalty)}
    if num_captions is not None:
        settings["num_captions"] = num_captions
    with tempfile.TemporaryDirectory() as folder:  # the asset is copied into the export
        vocabulary_file = os.path.join(folder, VOCABULARY_ASSET)
        with open(vocabulary_file, "w", encoding="utf-8") as file:
            file.write("".join(token + "\n" for token in model.vocabulary.tokens))
        functions = _CaptionFunctions(model, settings, limits, max_batch_size,
                                      vocabulary_file, jit_compile)
        _write(model, functions, path, version, settings, limits, max_batch_size,
               jit_compile)
    return path


def _write(model, functions, path, version, settings, limits, max_batch_size, jit_compile):
    """The archive written beside `path`, then renamed to it."""
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(functions.vocabulary)
    archive.add_endpoint(
        "serving_default", functions.caption_image_bytes,
        input_signature=[tf.TensorSpec((None,), tf.string, name="image_bytes")])
    archive.add_endpoint(
        "caption_features", functions.caption_features,
        input_signature=[tf.TensorSpec((None,) + _annotation_shape(model), tf.float32,
                                       name="features")])
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{version}-", dir=parent)
    try:
        archive.write_out(staging, verbose=False)
        extra = os.path.join(staging, "assets.extra")
        os.makedirs(extra, exist_ok=True)
        with open(os.path.join(extra, EXPORT_CONFIG_FILE), "w") as file:
            json.dump({**settings, "image_size": model.image_size,
                       "max_batch_size": max_batch_size, "attention": model.attention,
                       "jit_compile": jit_compile,
                       "image_limits": dataclasses.asdict(limits)}, file, indent=2)
        if os.path.exists(path):
            shutil.rmtree(path)
        os.rename(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
