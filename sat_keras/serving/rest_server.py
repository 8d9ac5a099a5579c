"""TF Serving's REST API for one model, in-process.

- `POST /v1/models/NAME[/versions/V]:predict` with `{"signature_name": ...,
  "instances": [...]}` (row format, answered with `{"predictions": [...]}`)
  or `{"inputs": ...}` (columnar, answered with `{"outputs": {...}}`);
  binary strings travel as `{"b64": "..."}`.
- `GET /v1/models/NAME[/versions/V]`: the model's status;
  `GET /v1/models/NAME[/versions/V]/metadata`: its signatures.
- `GET /`: the caption page (`web.py`).

A bad request gets 400 (404 for an unknown model) and `{"error": "..."}`.
"""

import base64
import http.server
import json
import re
import threading

import numpy as np
from google.protobuf import json_format

from sat_keras.serving.model_runner import DEFAULT_SIGNATURE
from sat_keras.serving.model_runner import ServingError
from sat_keras.serving.web import export_config
from sat_keras.serving.web import page_response
from sat_keras.serving.web import send_page

MAX_BODY_BYTES = 64 * 1024 * 1024
_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+))?"
                   r"(?P<rest>/metadata|:predict)?$")
_HTTP_STATUS = {"INVALID_ARGUMENT": 400, "NOT_FOUND": 404, "RESOURCE_EXHAUSTED": 429,
                "INTERNAL": 500, "DEADLINE_EXCEEDED": 504}


def _decode_value(value):
    """JSON value -> Python value with {"b64": ...} turned into bytes."""
    if isinstance(value, dict) and set(value) == {"b64"}:
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (ValueError, TypeError) as error:
            raise ServingError("INVALID_ARGUMENT", f"Bad base64 data: {error}") from None
    if isinstance(value, list):
        return [_decode_value(item) for item in value]
    return value


def _to_array(value, name):
    try:
        array = np.array(_decode_value(value), dtype=object)
    except ValueError as error:  # ragged nesting
        raise ServingError("INVALID_ARGUMENT", f"Input {name!r}: {error}") from None
    if array.size and all(isinstance(v, (bytes, str)) for v in array.flat):
        return array
    try:
        numbers = array.astype(np.float64)
    except (TypeError, ValueError):
        raise ServingError("INVALID_ARGUMENT",
                           f"Input {name!r} mixes strings and numbers or is empty") from None
    return numbers.astype(np.float32)


def parse_predict_body(body, input_names_of):
    """A predict request's JSON -> (signature_name, {input: array}, row_format).

    `input_names_of(signature_name)` lists a signature's input names.
    """
    try:
        request = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ServingError("INVALID_ARGUMENT", f"The body is not JSON: {error}") from None
    if not isinstance(request, dict) or ("instances" in request) == ("inputs" in request):
        raise ServingError("INVALID_ARGUMENT",
                           'The body must be an object with exactly one of "instances" '
                           'or "inputs"')
    signature_name = request.get("signature_name", DEFAULT_SIGNATURE)
    input_names = input_names_of(signature_name)
    if "inputs" in request:
        inputs = request["inputs"]
        if not isinstance(inputs, dict):
            inputs = {input_names[0]: inputs} if len(input_names) == 1 else None
        if inputs is None:
            raise ServingError("INVALID_ARGUMENT", f"Name the inputs {input_names}")
        return signature_name, {k: _to_array(v, k) for k, v in inputs.items()}, False
    instances = request["instances"]
    if not isinstance(instances, list) or not instances:
        raise ServingError("INVALID_ARGUMENT", '"instances" must be a non-empty list')
    named = all(isinstance(i, dict) and "b64" not in i for i in instances)
    if named:
        names = set(instances[0])
        if any(set(instance) != names for instance in instances):
            raise ServingError("INVALID_ARGUMENT", "Every instance must name the same inputs")
        columns = {name: [instance[name] for instance in instances] for name in names}
    elif len(input_names) == 1:
        columns = {input_names[0]: instances}
    else:
        raise ServingError("INVALID_ARGUMENT", f"Name the inputs {input_names} in each instance")
    return signature_name, {k: _to_array(v, k) for k, v in columns.items()}, True


def _jsonable(value):
    """An output array (or one of its items) -> JSON; bytes as UTF-8 text."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    return _jsonable(value.tolist()) if isinstance(value, np.ndarray) else (
        value.item() if isinstance(value, np.generic) else value)


def format_predict_response(outputs, row_format):
    if row_format:
        count = len(next(iter(outputs.values())))
        return {"predictions": [{name: _jsonable(value[i]) for name, value in outputs.items()}
                                for i in range(count)]}
    return {"outputs": {name: _jsonable(value) for name, value in outputs.items()}}


class _Handler(http.server.BaseHTTPRequestHandler):
    runner = None  # set per server by `start_rest_server`
    config = None  # the export's export_config.json, for the page
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # quiet, as TF Serving is
        pass

    def _reply(self, status, payload):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _route(self):
        match = _PATH.match(self.path)
        if not match:
            raise ServingError("NOT_FOUND", f"Malformed request: {self.command} {self.path}")
        version = match["version"] and int(match["version"])
        self.runner.check_model_spec(match["name"], version)
        return match["rest"]

    def do_GET(self):
        page = page_response(self.path, self.runner.model_name, self.config)
        if page is not None:
            return send_page(self, *page)
        try:
            rest = self._route()
            if rest == ":predict":
                raise ServingError("INVALID_ARGUMENT", "predict takes POST")
        except ServingError as error:
            return self._reply(_HTTP_STATUS.get(error.code, 500), {"error": error.message})
        version = str(self.runner.version)
        if rest == "/metadata":
            signature_defs = {
                name: json_format.MessageToDict(signature_def, preserving_proto_field_name=True)
                for name, signature_def in self.runner.signature_defs().items()}
            return self._reply(200, {
                "model_spec": {"name": self.runner.model_name, "version": version},
                "metadata": {"signature_def": {"signature_def": signature_defs}}})
        return self._reply(200, {"model_version_status": [{
            "version": version, "state": "AVAILABLE",
            "status": {"error_code": "OK", "error_message": ""}}]})

    def do_POST(self):
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self.close_connection = True
                raise ServingError("INVALID_ARGUMENT",
                                   f"The body is over {MAX_BODY_BYTES} bytes ({length})")
            body = self.rfile.read(length)
            if self._route() != ":predict":
                raise ServingError("INVALID_ARGUMENT", "POST is for :predict")
            signature_name, inputs, row_format = parse_predict_body(
                body, lambda name: sorted(self.runner.input_specs(name)))
            outputs = self.runner.predict(inputs, signature_name)
        except ServingError as error:
            return self._reply(_HTTP_STATUS.get(error.code, 500), {"error": error.message})
        self._reply(200, format_predict_response(outputs, row_format))


def start_rest_server(runner, port, host="127.0.0.1"):
    """Serves `runner` over HTTP on a daemon thread; returns (server, port)."""
    config = export_config(runner.base_path, runner.version)
    handler = type("Handler", (_Handler,), {"runner": runner, "config": config})
    server = http.server.ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]
