"""`CaptionClient`: captions from a served model over gRPC or REST.

Talks to TF Serving (`tensorflow_model_server`, the tensorflow/serving
container) or to `sat-keras serve`, which speak the same APIs.
"""

import base64
import json
import os
import time
import urllib.error
import urllib.request

import numpy as np

PROTOCOLS = ("grpc", "rest")
RETRIED_GRPC_CODES = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED")
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


class CaptionServiceError(Exception):
    """The server refused or failed a request; `code` is a gRPC status name."""

    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _image_bytes(image):
    """bytes, or a path to an image file, -> bytes."""
    if isinstance(image, (bytes, bytearray)):
        return bytes(image)
    if isinstance(image, (str, os.PathLike)):
        with open(image, "rb") as file:
            return file.read()
    raise TypeError(f"An image must be bytes or a file path; received {type(image).__name__}")


def _texts(value):
    """Nested lists of bytes or str -> the same nesting of str."""
    if isinstance(value, list):
        return [_texts(item) for item in value]
    return value.decode() if isinstance(value, bytes) else value


class CaptionClient:
    """Captions images with a model served by TF Serving or `sat-keras serve`.

    Args:
        target: "host:port" (gRPC, e.g. localhost:8500) or the REST server's
            "host:port" / "http://host:port" (e.g. localhost:8501).
        model_name: the served model's name.
        protocol: "grpc" or "rest".
        version: a model version; None asks for the newest.
        signature: the signature to call for images.
        timeout: seconds per attempt.
        retries: further attempts when the server is unreachable or busy
            (gRPC UNAVAILABLE / DEADLINE_EXCEEDED / RESOURCE_EXHAUSTED,
            HTTP 503 / 504 / 429 or no connection), with exponential backoff
            from `backoff` seconds.
            Refused requests (INVALID_ARGUMENT, NOT_FOUND) are not retried.
    """

    def __init__(self, target, model_name, protocol="grpc", version=None,
                 signature="serving_default", timeout=10.0, retries=2, backoff=0.2):
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}. Received: {protocol!r}")
        self.target = target
        self.model_name = model_name
        self.protocol = protocol
        self.version = version
        self.signature = signature
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._stub = None
        self._channel = None

    # -- public API ----------------------------------------------------------

    def caption(self, images):
        """Captions a list of images (bytes or file paths).

        Returns:
            dict: "captions" list of str; "scores" (N,); "token_ids" (N, T);
            "attention_weights" (N, T, L); from a model exported with
            `num_captions` K, also "nbest_captions" (N lists of K str) and
            "nbest_scores", "nbest_token_ids", "nbest_attention_weights"
            with an axis of K after N.

        Raises:
            CaptionServiceError: with code INVALID_ARGUMENT naming the bad
                image's index when an image is refused (the whole request is).
        """
        data = np.array([_image_bytes(image) for image in images], dtype=object)
        return self.predict({"image_bytes": data}, self.signature)

    def caption_features(self, features):
        """Captions precomputed annotations (N, L, D) via `caption_features`."""
        return self.predict({"features": np.asarray(features, np.float32)}, "caption_features")

    def predict(self, inputs, signature_name):
        """Any signature: {input name: array} -> {output name: array}."""
        call = self._predict_grpc if self.protocol == "grpc" else self._predict_rest
        outputs = self._with_retries(lambda: call(inputs, signature_name))
        for name in ("captions", "nbest_captions"):
            if name in outputs:
                outputs[name] = _texts(np.asarray(outputs[name]).tolist())
        return outputs

    def metadata(self):
        """The served model's signature definitions, as a dict."""
        call = self._metadata_grpc if self.protocol == "grpc" else self._metadata_rest
        return self._with_retries(call)

    def close(self):
        if self._channel is not None:
            self._channel.close()
            self._channel = self._stub = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    # -- retries -------------------------------------------------------------

    def _with_retries(self, call):
        for attempt in range(self.retries + 1):
            try:
                return call()
            except CaptionServiceError as error:
                retriable = error.code in RETRIED_GRPC_CODES
                if not retriable or attempt == self.retries:
                    raise
            time.sleep(self.backoff * 2 ** attempt)

    # -- gRPC ----------------------------------------------------------------

    def _grpc_stub(self):
        if self._stub is None:
            # The gRPC protocol's modules load on its first call: a REST
            # client needs neither them nor TensorFlow.
            import grpc  # gRPC only
            from tensorflow_serving.apis import prediction_service_pb2_grpc  # gRPC only

            self._channel = grpc.insecure_channel(
                self.target, options=[("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                                      ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)])
            self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        return self._stub

    def _model_spec(self, spec, signature_name=None):
        spec.name = self.model_name
        if self.version is not None:
            spec.version.value = int(self.version)
        if signature_name:
            spec.signature_name = signature_name

    def _grpc_call(self, method, request):
        import grpc  # gRPC only

        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as error:
            raise CaptionServiceError(error.code().name, error.details()) from None

    def _predict_grpc(self, inputs, signature_name):
        import tensorflow as tf  # gRPC only: tensor protos
        from tensorflow_serving.apis import predict_pb2  # gRPC only

        request = predict_pb2.PredictRequest()
        self._model_spec(request.model_spec, signature_name)
        for name, value in inputs.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        response = self._grpc_call(self._grpc_stub().Predict, request)
        return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}

    def _metadata_grpc(self):
        from google.protobuf import json_format  # gRPC only
        from tensorflow_serving.apis import get_model_metadata_pb2  # gRPC only

        request = get_model_metadata_pb2.GetModelMetadataRequest()
        self._model_spec(request.model_spec)
        request.metadata_field.append("signature_def")
        response = self._grpc_call(self._grpc_stub().GetModelMetadata, request)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        return json_format.MessageToDict(
            signature_map, preserving_proto_field_name=True)["signature_def"]

    # -- REST ----------------------------------------------------------------

    def _url(self, suffix):
        base = self.target if "://" in self.target else f"http://{self.target}"
        version = f"/versions/{int(self.version)}" if self.version is not None else ""
        return f"{base}/v1/models/{self.model_name}{version}{suffix}"

    def _http(self, url, body=None):
        request = urllib.request.Request(
            url, data=body, headers={"Content-Type": "application/json"} if body else {})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            try:
                message = json.loads(error.read()).get("error", error.reason)
            except ValueError:
                message = str(error.reason)
            code = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 408: "DEADLINE_EXCEEDED",
                    411: "INVALID_ARGUMENT", 413: "INVALID_ARGUMENT",
                    429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE",
                    504: "DEADLINE_EXCEEDED"}.get(error.code, "INTERNAL")
            raise CaptionServiceError(code, message) from None
        except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
            raise CaptionServiceError("UNAVAILABLE", str(error)) from None

    def _predict_rest(self, inputs, signature_name):
        def b64(value):  # bytes, or nested lists of them
            if isinstance(value, bytes):
                return {"b64": base64.b64encode(value).decode("ascii")}
            return [b64(item) for item in value]

        def jsonable(value):
            value = np.asarray(value)
            return b64(value.tolist()) if value.dtype.kind in "OS" else value.tolist()

        body = json.dumps({"signature_name": signature_name,
                           "inputs": {name: jsonable(v) for name, v in inputs.items()}})
        outputs = self._http(self._url(":predict"), body.encode())["outputs"]
        return {name: value if name == "captions" else np.asarray(value)
                for name, value in outputs.items()}

    def _metadata_rest(self):
        metadata = self._http(self._url("/metadata"))
        return metadata["metadata"]["signature_def"]["signature_def"]
