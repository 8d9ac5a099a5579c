"""Load on `sat-keras serve`: concurrent clients over loopback, latency and throughput.

    python benchmarks/serve_load.py [--model-dir saved_models/shapes] [--clients 8]
        [--requests 200] [--protocol grpc|rest] [--images-per-request 1]
        [--ab REVISION --rounds 3]

Starts `sat-keras serve --in-process` on free ports as a separate process,
waits until it answers, then runs --clients threads that each send
--requests Predict calls of --images-per-request synthetic 64x64 PNG
images (one warm-up call first, not counted). Prints errors, p50 / p99
latency of a request, and requests/s over the whole run.

--ab REVISION serves the same model from the `sat_keras` package of a git
revision as well (read with `git archive` into a temporary folder) and
alternates --rounds runs against it and against the working tree, so that
both see the same hour of the machine; it prints each round and the
figures of all rounds together.
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


def start_server(model_dir, grpc_port, rest_port, package_dir=None):
    """`sat-keras serve --in-process`; with `package_dir`, that folder's `sat_keras`."""
    command = [sys.executable, "-c", "from sat_keras.cli import run; run()", "serve",
               "--model-dir", model_dir, "--port", str(grpc_port), "--rest-port",
               str(rest_port), "--in-process"]
    environment = dict(os.environ)
    if package_dir:
        environment["PYTHONPATH"] = package_dir
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=environment, cwd=package_dir)


def package_of_revision(revision, folder):
    """Writes the `sat_keras` package of a git revision into `folder`; returns `folder`."""
    root = subprocess.check_output(["git", "rev-parse", "--show-toplevel"], text=True).strip()
    archive = subprocess.run(["git", "-C", root, "archive", revision, "sat_keras"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
    return folder


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


def load(port, name, images, args):
    """Runs the clients once; returns (latencies in ms, errors, seconds)."""
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
    return np.array([v for values in latencies for v in values]) * 1000.0, errors, elapsed


def report(label, latencies, errors, elapsed, args):
    total = len(latencies)
    print(f"{label}errors: {len(errors)} of {total}"
          + (f" (first: {errors[0]})" if errors else "")
          + f"; latency p50 {np.percentile(latencies, 50):.1f} ms, "
          f"p99 {np.percentile(latencies, 99):.1f} ms; throughput {total / elapsed:.1f} "
          f"requests/s ({total * args.images_per_request / elapsed:.1f} images/s) over "
          f"{elapsed:.1f} s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default="saved_models/shapes")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=200, help="per client")
    parser.add_argument("--protocol", choices=["grpc", "rest"], default="grpc")
    parser.add_argument("--images-per-request", type=int, default=1)
    parser.add_argument("--ab", default=None, metavar="REVISION",
                        help="also serve from this git revision's sat_keras, alternating")
    parser.add_argument("--rounds", type=int, default=3, help="with --ab: rounds of each")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as data_dir:
        records = generate_synthetic(data_dir, num_images=64, seed=7)
        images = [open(record.image_path, "rb").read() for record in records]
    model_dir = os.path.abspath(args.model_dir)
    name = os.path.basename(os.path.normpath(model_dir))
    print(f"sat-keras serve (in-process), {args.protocol}, model {args.model_dir}: "
          f"{args.clients} clients x {args.requests} requests x "
          f"{args.images_per_request} image(s), loopback")
    with tempfile.TemporaryDirectory() as old_dir:
        sides = {"working tree": None}
        if args.ab:
            sides = {args.ab: package_of_revision(args.ab, old_dir), **sides}
        servers = {}
        try:
            for label, package_dir in sides.items():
                grpc_port, rest_port = free_port(), free_port()
                process = start_server(model_dir, grpc_port, rest_port, package_dir)
                servers[label] = (process, grpc_port if args.protocol == "grpc" else rest_port)
                wait_until_serving(CaptionClient(f"127.0.0.1:{grpc_port}", name), process)
            results = {label: [] for label in sides}
            for round_index in range(args.rounds if args.ab else 1):
                for label, (_, port) in servers.items():
                    results[label].append(load(port, name, images, args))
                    if args.ab:
                        report(f"round {round_index + 1}, {label}: ", *results[label][-1], args)
        finally:
            for process, _ in servers.values():
                process.terminate()
                process.wait(timeout=60)
    failed = False
    for label, runs in results.items():
        latencies = np.concatenate([run[0] for run in runs])
        errors = [error for run in runs for error in run[1]]
        report(f"{label}, all rounds: " if args.ab else "", latencies, errors,
               sum(run[2] for run in runs), args)
        failed = failed or bool(errors)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
