"""A trained captioner -> SavedModel for TF Serving (image bytes in, captions out).

Layout: `<base>/<name>/<version>/` with `saved_model.pb`, `variables/`
(float32, or float16 / int8 with `weights_dtype`), `assets/vocabulary.txt`
(one token per line, line i for id i: the export's one copy of the
vocabulary, which the graph's id-to-word table reads) and `assets.extra/`:
`export_config.json` (the decoding as one "search" object, the image size,
limits and weights' dtype) and `model_config.json` (the
model without its vocabulary, from which `export.reload` rebuilds the Keras
model). Signatures:

- `serving_default`: `image_bytes` string (N,) -> `captions` string (N,),
  `scores` float32 (N,), `token_ids` int32 (N, T), `attention_weights`
  float32 (N, T, L);
- `caption_features`: `features` float32 (N, L, D) -> the same outputs.

Exported with `num_captions=n`, both also return the beam's n best, best
first: `nbest_captions` string (N, n), `nbest_scores` float32 (N, n),
`nbest_token_ids` int32 (N, n, T), `nbest_attention_weights` float32
(N, n, T, L); the outputs above are then the first of them.

A `CaptionEnsemble` exports the same way, with the same signatures and
outputs: its search averages its models' word probabilities at every step
(the attention is their mean), each distinct encoder runs and is stored
once, and `caption_features` is left out if its models' annotations differ
in shape. `model_config.json` then holds each model's config and
`encoder_owners`.

Decoding, resizing, the encoder's preprocessing, the search and the
id-to-word lookup are all in the graph, built from stock TensorFlow ops
(no tensorflow-text, no Python), so TF Serving runs it as it is.
A bad image fails the whole request with `InvalidArgumentError` naming
each bad item (`image_checks.check_image_bytes`).
"""

import contextlib
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
from sat_keras.models.caption_ensemble import CaptionEnsemble
from sat_keras.text import END_ID
from sat_keras.text import PAD_ID
from sat_keras.text import START_ID

EXPORT_CONFIG_FILE = "export_config.json"
MODEL_CONFIG_FILE = "model_config.json"
VOCABULARY_ASSET = "vocabulary.txt"
WEIGHTS_COLLECTION = "model_weights"  # the stored weights, in `model.variables` order
# int8 exports: one float32 scale per stored weight, same order (1.0 where not quantized).
SCALES_COLLECTION = "model_weight_scales"


def read_export_config(version_dir):
    """A version directory's `export_config.json` as a dict; {} for SavedModels
    written by other code."""
    path = os.path.join(version_dir, "assets.extra", EXPORT_CONFIG_FILE)
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as file:
        return json.load(file)


# Exports written before the "search" object kept these fields at the top level.
_FLAT_SEARCH_FIELDS = ("max_length", "beam_size", "length_penalty", "num_captions",
                       "suppress_unknown", "no_repeat_ngram_size")


def export_search(config):
    """The `decoding.SearchSettings` an export decodes with, from its
    `export_config.json` (`read_export_config`); older exports' flat fields too."""
    if "search" in config:
        return SearchSettings.from_config(config["search"])
    return SearchSettings.from_config(
        {name: config[name] for name in _FLAT_SEARCH_FIELDS if name in config})


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


WEIGHT_DTYPES = ("float32", "float16", "int8")


