"""One exported SavedModel, loaded once, run on checked requests by both servers.

The checks are those TF Serving makes (signature, input names, dtypes,
shapes), so the local servers answer a bad request as TF Serving would:
with a `ServingError` whose `code` is a gRPC status name.

Each request has a deadline (the runner's, or the client's if sooner): past
it the client is answered DEADLINE_EXCEEDED. A TensorFlow function cannot be
stopped, so the work goes on to its end in the background, and it holds one
of `max_running` slots until then; when every slot is held a request waits
for one until its deadline, then is answered RESOURCE_EXHAUSTED. So slow
requests make the server refuse more, never pile up without bound.
What bounds one request's work is the export's limits, checked before any
of it: `max_batch_size` items, `ImageLimits` per image and per request,
`max_length` words per caption. The runner checks the deadline between the
stages it runs (before the image checks it adds for older exports, and
before the model), so a request whose client has gone does not start them.

`check_declared_shape` bounds an input by its declared shape alone, so the
gRPC server can refuse a tensor before converting (allocating) it.
"""

import dataclasses
import os
import threading
import time
from concurrent import futures

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from sat_keras.export.image_checks import ImageLimits
from sat_keras.export.image_checks import check_image_bytes
from sat_keras.export.saved_model import read_export_config
from sat_keras.tf_errors import op_error_text

DEFAULT_SIGNATURE = "serving_default"


