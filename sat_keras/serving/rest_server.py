"""TF Serving's REST API for one model, in-process.

- `POST /v1/models/NAME[/versions/V]:predict` with `{"signature_name": ...,
  "instances": [...]}` (row format, answered with `{"predictions": [...]}`)
  or `{"inputs": ...}` (columnar, answered with `{"outputs": {...}}`);
  binary strings travel as `{"b64": "..."}`.
- `GET /v1/models/NAME[/versions/V]`: the model's status;
  `GET /v1/models/NAME[/versions/V]/metadata`: its signatures.
- `GET /` (and HEAD): the caption page (`web.py`).

A bad request gets 4xx (400, 404 for an unknown model, 411 / 413 for a
body without a length or over the limit) and `{"error": "..."}`.

A predict request's cost is bounded before it is spent. Its body is read
only once it holds one of `2 * runner.max_running` places (a request that
finds none within the runner's deadline is answered 429), so at most that
many bodies are in memory. Its JSON is parsed in one of `runner.max_running`
threads, after its values are counted (by their commas, a C-speed scan):
more than the signature's inputs can hold (the export's max batch size times
an item's values) is refused unparsed, so a 63 MB array of numbers costs its
63 MB, not a gigabyte of Python objects. Nesting deeper than
`MAX_JSON_DEPTH`, integers of more than 4,300 digits and values of the wrong
type are refused with 400 and a message.
"""

import asyncio
import base64
import json
import math
import re
from concurrent import futures

import numpy as np
import tornado.web
from google.protobuf import json_format

from sat_keras.serving.http_service import LINGER_SECONDS
from sat_keras.serving.http_service import HTTPService
from sat_keras.serving.http_service import JSONHandler
from sat_keras.serving.model_runner import DEFAULT_SIGNATURE
from sat_keras.serving.model_runner import ServingError
from sat_keras.serving.web import PageHandler
from sat_keras.serving.web import export_config

MAX_JSON_DEPTH = 16
DEFAULT_MAX_VALUES = 1_000_000  # for SavedModels whose inputs' sizes are not known
_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+))?"
                   r"(?P<rest>/metadata|:predict)?$")
_HTTP_STATUS = {"INVALID_ARGUMENT": 400, "NOT_FOUND": 404, "RESOURCE_EXHAUSTED": 429,
                "INTERNAL": 500, "DEADLINE_EXCEEDED": 504}


def _decode_value(value, depth=1):
    """JSON value -> Python value with {"b64": ...} turned into bytes."""
    if depth > MAX_JSON_DEPTH:
        raise ServingError("INVALID_ARGUMENT",
                           f"The JSON is nested more than {MAX_JSON_DEPTH} deep")
    if isinstance(value, dict) and set(value) == {"b64"}:
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (ValueError, TypeError) as error:
            raise ServingError("INVALID_ARGUMENT", f"Bad base64 data: {error}") from None
    if isinstance(value, list):
        return [_decode_value(item, depth + 1) for item in value]
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


_JSON_TYPES = {dict: "an object", list: "an array", int: "a number", float: "a number",
               bool: "a boolean", type(None): "null"}


def parse_predict_body(body, input_names_of):
    """A predict request's JSON -> (signature_name, {input: array}, row_format).

    `input_names_of(signature_name)` lists a signature's input names.
    """
    try:
        request = json.loads(body)
    except ValueError as error:  # JSONDecodeError, bad UTF-8, over 4,300 digits
        raise ServingError("INVALID_ARGUMENT", f"The body is not JSON: {error}") from None
    except RecursionError:
        raise ServingError("INVALID_ARGUMENT",
                           f"The JSON is nested more than {MAX_JSON_DEPTH} deep") from None
    if not isinstance(request, dict) or ("instances" in request) == ("inputs" in request):
        raise ServingError("INVALID_ARGUMENT",
                           'The body must be an object with exactly one of "instances" '
                           'or "inputs"')
    signature_name = request.get("signature_name", DEFAULT_SIGNATURE)
    if not isinstance(signature_name, str):
        raise ServingError("INVALID_ARGUMENT",
                           '"signature_name" must be a string; received '
                           f"{_JSON_TYPES.get(type(signature_name), 'a value')}")
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


def max_values(runner, config):
    """The most values a predict body can hold for this model: the largest input of any
    signature at the export's max batch size (strings count one value each)."""
    batch = config.get("max_batch_size")
    largest = 0
    for name in runner.signatures:
        for spec in runner.input_specs(name).values():
            item = spec.shape[1:]
            if batch is None or not item.is_fully_defined():
                return DEFAULT_MAX_VALUES
            largest = max(largest, batch * math.prod(item.as_list()))
    return largest or DEFAULT_MAX_VALUES


