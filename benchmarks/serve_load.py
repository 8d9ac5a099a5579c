"""Load on `sat-keras serve`: concurrent clients over loopback, latency and throughput.

    python benchmarks/serve_load.py [--model-dir saved_models/shapes] [--clients 8]
        [--requests 200] [--protocol grpc|rest] [--images-per-request 1]

Starts `sat-keras serve --in-process` on free ports as a separate process,
waits until it answers, then runs --clients threads that each send
--requests Predict calls of --images-per-request synthetic 64x64 PNG
images (one warm-up call first, not counted). Prints errors, p50 / p99
latency of a request, and requests/s over the whole run.
"""

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

from sat_keras.data.synthetic import generate_synthetic
from sat_keras.serving import CaptionClient
from sat_keras.serving import CaptionServiceError


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(model_dir, grpc_port, rest_port):
    command = [os.path.join(os.path.dirname(sys.executable), "sat-keras"), "serve",
               "--model-dir", model_dir, "--port", str(grpc_port), "--rest-port",
               str(rest_port), "--in-process"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_until_serving(client, process, seconds=180):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("sat-keras serve exited")
        try:
            return client.metadata()
        except CaptionServiceError:
            time.sleep(0.5)
    raise TimeoutError("sat-keras serve did not come up")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default="saved_models/shapes")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=200, help="per client")
    parser.add_argument("--protocol", choices=["grpc", "rest"], default="grpc")
    parser.add_argument("--images-per-request", type=int, default=1)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as data_dir:
        records = generate_synthetic(data_dir, num_images=64, seed=7)
        images = [open(record.image_path, "rb").read() for record in records]
    name = os.path.basename(os.path.normpath(args.model_dir))
    grpc_port, rest_port = free_port(), free_port()
    port = grpc_port if args.protocol == "grpc" else rest_port
    server = start_server(args.model_dir, grpc_port, rest_port)
    try:
        wait_until_serving(CaptionClient(f"127.0.0.1:{grpc_port}", name), server)
        latencies = [[] for _ in range(args.clients)]
        errors = []

        def run_client(index):
            client = CaptionClient(f"127.0.0.1:{port}", name, protocol=args.protocol,
                                   timeout=60, retries=0)
            rng = np.random.default_rng(index)
            batch = lambda: [images[i] for i in rng.integers(0, len(images),  # noqa: E731
                                                             args.images_per_request)]
            client.caption(batch())  # warm-up
            barrier.wait()
            for _ in range(args.requests):
                started = time.perf_counter()
                try:
                    client.caption(batch())
                except CaptionServiceError as error:
                    errors.append(error)
                latencies[index].append(time.perf_counter() - started)
            client.close()

        barrier = threading.Barrier(args.clients + 1)
        threads = [threading.Thread(target=run_client, args=(i,)) for i in range(args.clients)]
        for thread in threads:
            thread.start()
        barrier.wait()
        started = time.perf_counter()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=60)

    all_latencies = np.array([value for values in latencies for value in values]) * 1000.0
    total = args.clients * args.requests
    print(f"sat-keras serve (in-process), {args.protocol}, model {args.model_dir}: "
          f"{args.clients} clients x {args.requests} requests x "
          f"{args.images_per_request} image(s), loopback")
    print(f"errors: {len(errors)} of {total}" + (f" (first: {errors[0]})" if errors else ""))
    print(f"latency p50 {np.percentile(all_latencies, 50):.1f} ms, "
          f"p99 {np.percentile(all_latencies, 99):.1f} ms")
    print(f"throughput {total / elapsed:.1f} requests/s "
          f"({total * args.images_per_request / elapsed:.1f} images/s) over {elapsed:.1f} s")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
