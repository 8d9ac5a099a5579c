"""`sat-keras serve` under a bounded soak on loopback: 8 clients mixing good images
with every refused kind, bombs included, beside 2 hostile HTTP clients (malformed
framing, stalled bodies, JSON bombs: `test_hostile_rest`'s probes) and a hostile
gRPC client (`test_hostile_grpc`'s: declared shapes of gigabytes, miscounted values,
GIF bombs). Good requests
never fail, bad ones are refused by name, the good requests' p50 / p99 are
reported, and the server's memory does not grow with the requests."""

import os
import subprocess
import sys
import threading
import time

import grpc
import numpy as np
import pytest
from helpers import encode_image
from helpers import free_port
from helpers import hostile_images
from helpers import process_memory_mb
from helpers import wait_until_serving
from tensorflow_serving.apis import prediction_service_pb2_grpc
from test_hostile_grpc import PROBES as HOSTILE_GRPC
from test_hostile_rest import PREDICT
from test_hostile_rest import exchange

from sat_keras.serving import CaptionClient
from sat_keras.serving import CaptionServiceError

SAT_KERAS = os.path.join(os.path.dirname(sys.executable), "sat-keras")
SHAPES = os.path.join(os.path.dirname(__file__), "..", "..", "saved_models", "shapes")
# The server's RSS climbs for the first 80 s or so of such traffic (memory
# allocator arenas of the serving threads, TensorFlow's caches), then
# levels off: measured in 20 s rounds after start-up, 974, 1021, 1029, 1089,
# 1095, 1085 MB (after a 40 s warm-up, 90 s added 53 and 97 MB in two runs;
# after 80 s, 60 s added 42 MB). Keeping the bytes of every request (bombs of
# up to 2 MB among them) would add gigabytes; a leak of a few KB a request
# would not stand out from this noise.
CLIENTS, WARM_UP_SECONDS, SOAK_SECONDS = 8, 80, 60
RSS_MARGIN_MB = 96


def requests():
    """(label, images, refusal text or None) cycled through by every client."""
    good = [encode_image(kind, 64, 64, seed=seed)
            for seed, kind in enumerate(["jpeg", "png", "gif", "bmp"])]
    bad = [(label, [good[0], data], f"image_bytes[1]: {problem}")
           for label, data, problem in hostile_images()]
    bad += [("empty", [b""], "image_bytes[0]: empty"),
            ("truncated JPEG", [good[0][:-200]], "image_bytes[0]: truncated")]
    mixed = []
    for index, item in enumerate(bad):
        mixed += [("good", good[index % 4: index % 4 + 2], None), item]
    return mixed


