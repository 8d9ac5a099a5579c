"""TF Serving's gRPC PredictionService (Predict, GetModelMetadata) in-process.

The same wire API as `tensorflow_model_server`, for machines without it:
the clients, tests and notebooks talk to either alike.

A hostile request costs little: every input tensor's declared shape is
checked against the signature (`ModelRunner.check_declared_shape`) and
against the number of values it carries before it is converted, so a
60-byte request declaring (65536, 64, 64) allocates nothing; at most
`maximum_concurrent_rpcs` calls run or wait, the next ones are answered
RESOURCE_EXHAUSTED; and whatever a request makes fail is answered with a
status (INVALID_ARGUMENT for the request, INTERNAL for the server) and one
log line, never a traceback.
"""

import logging
import math
from concurrent import futures

import grpc
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from sat_keras.serving.model_runner import DEFAULT_SIGNATURE
from sat_keras.serving.model_runner import ServingError

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
LOGGER = logging.getLogger("sat_keras.serving")


def _values_given(proto, dtype):
    """How many values a TensorProto carries, counted without converting it."""
    if dtype == tf.string:
        return len(proto.string_val)
    if proto.tensor_content:
        return len(proto.tensor_content) / dtype.size  # a fraction never matches a shape
    return sum(len(values) for field, values in proto.ListFields()
               if field.name.endswith("_val"))


def _dtype_name(enum):
    try:
        return tf.dtypes.as_dtype(enum).name
    except TypeError:
        return f"an unknown dtype ({enum})"


def checked_inputs(runner, signature_name, request_inputs):
    """{name: np.ndarray} of a request's TensorProtos, each checked before conversion.

    Refused with INVALID_ARGUMENT: a dtype other than the signature's, a
    declared shape the signature does not take (`check_declared_shape`),
    and a declared element count other than the values given (TF would
    fill a (65536, 64, 64) tensor from one `float_val`).
    """
    specs = runner.input_specs(signature_name)
    inputs = {}
    for name, proto in request_inputs.items():
        expected = specs[name].dtype if name in specs else None
        if expected is not None and proto.dtype != expected.as_datatype_enum:
            raise ServingError("INVALID_ARGUMENT", f"Input {name!r} must be {expected.name}; "
                                                   f"received {_dtype_name(proto.dtype)}")
        if proto.tensor_shape.unknown_rank:
            raise ServingError("INVALID_ARGUMENT", f"Input {name!r} has no shape")
        shape = [dim.size for dim in proto.tensor_shape.dim]
        runner.check_declared_shape(signature_name, name, shape)
        declared = math.prod(shape)  # Python ints: no overflow whatever the dims
        given = _values_given(proto, expected)
        if given != declared:
            raise ServingError("INVALID_ARGUMENT",
                               f"Input {name!r} declares shape {shape} ({declared} values) "
                               f"but carries {given:.10g} values")
        inputs[name] = tf.make_ndarray(proto)
    return inputs


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Answers Predict and GetModelMetadata from a `ModelRunner`."""

    def __init__(self, runner):
        self.runner = runner

    def _model_spec(self, request):
        spec = request.model_spec
        version = spec.version.value if spec.HasField("version") else None
        self.runner.check_model_spec(spec.name, version)

    def _fill_spec(self, response, signature_name):
        response.model_spec.name = self.runner.model_name
        response.model_spec.version.value = self.runner.version
        response.model_spec.signature_name = signature_name

    def Predict(self, request, context):
        try:
            return self._predict(request, context)
        except ServingError as error:
            LOGGER.warning("gRPC Predict %s from %s: %s", error.code, context.peer(),
                           error.message[:300])
            context.abort(getattr(grpc.StatusCode, error.code), error.message)

    def _predict(self, request, context):
        """The response, or a ServingError for every failure, whatever raised it."""
        try:
            self._model_spec(request)
            signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
            inputs = checked_inputs(self.runner, signature_name, request.inputs)
        except ServingError:
            raise
        except Exception as error:  # a request no check foresaw: its fault, said in one line
            raise ServingError("INVALID_ARGUMENT", f"Malformed request: "
                               f"{type(error).__name__}: {error}") from None
        try:
            outputs = self.runner.predict(inputs, signature_name, list(request.output_filter),
                                          deadline=context.time_remaining())
            response = predict_pb2.PredictResponse()
            self._fill_spec(response, signature_name)
            for name, value in outputs.items():
                response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
            return response
        except ServingError:
            raise
        except Exception as error:  # the server's fault
            LOGGER.error("gRPC Predict failed: %s: %s", type(error).__name__, error)
            raise ServingError("INTERNAL", f"The server failed: {type(error).__name__}: "
                                           f"{error}") from None

    def GetModelMetadata(self, request, context):
        try:
            self._model_spec(request)
            fields = list(request.metadata_field)
            if fields != ["signature_def"]:
                raise ServingError("INVALID_ARGUMENT",
                                   f"metadata_field must be ['signature_def']; received {fields}")
        except ServingError as error:
            context.abort(getattr(grpc.StatusCode, error.code), error.message)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for name, signature_def in self.runner.signature_defs().items():
            signature_map.signature_def[name].CopyFrom(signature_def)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        self._fill_spec(response, "")
        response.metadata["signature_def"].Pack(signature_map)
        return response


def start_grpc_server(runner, port, host="127.0.0.1", max_workers=16,
                      maximum_concurrent_rpcs=64):
    """Starts serving `runner` on host:port (0 picks a free port); returns (server, port).

    `max_workers` calls run at once and up to `maximum_concurrent_rpcs` in
    all wait or run; gRPC answers the next ones RESOURCE_EXHAUSTED at once
    (without the bound, calls queue for the workers without limit).
    """
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers),
        maximum_concurrent_rpcs=maximum_concurrent_rpcs,
        options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                 ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)])
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(runner), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"Could not bind the gRPC server to {host}:{port}.")
    server.start()
    return server, bound