class StoredWeights(tf.Module):
    """The model's variables as the export stores them, in `model.variables` order
    (an ensemble's: those its searches read, `CaptionEnsemble.variables`).

    With "float16" or "int8", the float32 matrices and convolution kernels
    (nearly all the bytes) are stored in fewer bits and read back through
    `keras.StatelessScope` as float32, so the graph still computes in
    float32 and never captures the model's own float32 variables. Vectors
    and scalars (biases, batch-normalisation statistics) stay float32: they
    are few, and some lie outside float16's range (ResNet50's moving
    variances exceed its largest value, 65504, and would become infinite).

    "int8" is symmetric per-output-channel weight quantization: a kernel w
    of shape (..., C) is stored as q = round(w / s) in [-127, 127] with one
    float32 scale per output channel, s_c = max |w[..., c]| / 127, and read
    back as q * s (`scales`, one per stored weight, 1.0 where not quantized).
    """

    def __init__(self, model, dtype):
        super().__init__(name="stored_weights")
        self._model_variables = list(model.variables)
        self.dtype = dtype
        stored = [_stored(variable, dtype) for variable in self._model_variables]
        names = [variable.path.replace("/", "_") for variable in self._model_variables]
        self.values = [tf.Variable(value, trainable=False, name=name)
                       for (value, _), name in zip(stored, names)]
        self.scales = [tf.Variable(scale, trainable=False, name=name + "_scale")
                       for (_, scale), name in zip(stored, names)] if dtype == "int8" else []

    def scope(self):
        """A `keras.StatelessScope` in which the model reads the stored values."""
        scales = self.scales or [None] * len(self.values)
        return keras.StatelessScope(state_mapping=[
            (variable, restored(value, scale, variable.dtype))
            for variable, value, scale in zip(self._model_variables, self.values, scales)])


def restored(value, scale, dtype):
    """A stored weight read back in the model's dtype: cast, and scaled if int8."""
    if value.dtype == tf.int8:
        return tf.cast(value, dtype) * tf.cast(scale, dtype)
    return tf.cast(value, dtype)


def _stored(variable, dtype):
    """(the value to store, its int8 scale: per output channel, or 1.0)."""
    value = tf.convert_to_tensor(variable.value)
    if value.dtype != tf.float32 or value.shape.rank < 2:
        return value, tf.constant(1.0)
    if dtype == "int8":
        return quantize_int8(value)
    stored = tf.cast(value, dtype)
    if not bool(tf.reduce_all(tf.math.is_finite(stored))):
        raise ValueError(f"{variable.path} holds values beyond {dtype}'s range; export "
                         'it with weights_dtype="float32".')
    return stored, tf.constant(1.0)


def quantize_int8(value):
    """(q int8, scale float32 (C,)) with q * scale ~ value, per last-axis channel.

    Example:
    >>> q, scale = quantize_int8(tf.constant([[0.5, -2.0], [-1.0, 1.0]]))
    >>> q.numpy().tolist(), (scale * 127).numpy().round(3).tolist()  # s = the largest / 127
    ([[64, -127], [-127, 64]], [1.0, 2.0])
    """
    if not bool(tf.reduce_all(tf.math.is_finite(value))):
        raise ValueError("int8 quantization needs finite weights.")
    largest = tf.reduce_max(tf.abs(value), axis=tf.range(tf.rank(value) - 1))  # (C,)
    scale = tf.where(largest > 0, largest / 127.0, tf.ones_like(largest))  # (C,)
    q = tf.clip_by_value(tf.round(value / scale), -127.0, 127.0)
    return tf.cast(q, tf.int8), scale


class _CaptionFunctions:
    """The two signatures' functions over one model and one `SearchSettings`."""

    def __init__(self, model, search, limits, max_batch_size, vocabulary_file,
                 jit_compile=False, stored_weights=None):
        self.model = model
        self.stored_weights = stored_weights
        self.vocabulary = vocabulary_table(vocabulary_file)
        self.search = search
        self.limits = limits
        self.max_batch_size = max_batch_size
        # The search as one function, XLA-compiled on request (the encoder is
        # not: XLA runs MobileNet's depthwise convolutions slower on CPUs).
        self._search = tf.function(self._search_outputs, jit_compile=jit_compile)

    def _weights(self):
        """Where the model reads its weights: its own, or the stored ones cast back."""
        if self.stored_weights is None:
            return contextlib.nullcontext()
        return self.stored_weights.scope()  # inside each traced function, not captured

    def _search_outputs(self, annotations):
        with self._weights():
            outputs = self.model.search(annotations, self.search)
        return {name: outputs[name] for name in ("scores", "token_ids", "attention_weights")}

    def _caption(self, inputs):
        """Encoder inputs ({"images"} or {"features"}) -> the signature's outputs."""
        with self._weights():
            annotations = self.model.encode(inputs, training=False)
        found = self._search(annotations)
        found = {"token_ids": tf.cast(found["token_ids"], tf.int32),
                 "scores": tf.cast(found["scores"], tf.float32),
                 "attention_weights": tf.cast(found["attention_weights"], tf.float32)}
        found["captions"] = ids_to_captions(found["token_ids"], self.vocabulary)
        if self.search.num_captions is None:
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


