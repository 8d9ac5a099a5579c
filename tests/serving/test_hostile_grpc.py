"""The gRPC server under hostile clients (issue 37): every probe is answered
with a status and a clear message, fast, without growing the server's
memory, and the server answers a good request after each."""

import os
import subprocess
import sys
import threading
import time
from concurrent import futures

import grpc
import pytest
from helpers import encode_image
from helpers import free_port
from helpers import gif_bomb
from helpers import process_memory_mb
from helpers import wait_until_serving
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from sat_keras.serving import CaptionClient
from sat_keras.serving import grpc_server
from sat_keras.serving.grpc_server import start_grpc_server
from sat_keras.serving.model_runner import ModelRunner

SAT_KERAS = os.path.join(os.path.dirname(sys.executable), "sat-keras")
SHAPES = os.path.join(os.path.dirname(__file__), "..", "..", "saved_models", "shapes")
RSS_MARGIN_MB = 200  # the bound; before it, one 60-byte request took +2.1 GB
ANSWER_SECONDS = 2.0


def many_frame_gif(frames=2000):
    """A GIF of `frames` 16 x 16 frames on a 16 x 16 screen (84 KB for 2,000)."""
    return gif_bomb(screen=(16, 16), frame_side=16, frames=frames)


def request(name, dtype, dims, signature="caption_features", **values):
    """A PredictRequest for `shapes` with one hand-made TensorProto."""
    proto = predict_pb2.PredictRequest()
    proto.model_spec.name = "shapes"
    proto.model_spec.signature_name = signature
    tensor = proto.inputs[name]
    tensor.dtype = dtype
    for size in dims:
        tensor.tensor_shape.dim.add().size = size
    for field, value in values.items():
        if field == "tensor_content":
            tensor.tensor_content = value
        else:
            getattr(tensor, field).extend(value)
    return proto


GOOD = request("image_bytes", types_pb2.DT_STRING, [1], "serving_default",
               string_val=[encode_image("png", 64, 64)])
FLOAT = types_pb2.DT_FLOAT
ITEM = 64 * 64  # values of one `features` item of the shapes model (L=64, D=64)
PROBES = [
    ("(65536, 64, 64) with no values", request("features", FLOAT, [65536, 64, 64]),
     "INVALID_ARGUMENT", "must hold 1 to 64 items; it holds 65536"),
    ("(65536, 64, 64) with one float_val",
     request("features", FLOAT, [65536, 64, 64], float_val=[1.0]),
     "INVALID_ARGUMENT", "must hold 1 to 64 items; it holds 65536"),
    ("(1, 64, 64) with one float_val", request("features", FLOAT, [1, 64, 64], float_val=[1.0]),
     "INVALID_ARGUMENT", f"declares shape [1, 64, 64] ({ITEM} values) but carries 1 values"),
    ("negative dims", request("features", FLOAT, [-1, 64, 64]),
     "INVALID_ARGUMENT", "must have shape (None, 64, 64); received [-1, 64, 64]"),
    ("absurd dims", request("features", FLOAT, [1, 2 ** 40, 2 ** 40]),
     "INVALID_ARGUMENT", "must have shape (None, 64, 64)"),
    ("tensor_content of one item for two",
     request("features", FLOAT, [2, 64, 64], tensor_content=bytes(4 * ITEM)),
     "INVALID_ARGUMENT", f"({2 * ITEM} values) but carries {ITEM} values"),
    ("tensor_content not a whole number of floats",
     request("features", FLOAT, [1, 64, 64], tensor_content=bytes(4 * ITEM - 1)),
     "INVALID_ARGUMENT", f"but carries {ITEM - 0.25:.10g} values"),
    ("wrong dtype", request("features", types_pb2.DT_DOUBLE, [1, 64, 64], double_val=[0.0] * ITEM),
     "INVALID_ARGUMENT", "must be float32; received float64"),
    # A dtype enum TensorFlow does not know: tf.make_ndarray raised before the checks.
    ("unknown dtype", request("image_bytes", 999, [1], "serving_default"),
     "INVALID_ARGUMENT", "must be string; received an unknown dtype (999)"),
    ("65536 strings declared, none given",
     request("image_bytes", types_pb2.DT_STRING, [65536], "serving_default"),
     "INVALID_ARGUMENT", "must hold 1 to 64 items"),
    ("2,000 frames of 16 x 16", request("image_bytes", types_pb2.DT_STRING, [1], "serving_default",
                                        string_val=[many_frame_gif()]),
     "INVALID_ARGUMENT", "image_bytes[0]: over 64 GIF frames"),
]


