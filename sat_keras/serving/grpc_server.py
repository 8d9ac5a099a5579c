"""TF Serving's gRPC PredictionService (Predict, GetModelMetadata) in-process.

The same wire API as `tensorflow_model_server`, for machines without it:
the clients, tests and notebooks talk to either alike.
"""

from concurrent import futures

import grpc
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from sat_keras.serving.model_runner import DEFAULT_SIGNATURE
from sat_keras.serving.model_runner import ServingError

MAX_MESSAGE_BYTES = 64 * 1024 * 1024


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
            self._model_spec(request)
            try:
                inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
            except (TypeError, ValueError) as error:
                raise ServingError("INVALID_ARGUMENT",
                                   f"Malformed input tensor: {error}") from error
            signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
            outputs = self.runner.predict(inputs, signature_name, list(request.output_filter),
                                          deadline=context.time_remaining())
        except ServingError as error:
            context.abort(getattr(grpc.StatusCode, error.code), error.message)
        response = predict_pb2.PredictResponse()
        self._fill_spec(response, signature_name)
        for name, value in outputs.items():
            response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
        return response

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


def start_grpc_server(runner, port, host="127.0.0.1", max_workers=16):
    """Starts serving `runner` on host:port (0 picks a free port); returns (server, port)."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers),
        options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                 ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)])
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(runner), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"Could not bind the gRPC server to {host}:{port}.")
    server.start()
    return server, bound