HOSTILE_HTTP = [  # (label, bytes sent, the status answered; None: closed after a stall)
    ("Content-Length -1", PREDICT + b"Content-Length: -1\r\n\r\n" + b"x" * 100_000, 400),
    ("Content-Length abc", PREDICT + b"Content-Length: abc\r\n\r\n{}", 400),
    ("chunked", PREDICT + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", 411),
    ("deep JSON", PREDICT + b"Content-Length: 1812\r\n\r\n" + b'{"inputs": '
     + b"[" * 900 + b"]" * 900 + b"}", 400),
    ("5,000 digits", PREDICT + b"Content-Length: 5017\r\n\r\n" + b'{"instances": ['
     + b"7" * 5000 + b"]}", 400),
    ("body stalled", PREDICT + b"Content-Length: 1000\r\n\r\n0123456789", 408),
]


def hostile_http_loop(port, stop, answers, index):
    """Sends HOSTILE_HTTP's probes in turn until `stop`; appends (label, expected, status)."""
    position = index
    while time.monotonic() < stop:
        label, data, expected = HOSTILE_HTTP[position % len(HOSTILE_HTTP)]
        position += 1
        status = exchange(port, data, seconds=60)[0]
        answers.append((label, expected, status))


def hostile_grpc_loop(port, stop, answers, index):
    """Sends `test_hostile_grpc`'s probes in turn until `stop`; appends (label, expected,
    code): declared shapes of gigabytes, miscounted values, unknown dtypes, GIF bombs."""
    position = index
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        while time.monotonic() < stop:
            label, proto, expected, _ = HOSTILE_GRPC[position % len(HOSTILE_GRPC)]
            position += 1
            try:
                stub.Predict(proto, timeout=60)
                answers.append((label, expected, "OK"))
            except grpc.RpcError as error:
                answers.append((label, expected, error.code().name))


def soak(ports, seconds, outcomes, hostile=None):
    """Runs the clients for `seconds`; appends (label, expected, error or None, seconds)
    to outcomes, and with `hostile` (a list) runs 2 hostile HTTP clients and a hostile
    gRPC client too."""
    stop = time.monotonic() + seconds
    cases = requests()

    def client_loop(index):
        protocol = "grpc" if index % 2 == 0 else "rest"
        with CaptionClient(f"127.0.0.1:{ports[protocol]}", "shapes", protocol=protocol,
                           timeout=60, retries=0) as client:
            position = index * 3
            while time.monotonic() < stop:
                label, images, expected = cases[position % len(cases)]
                position += 1
                started = time.monotonic()
                try:
                    client.caption(images)
                    outcomes.append((label, expected, None, time.monotonic() - started))
                except CaptionServiceError as error:
                    outcomes.append((label, expected, error, time.monotonic() - started))

    threads = [threading.Thread(target=client_loop, args=(index,)) for index in range(CLIENTS)]
    if hostile is not None:
        threads += [threading.Thread(target=hostile_http_loop,
                                     args=(ports["rest"], stop, hostile, index))
                    for index in range(2)]
        threads.append(threading.Thread(target=hostile_grpc_loop,
                                        args=(ports["grpc"], stop, hostile, 0)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@pytest.mark.slow
def test_eight_clients_mixing_good_and_hostile_images(tmp_path):
    ports = {"grpc": free_port(), "rest": free_port()}
    process = subprocess.Popen(
        [SAT_KERAS, "serve", "--model-dir", SHAPES, "--port", str(ports["grpc"]),
         "--rest-port", str(ports["rest"]), "--in-process", "--rest-timeout", "5"],
        # A file, not a pipe: the server logs a line per refused request, and a pipe
        # nobody reads until the end fills up and blocks it.
        stdout=open(tmp_path / "serve.log", "w"), stderr=subprocess.STDOUT, text=True)
    try:
        wait_until_serving(CaptionClient(f"127.0.0.1:{ports['grpc']}", "shapes"), process)
        soak(ports, WARM_UP_SECONDS, [])  # every kind of request once or more
        started_mb = process_memory_mb(process.pid, "VmRSS")
        outcomes, hostile = [], []
        soak(ports, SOAK_SECONDS, outcomes, hostile)
        ended_mb = process_memory_mb(process.pid, "VmRSS")
        with CaptionClient(f"127.0.0.1:{ports['grpc']}", "shapes") as client:
            assert len(client.caption([encode_image("png", 64, 64)])["captions"]) == 1
    finally:
        process.terminate()
        process.wait(timeout=60)
    good = [error for label, expected, error, _ in outcomes if expected is None]
    good_ms = 1000 * np.array([seconds for _, expected, _, seconds in outcomes
                               if expected is None])
    bad = [(label, expected, error) for label, expected, error, _ in outcomes if expected]
    summary = (f"{len(good)} good and {len(bad)} bad requests, {len(hostile)} hostile HTTP "
               f"and gRPC probes; good p50 {np.percentile(good_ms, 50):.0f} ms, p99 "
               f"{np.percentile(good_ms, 99):.0f} ms; RSS {started_mb:.0f} -> "
               f"{ended_mb:.0f} MB")
    print(summary)
    assert len(good) >= 100 and len(bad) >= 100 and len(hostile) >= 10, summary
    assert not any(good), [error for error in good if error][:3]
    assert all(status == expected for _, expected, status in hostile), hostile[:5]
    for label, expected, error in bad:
        assert error is not None and error.code == "INVALID_ARGUMENT", (label, error)
        assert expected in error.message, (label, error.message)
    assert ended_mb - started_mb < RSS_MARGIN_MB, summary