def _members(model):
    """The `ShowAttendTell` models an export holds: an ensemble's, or the model itself."""
    return list(model.models) if isinstance(model, CaptionEnsemble) else [model]


def _annotation_shape(model):
    """(L, D) of the features `caption_features` takes: the model's annotations
    (from its encoder or its built features), or its encoder's cached features;
    None for an ensemble whose models' differ."""
    shapes = {_model_annotation_shape(member) for member in _members(model)}
    return shapes.pop() if len(shapes) == 1 else None


def _model_annotation_shape(model):
    if getattr(model.encoder, "cache_layer", None) is not None:
        return tuple(model.encoder.feature_shape)  # its cache layer's outputs
    if model.encoder is not None and model.image_size is not None:
        size = model.image_size
        shape = model.encoder.compute_output_shape((None, size, size, 3))
        return tuple(shape[1:])
    built = model.get_build_config().get("input_shape") or {}
    if "features" in built:
        return tuple(built["features"][1:])
    raise ValueError("The model has no encoder with an image_size and was never built on "
                     "features, so the shape of its annotations is unknown.")


def _model_config(model):
    """The serialized model without its vocabulary, which `assets/vocabulary.txt` holds;
    for an ensemble, its models' and `encoder_owners`."""
    if isinstance(model, CaptionEnsemble):
        return {"class_name": "CaptionEnsemble",
                "models": [_model_config(member) for member in model.models],
                "encoder_owners": list(model.encoder_owners())}
    serialized = keras.saving.serialize_keras_object(model)
    serialized["config"] = {k: v for k, v in serialized["config"].items() if k != "vocabulary"}
    return serialized


def _attention(model):
    """The attention kind for `export_config.json`: one, or the ensemble's models' list."""
    kinds = [member.decoder.attention for member in _members(model)]
    return kinds[0] if len(set(kinds)) == 1 else kinds


def _check_exportable(model):
    members = _members(model)
    if any(member.encoder is None or member.image_size is None for member in members):
        raise ValueError("Only models with an encoder and an image_size can be exported: the "
                         "SavedModel takes encoded images.")
    sizes = sorted({member.image_size for member in members})
    if len(sizes) > 1:
        raise ValueError(f"The models of an exported ensemble must take images of one size "
                         f"(the export decodes each image once). Received: {sizes}")
    if not all(member.built for member in members):
        raise ValueError("The model has no weights yet: train or load it before exporting.")