@tornado.web.stream_request_body
class ModelHandler(JSONHandler):
    """`/v1/models/...`: TF Serving's REST API over a `ModelRunner`."""

    runner = None  # set by `start_rest_server`, with:
    max_values = None  # see `max_values`
    places = None  # asyncio.Semaphore: requests whose bodies may be read (a bounded queue)
    parsers = None  # ThreadPoolExecutor of runner.max_running threads: parse and predict

    async def prepare(self):
        super().prepare()
        self.body = bytearray()
        self.holds_place = False
        self.body_timer = None
        if self.request.method != "POST":
            return
        try:
            await asyncio.wait_for(self.places.acquire(), self.runner.deadline)
        except asyncio.TimeoutError:
            return self.reply_error(429, f"The server is busy: no request ended within the "
                                         f"deadline of {self.runner.deadline:g} s; try again "
                                         "later")
        self.holds_place = True
        # A body that stops arriving is answered 408 here; tornado's own body
        # timeout, set later, would close the connection without a word.
        timeout = self.service.limits.timeout
        self.request.connection.set_body_timeout(timeout + LINGER_SECONDS)
        self.body_timer = asyncio.get_running_loop().call_later(timeout, self._body_late,
                                                                timeout)

    def _body_late(self, timeout):
        if not self._finished:
            self.set_header("Connection", "close")
            self.reply_error(408, f"The body did not arrive within {timeout:g} s: "
                                  f"{len(self.body)} of "
                                  f"{self.request.headers.get('Content-Length')} bytes came")

    def data_received(self, chunk):
        self.body += chunk

    def on_finish(self):
        self._release()
        super().on_finish()

    def on_connection_close(self):
        self._release()
        super().on_connection_close()

    def _release(self):
        if self.body_timer is not None:
            self.body_timer.cancel()
        if self.holds_place:
            self.holds_place = False
            self.places.release()

    def _route(self):
        match = _PATH.match(self.request.path)
        if not match:
            raise ServingError("NOT_FOUND", f"Malformed request: {self.request.method} "
                                            f"{self.request.path}")
        version = match["version"] and int(match["version"])
        self.runner.check_model_spec(match["name"], version)
        return match["rest"]

    async def get(self):
        try:
            rest = self._route()
            if rest == ":predict":
                raise ServingError("INVALID_ARGUMENT", "predict takes POST")
        except ServingError as error:
            return self.reply_error(_HTTP_STATUS.get(error.code, 500), error.message)
        version = str(self.runner.version)
        if rest == "/metadata":
            signature_defs = await asyncio.get_running_loop().run_in_executor(
                None, self.runner.signature_defs)
            return self.reply(200, {
                "model_spec": {"name": self.runner.model_name, "version": version},
                "metadata": {"signature_def": {"signature_def": {
                    name: json_format.MessageToDict(signature_def,
                                                    preserving_proto_field_name=True)
                    for name, signature_def in signature_defs.items()}}}})
        self.reply(200, {"model_version_status": [{
            "version": version, "state": "AVAILABLE",
            "status": {"error_code": "OK", "error_message": ""}}]})

    async def post(self):
        self.body_timer.cancel()
        try:
            if self._route() != ":predict":
                raise ServingError("INVALID_ARGUMENT", "POST is for :predict")
            values = self.body.count(b",") + 1
            if values > self.max_values:
                raise ServingError("INVALID_ARGUMENT",
                                   f"The body holds {values} or so values (counted by their "
                                   f"commas); this model's inputs take at most "
                                   f"{self.max_values}")
            body, self.body = self.body, None
            payload = await asyncio.get_running_loop().run_in_executor(
                self.parsers, self._predict, body)
        except ServingError as error:
            return self.reply_error(_HTTP_STATUS.get(error.code, 500), error.message)
        self.set_header("Content-Type", "application/json")
        self.finish(payload)

    def _predict(self, body):
        """In a parser thread: JSON in, the model's answer as JSON bytes out."""
        signature_name, inputs, row_format = parse_predict_body(
            body, lambda name: sorted(self.runner.input_specs(name)))
        del body
        outputs = self.runner.predict(inputs, signature_name)
        return json.dumps(format_predict_response(outputs, row_format)).encode()


def start_rest_server(runner, port, host="127.0.0.1", limits=None):
    """Serves `runner` (and the caption page) over HTTP; returns (HTTPService, port).

    `limits`: `http_service.HTTPLimits` (timeouts, connections, body size).
    """
    config = export_config(runner.base_path, runner.version)
    model_handler = type("ModelHandler", (ModelHandler,), {
        "runner": runner, "max_values": max_values(runner, config),
        "places": asyncio.Semaphore(2 * runner.max_running),
        "parsers": futures.ThreadPoolExecutor(runner.max_running,
                                              thread_name_prefix="rest-parse")})
    page_handler = type("PageHandler", (PageHandler,), {
        "model_name": runner.model_name, "config": config})
    service = HTTPService([(r"/v1/.*", model_handler), (r".*", page_handler)], port, host,
                          limits, name="rest")
    return service, service.port
