"""`sat-keras serve`: TF Serving when installed, else the in-process servers."""

import os
import shutil
import signal
import socket
import subprocess
import threading

from sat_keras.models.preset_loaders import resolve_handle
from sat_keras.serving.grpc_server import start_grpc_server
from sat_keras.serving.http_service import HTTPLimits
from sat_keras.serving.model_runner import ModelRunner
from sat_keras.serving.model_runner import model_versions
from sat_keras.serving.rest_server import start_rest_server
from sat_keras.serving.web import export_config
from sat_keras.serving.web import start_web_proxy

MODEL_SERVER = "tensorflow_model_server"


def model_server_command(model_dir, model_name, port, rest_port=None, xla=False):
    """The `tensorflow_model_server` command line for a model base path.

    `xla`: the model was exported with `jit_compile=True`, which TF Serving
    runs on CPUs only with its (experimental) XLA flag.
    """
    command = [MODEL_SERVER, f"--port={port}", f"--model_name={model_name}",
               f"--model_base_path={os.path.abspath(model_dir)}"]
    if rest_port:
        command.append(f"--rest_api_port={rest_port}")
    if xla:
        command.append("--xla_cpu_compilation_enabled=true")
    return command


def exported_with_xla(model_dir):
    """Whether the newest version was exported with `jit_compile=True`."""
    config = export_config(model_dir, model_versions(model_dir)[-1])
    return bool(config.get("jit_compile", False))  # {} from other code's SavedModels


class LocalServer:
    """The gRPC (and optionally REST) servers of one model, in this process.

    `http_limits`: the REST server's `HTTPLimits` (timeouts, connections,
    body size).
    """

    def __init__(self, model_dir, port=8500, rest_port=None, model_name=None,
                 host="127.0.0.1", max_workers=16, deadline=30.0, http_limits=None):
        self.runner = ModelRunner(model_dir, model_name, deadline=deadline)
        self.grpc_server, self.port = start_grpc_server(self.runner, port, host, max_workers)
        self.rest_server, self.rest_port = None, None
        if rest_port is not None:
            self.rest_server, self.rest_port = start_rest_server(self.runner, rest_port, host,
                                                                 http_limits)

    @property
    def model_name(self):
        return self.runner.model_name

    def stop(self, grace=1.0):
        """Stops accepting; the requests in flight get `grace` seconds to finish."""
        grpc_stopped = self.grpc_server.stop(grace=grace)
        if self.rest_server is not None:
            self.rest_server.stop(grace)
        grpc_stopped.wait(grace + 1.0)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()


def _free_local_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _run_model_server(model_dir, model_name, port, rest_port, web, host, http_limits,
                      print_fn):
    """Runs `tensorflow_model_server`; with `web`, its REST API behind the page's server."""
    # exported_with_xla reads the versions: an error here rather than in the server's log.
    xla = exported_with_xla(model_dir)
    proxy = None
    backend_port = rest_port
    if rest_port and web:
        backend_port = _free_local_port()
        config = export_config(model_dir, model_versions(model_dir)[-1])
        proxy, _ = start_web_proxy(rest_port, ("127.0.0.1", backend_port), model_name, config,
                                   host=host, limits=http_limits)
    command = model_server_command(model_dir, model_name, port, backend_port, xla=xla)
    print_fn("Running " + " ".join(command))
    print_fn(f"  {MODEL_SERVER} listens on every interface (it has no flag to choose one)")
    if proxy is not None:
        print_fn(f"  the caption page and TF Serving's REST API on {_url(host, rest_port)}/")
    process = subprocess.Popen(command)
    forwarded = threading.Event()

    def forward_sigterm():  # TF Serving drains and exits on SIGTERM itself
        forwarded.set()
        process.terminate()

    previous = _on_sigterm(forward_sigterm)
    try:
        status = process.wait()
    except KeyboardInterrupt:  # Ctrl-C reached the server too: let it finish stopping
        status = process.wait()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if proxy is not None:
            proxy.stop()
    return 0 if forwarded.is_set() and status < 0 else status


def _url(host, port):
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def _on_sigterm(action):
    """SIGTERM (`docker stop`, Kubernetes, systemd) calls `action()`; returns the previous
    handler, or None where signals cannot be set (not the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, lambda signum, frame: action())


def serve(model_dir, port=8500, rest_port=None, model_name=None, in_process=False,
          deadline=30.0, web=True, host="127.0.0.1", http_limits=None, grace=10.0,
          print_fn=print):
    """Serves a model base path until interrupted (Ctrl-C or SIGTERM).

    `model_dir` is the base path holding numbered versions, or a registered
    name ("flickr8k", the captioner that ships) or an archive URL of one
    (`models.preset_loaders.resolve_handle`).

    Runs `tensorflow_model_server` when it is on PATH (and not
    `in_process`), otherwise `LocalServer`, whose requests get `deadline`
    seconds each (TF Serving's are bounded by its clients' deadlines). The
    in-process servers and the page listen on `host`: loopback by default,
    "0.0.0.0" for every interface (in a container, or for other machines).
    The REST port also serves the caption page (`web.py`); with TF Serving
    that takes a forwarding server in front of its REST API, which
    `web=False` leaves out. `http_limits` (`HTTPLimits`) bounds the REST
    server's or the page's time, connections and body size.

    On Ctrl-C or SIGTERM the in-process servers stop accepting, give the
    requests in flight `grace` seconds to finish, and the call returns 0;
    `tensorflow_model_server` is sent the SIGTERM and waited for.
    Returns the exit status.
    """
    model_dir = resolve_handle(model_dir)
    model_name = model_name or os.path.basename(os.path.normpath(model_dir))
    http_limits = http_limits or HTTPLimits()
    if shutil.which(MODEL_SERVER) and not in_process:
        return _run_model_server(model_dir, model_name, port, rest_port, web, host,
                                 http_limits, print_fn)
    server = LocalServer(model_dir, port, rest_port, model_name, host=host, deadline=deadline,
                         http_limits=http_limits)
    why = "" if in_process else f"; {MODEL_SERVER} is not on PATH"
    print_fn(f"Serving {model_name} version {server.runner.version} from "
             f"{os.path.abspath(model_dir)} "
             f"(in-process{why})")
    print_fn(f"  gRPC PredictionService on {_url(host, server.port).removeprefix('http://')}")
    if server.rest_port:
        print_fn(f"  REST on {_url(host, server.rest_port)}/v1/models/{model_name}:predict")
        print_fn(f"  the caption page on {_url(host, server.rest_port)}/")
    stopped = threading.Event()
    previous = _on_sigterm(stopped.set)
    try:
        stopped.wait()
    except KeyboardInterrupt:
        pass
    finally:
        print_fn(f"Stopping: the requests in flight get up to {grace:g} s to finish")
        server.stop(grace)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0