def export_captioner(model, path, search=None, max_batch_size=64, limits=ImageLimits(),
                     jit_compile=False, overwrite=False, weights_dtype="float32",
                     **overrides):
    """Writes `model` as a SavedModel at `path` (`.../<name>/<version>`).

    Args:
        model: a built `ShowAttendTell` with an encoder and `image_size`, or
            a `CaptionEnsemble` of such models taking images of one size.
        path: the version directory; its name must be a positive integer,
            as TF Serving loads only numbered versions.
        search, **overrides: the decoding in the graph,
            `model.settings_for(search, **overrides)`: the model's own
            `search_settings` unless changed (`beam_size=3`; a
            `decoding.SearchSettings`; a dict of fields). Written whole to
            `export_config.json` ("search"), from which a reload takes it.
            With `num_captions` n, the outputs add the beam's n best
            (`nbest_*`, see the module docstring). Sampling (`temperature`)
            is not exported: a served caption is deterministic.
        max_batch_size: requests with more items are refused.
        limits: `image_checks.ImageLimits` for the accepted images.
        jit_compile: XLA-compile the search (the server compiles it once
            per batch size it meets; benchmarks/serve_latency.py measures
            what it gains).
        overwrite: replace an existing version directory.
        weights_dtype: "float32" (as trained), "float16" (the weights
            stored in half precision: half the size) or "int8" (matrices
            and kernels quantized per output channel: a quarter; see
            `StoredWeights`). The graph reads them back as float32 and
            computes in float32 as before.

    The directory appears whole or not at all (written beside it, then
    renamed), so a server watching the base directory never loads half of it.

    Returns:
        `path`.
    """
    search = model.settings_for(search, **overrides)
    if search.temperature is not None:
        raise ValueError("Sampled decoding (temperature) is not exported: TF Serving should "
                         "answer one photo with one caption. Export beam or greedy search.")
    _check_exportable(model)
    version = os.path.basename(os.path.normpath(path))
    if not version.isdigit() or int(version) < 1:
        raise ValueError(f"The export path must end in a positive version number, as TF "
                         f"Serving expects (e.g. saved_models/shapes/1). Received: {path!r}")
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it.")
    if weights_dtype not in WEIGHT_DTYPES:
        raise ValueError(f"weights_dtype must be one of {WEIGHT_DTYPES}. "
                         f"Received: {weights_dtype!r}")
    with tempfile.TemporaryDirectory() as folder:  # the asset is copied into the export
        vocabulary_file = os.path.join(folder, VOCABULARY_ASSET)
        with open(vocabulary_file, "w", encoding="utf-8") as file:
            file.write("".join(token + "\n" for token in model.vocabulary.tokens))
        # An ensemble is always read through stored weights: they hold a shared
        # encoder once, where tracking its models would store every copy.
        stored = (None if weights_dtype == "float32" and not isinstance(model, CaptionEnsemble)
                  else StoredWeights(model, weights_dtype))
        functions = _CaptionFunctions(model, search, limits, max_batch_size,
                                      vocabulary_file, jit_compile, stored)
        _write(model, functions, path, version, search, limits, max_batch_size,
               jit_compile, weights_dtype)
    return path


def _write(model, functions, path, version, search, limits, max_batch_size, jit_compile,
           weights_dtype):
    """The archive written beside `path`, then renamed to it."""
    archive = keras.export.ExportArchive()
    stored = functions.stored_weights
    archive.track(model if stored is None else stored)
    archive.track(functions.vocabulary)
    archive.add_variable_collection(
        WEIGHTS_COLLECTION, list(model.variables) if stored is None else stored.values)
    if stored is not None and stored.scales:
        archive.add_variable_collection(SCALES_COLLECTION, stored.scales)
    archive.add_endpoint(
        "serving_default", functions.caption_image_bytes,
        input_signature=[tf.TensorSpec((None,), tf.string, name="image_bytes")])
    annotation_shape = _annotation_shape(model)
    if annotation_shape is not None:
        archive.add_endpoint(
            "caption_features", functions.caption_features,
            input_signature=[tf.TensorSpec((None,) + annotation_shape, tf.float32,
                                           name="features")])
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{version}-", dir=parent)
    try:
        archive.write_out(staging, verbose=False)
        extra = os.path.join(staging, "assets.extra")
        os.makedirs(extra, exist_ok=True)
        with open(os.path.join(extra, EXPORT_CONFIG_FILE), "w") as file:
            json.dump({"search": search.to_config(), "image_size": model.image_size,
                       "max_batch_size": max_batch_size, "attention": _attention(model),
                       "models": len(_members(model)),
                       "jit_compile": jit_compile, "weights_dtype": weights_dtype,
                       "image_limits": dataclasses.asdict(limits)}, file, indent=2)
        with open(os.path.join(extra, MODEL_CONFIG_FILE), "w") as file:
            json.dump(_model_config(model), file, indent=1)
        if os.path.exists(path):
            shutil.rmtree(path)
        os.rename(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