class ServingError(Exception):
    """A request the model cannot answer; `code` is a gRPC status name."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def model_versions(base_path):
    """The numbered version directories under a TF Serving model base path."""
    if not os.path.isdir(base_path):
        raise FileNotFoundError(f"No model directory at {base_path}.")
    versions = sorted(int(name) for name in os.listdir(base_path)
                      if name.isdigit() and int(name) > 0
                      and os.path.exists(os.path.join(base_path, name, "saved_model.pb")))
    if not versions:
        raise FileNotFoundError(
            f"{base_path} holds no SavedModel version: expected {base_path}/<N>/saved_model.pb "
            "(write one with `sat-keras export --output {base_path}/1`).")
    return versions


class ModelRunner:
    """The newest version of a model base path (TF Serving's default policy)."""

    def __init__(self, base_path, model_name=None, deadline=30.0, max_running=4):
        if not deadline > 0 or not (isinstance(max_running, int) and max_running > 0):
            raise ValueError(f"deadline and max_running must be positive. Received: "
                             f"deadline={deadline!r}, max_running={max_running!r}")
        self.deadline = deadline
        self.max_running = max_running
        self._slots = threading.BoundedSemaphore(max_running)
        self._workers = futures.ThreadPoolExecutor(max_running, thread_name_prefix="predict")
        self.base_path = os.path.abspath(base_path)
        self.model_name = model_name or os.path.basename(os.path.normpath(self.base_path))
        self.version = model_versions(self.base_path)[-1]
        self.path = os.path.join(self.base_path, str(self.version))
        self._loaded = tf.saved_model.load(self.path)
        self.signatures = {name: self._loaded.signatures[name]
                           for name in self._loaded.signatures}
        config = read_export_config(self.path)  # {} for SavedModels written by other code
        self.max_batch_size = config.get("max_batch_size")
        self._image_precheck = _image_precheck(config.get("image_limits"))

    def check_declared_shape(self, signature_name, name, shape):
        """Refuses an input by its declared shape, before it is converted or allocated.

        The shape must fit the signature's input spec (rank and fixed sizes)
        and hold at most the export's `max_batch_size` items, so a request
        declaring (65536, 64, 64) with no values costs nothing. (The counts
        of values given are the caller's to check against the shape.)
        """
        specs = self.input_specs(signature_name)
        if name not in specs:
            raise ServingError("INVALID_ARGUMENT",
                               f"Signature {signature_name or DEFAULT_SIGNATURE!r} takes inputs "
                               f"{sorted(specs)}; the request gave {name!r}")
        spec = specs[name]
        if any(size < 0 for size in shape) or not spec.shape.is_compatible_with(shape):
            raise ServingError("INVALID_ARGUMENT",
                               f"Input {name!r} must have shape {spec.shape}; "
                               f"received {list(shape)}")
        if self.max_batch_size is not None and shape and shape[0] > self.max_batch_size:
            raise ServingError("INVALID_ARGUMENT",
                               f"Input {name!r} must hold 1 to {self.max_batch_size} items; "
                               f"it holds {shape[0]}")

    def input_specs(self, signature_name):
        """{input name: tf.TensorSpec} of a signature."""
        return dict(self._signature(signature_name).structured_input_signature[1])

    def signature_defs(self):
        """The SignatureDef protos, as GetModelMetadata reports them."""
        saved_model = saved_model_pb2.SavedModel()
        with open(os.path.join(self.path, "saved_model.pb"), "rb") as file:
            saved_model.ParseFromString(file.read())
        signature_defs = saved_model.meta_graphs[0].signature_def
        return {name: signature_defs[name] for name in signature_defs
                if not name.startswith("__")}

    def check_model_spec(self, name, version=None):
        if name != self.model_name:
            raise ServingError("NOT_FOUND",
                               f"Servable not found for request: model {name!r} "
                               f"(this server serves {self.model_name!r})")
        if version is not None and version != self.version:
            raise ServingError("NOT_FOUND",
                               f"Servable not found for request: {name!r} version {version} "
                               f"(loaded: version {self.version})")

    def _signature(self, signature_name):
        signature_name = signature_name or DEFAULT_SIGNATURE
        if signature_name not in self.signatures:
            raise ServingError("INVALID_ARGUMENT",
                               f"Serving signature name: {signature_name!r} not found in "
                               f"signature def; available: {sorted(self.signatures)}")
        return self.signatures[signature_name]

    def _checked_inputs(self, signature_name, inputs):
        specs = self.input_specs(signature_name)
        if set(inputs) != set(specs):
            raise ServingError(
                "INVALID_ARGUMENT",
                f"Signature {signature_name or DEFAULT_SIGNATURE!r} takes inputs "
                f"{sorted(specs)}; the request gave {sorted(inputs)}")
        checked = {}
        for name, value in inputs.items():
            spec = specs[name]
            value = np.asarray(value)
            if spec.dtype == tf.string:
                if value.dtype.kind not in "OSU" or (
                        value.dtype.kind == "O"
                        and not all(isinstance(v, (bytes, str)) for v in value.flat)):
                    raise ServingError("INVALID_ARGUMENT",
                                       f"Input {name!r} must be a string tensor; "
                                       f"received {value.dtype}")
            elif value.dtype != spec.dtype.as_numpy_dtype:
                raise ServingError("INVALID_ARGUMENT",
                                   f"Input {name!r} must be {spec.dtype.name}; "
                                   f"received {value.dtype}")
            if not spec.shape.is_compatible_with(value.shape):
                raise ServingError("INVALID_ARGUMENT",
                                   f"Input {name!r} must have shape {spec.shape}; "
                                   f"received {list(value.shape)}")
            checked[name] = tf.constant(value, spec.dtype)
        return checked

    def _run(self, function, inputs, deadline):
        """function(**inputs) in a worker slot, waited for until `deadline` seconds."""
        deadline = self.deadline if deadline is None else min(deadline, self.deadline)
        started = time.monotonic()
        expires = started + deadline

        def stages():
            # Each stage is one TensorFlow call, which cannot be stopped once
            # started; between them, a request whose client has been answered
            # DEADLINE_EXCEEDED is dropped.
            if self._image_precheck is not None and _any_gif(inputs.get("image_bytes")):
                self._image_precheck(inputs["image_bytes"])
            if time.monotonic() > expires:
                return None
            return function(**inputs)

        if not self._slots.acquire(timeout=deadline):
            raise ServingError("RESOURCE_EXHAUSTED",
                               f"The server is busy: {self.max_running} requests are running "
                               f"and none ended within the deadline of {deadline:g} s; "
                               "try again later")
        future = self._workers.submit(stages)
        future.add_done_callback(lambda _: self._slots.release())
        try:
            outputs = future.result(timeout=max(0.0, expires - time.monotonic()))
        except futures.TimeoutError:
            outputs = None
        if outputs is None:  # still running, or dropped between stages
            raise ServingError("DEADLINE_EXCEEDED",
                               f"The request did not finish within its deadline of "
                               f"{deadline:g} s")
        return outputs

    def predict(self, inputs, signature_name=None, output_filter=(), deadline=None):
        """Runs a signature on {name: array}; returns {name: np.ndarray}.

        Args:
            deadline: seconds the caller waits (None: the runner's).

        Raises:
            ServingError: INVALID_ARGUMENT for a bad signature, input or
                image (with the model's message), DEADLINE_EXCEEDED,
                RESOURCE_EXHAUSTED when busy, INTERNAL otherwise.
        """
        function = self._signature(signature_name)
        checked = self._checked_inputs(signature_name, inputs)
        try:
            outputs = self._run(function, checked, deadline)
        except tf.errors.InvalidArgumentError as error:
            raise ServingError("INVALID_ARGUMENT", op_error_text(error)) from None
        except tf.errors.OpError as error:
            raise ServingError("INTERNAL", op_error_text(error)) from None
        unknown = set(output_filter) - set(outputs)
        if unknown:
            raise ServingError("INVALID_ARGUMENT",
                               f"output_filter names unknown outputs {sorted(unknown)}; "
                               f"available: {sorted(outputs)}")
        names = output_filter or outputs
        return {name: outputs[name].numpy() for name in names}


def _any_gif(image_bytes):
    """Whether a string tensor (N,) holds a GIF (the only format the older checks miss)."""
    return image_bytes is not None and bool(tf.reduce_any(
        tf.equal(tf.strings.substr(image_bytes, 0, 4), b"GIF8")))


def _image_precheck(limits):
    """The frame limit for exports written before it, or None.

    Such exports check their images in-graph, but without `max_gif_frames`,
    and walk every block of a GIF of thousands of tiny frames (seconds of
    work). Re-exporting a model is not byte-stable (the stored weights
    change), so the shipped models were not; the runner runs today's
    `check_image_bytes` on the export's own limits (the new ones at their
    defaults) before the model, which then finds the images it checks small.
    """
    if limits is None or "max_gif_frames" in limits:
        return None
    known = {field.name for field in dataclasses.fields(ImageLimits)}
    limits = ImageLimits(**{name: value for name, value in limits.items() if name in known})

    @tf.function(input_signature=[tf.TensorSpec((None,), tf.string)])
    def checks(image_bytes):
        with tf.control_dependencies([check_image_bytes(image_bytes, limits)]):
            return tf.size(image_bytes)

    return checks