@pytest.fixture(scope="module")
def served_shapes():
    """(stub, pid, log) of `sat-keras serve` on the shapes model, gRPC only, in a process
    of its own so that its peak RSS (VmHWM) is the probes' alone."""
    port = free_port()
    process = subprocess.Popen(
        [SAT_KERAS, "serve", "--model-dir", SHAPES, "--port", str(port), "--rest-port", "0",
         "--in-process"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        with CaptionClient(f"127.0.0.1:{port}", "shapes", timeout=60) as client:
            wait_until_serving(client, process)
            client.caption([encode_image("png", 64, 64), many_frame_gif(frames=3)])  # warm
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        yield prediction_service_pb2_grpc.PredictionServiceStub(channel), process
        channel.close()
    finally:
        process.terminate()
        process.communicate(timeout=60)


def call(stub, proto, timeout=30):
    """(status code name, details, seconds)."""
    started = time.monotonic()
    try:
        stub.Predict(proto, timeout=timeout)
        code, details = "OK", ""
    except grpc.RpcError as error:
        code, details = error.code().name, error.details()
    return code, details, time.monotonic() - started


def test_every_probe_is_answered_fast_and_small_and_serving_goes_on(served_shapes):
    stub, process = served_shapes
    warm_mb = process_memory_mb(process.pid, "VmHWM")
    for label, proto, code, text in PROBES:
        answer = call(stub, proto)
        assert answer[:1] == (code,) and text in answer[1], (label, answer)
        assert answer[2] < ANSWER_SECONDS, (label, answer)
        assert call(stub, GOOD)[0] == "OK", label
    peak_mb = process_memory_mb(process.pid, "VmHWM")
    assert peak_mb - warm_mb < RSS_MARGIN_MB, (warm_mb, peak_mb)


def test_a_2000_frame_gif_is_refused_well_within_its_budget(served_shapes):
    stub, _ = served_shapes
    code, details, seconds = call(stub, PROBES[-1][1])
    assert code == "INVALID_ARGUMENT" and "over 64 GIF frames" in details
    assert seconds < 1.5, seconds
    within = request("image_bytes", types_pb2.DT_STRING, [1], "serving_default",
                     string_val=[many_frame_gif(frames=64)])
    assert call(stub, within)[0] == "OK"


@pytest.fixture(scope="module")
def shapes_runner():
    return ModelRunner(SHAPES)


def test_calls_beyond_maximum_concurrent_rpcs_are_resource_exhausted(shapes_runner, monkeypatch):
    entered, release = threading.Semaphore(0), threading.Event()
    predict = shapes_runner.predict

    def held_predict(*args, **kwargs):
        entered.release()
        release.wait(30)
        return predict(*args, **kwargs)

    monkeypatch.setattr(shapes_runner, "predict", held_predict)
    server, port = start_grpc_server(shapes_runner, 0, max_workers=4, maximum_concurrent_rpcs=2)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            with futures.ThreadPoolExecutor(2) as pool:
                held = [pool.submit(call, stub, GOOD) for _ in range(2)]
                assert entered.acquire(timeout=30) and entered.acquire(timeout=30)
                refused = [call(stub, GOOD) for _ in range(3)]
                release.set()
                assert [answer[0] for answer in refused] == ["RESOURCE_EXHAUSTED"] * 3
                assert all(answer[2] < ANSWER_SECONDS for answer in refused), refused
                assert [future.result()[0] for future in held] == ["OK", "OK"]
            assert call(stub, GOOD)[0] == "OK"
    finally:
        server.stop(grace=None)


@pytest.mark.parametrize("error, code", [
    (KeyError("dtype"), "INVALID_ARGUMENT"), (RecursionError("too deep"), "INVALID_ARGUMENT"),
    (TypeError("a list"), "INVALID_ARGUMENT"), (AttributeError("no field"), "INVALID_ARGUMENT")])
def test_any_exception_reading_a_request_is_invalid_argument_in_one_log_line(
        shapes_runner, monkeypatch, caplog, error, code):
    def failing(*args):
        raise error

    monkeypatch.setattr(grpc_server, "checked_inputs", failing)
    server, port = start_grpc_server(shapes_runner, 0)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            answer = call(stub, GOOD)
            assert answer[:2] == (code, f"Malformed request: {type(error).__name__}: {error}")
            monkeypatch.undo()
            assert call(stub, GOOD)[0] == "OK"
    finally:
        server.stop(grace=None)
    lines = [record for record in caplog.records if record.name == "sat_keras.serving"]
    assert len(lines) == 1 and not lines[0].exc_info


def test_a_fault_of_the_server_is_internal_and_serving_goes_on(shapes_runner, monkeypatch):
    predict = shapes_runner.predict
    monkeypatch.setattr(shapes_runner, "predict", lambda *args, **kwargs: {"captions": object()})
    server, port = start_grpc_server(shapes_runner, 0)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            code, details, _ = call(stub, GOOD)
            assert code == "INTERNAL" and details.startswith("The server failed: TypeError")
            monkeypatch.setattr(shapes_runner, "predict", predict)
            assert call(stub, GOOD)[0] == "OK"
    finally:
        server.stop(grace=None)
