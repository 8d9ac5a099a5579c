import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time

import pytest
from helpers import encode_image
from helpers import free_port
from helpers import wait_until_serving

from sat_keras import cli
from sat_keras.models.saving import save_captioner
from sat_keras.serving import CaptionClient
from sat_keras.serving import CaptionServiceError
from sat_keras.serving import server as server_module

SAT_KERAS = os.path.join(os.path.dirname(sys.executable), "sat-keras")


def test_export_then_serve_commands(exported_model, tmp_path):
    model_dir = save_captioner(exported_model[0], str(tmp_path / "model"))
    base = tmp_path / "saved_models" / "tiny"
    assert cli.main(["export", "--model", model_dir, "--output", str(base / "2"),
                     "--beam-size", "2", "--max-length", "6", "--max-image-pixels", "5000",
                     "--max-request-pixels", "10000"]) == 0
    with open(base / "2" / "assets.extra" / "export_config.json") as file:
        limits = json.load(file)["image_limits"]
    assert (limits["max_pixels"], limits["max_request_pixels"]) == (5000, 10000)
    assert cli.main(["export", "--model", model_dir, "--output", str(base / "2")]) == 2
    grpc_port, rest_port = free_port(), free_port()
    process = subprocess.Popen(
        [SAT_KERAS, "serve", "--model-dir", str(base), "--port", str(grpc_port),
         "--rest-port", str(rest_port), "--in-process"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        grpc_client = CaptionClient(f"127.0.0.1:{grpc_port}", "tiny", timeout=60)
        wait_until_serving(grpc_client, process)
        images = [encode_image("jpeg", seed=3), encode_image("png", seed=4)]
        rest_client = CaptionClient(f"127.0.0.1:{rest_port}", "tiny", protocol="rest",
                                    timeout=60)
        served = grpc_client.caption(images)["captions"]
        assert rest_client.caption(images)["captions"] == served
        with pytest.raises(CaptionServiceError, match="image_bytes\\[0\\]: empty"):
            grpc_client.caption([b""])
        with pytest.raises(CaptionServiceError, match="decode to 11520 pixels in all, over "
                                                      "the limit of 10000"):
            rest_client.caption(images * 3)  # 6 images of 40 x 48
        assert grpc_client.caption(images)["captions"] == served
        grpc_client.close()
    finally:
        process.terminate()
        output = process.communicate(timeout=60)[0]
    assert "Serving tiny version 2" in output


@pytest.fixture
def fake_model_server(tmp_path, monkeypatch):
    """A `tensorflow_model_server` on PATH that writes its arguments to the returned file."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "tensorflow_model_server"
    record = tmp_path / "arguments"
    fake.write_text(f"#!/bin/sh\necho \"$@\" > {record}\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return record


def test_serve_runs_tensorflow_model_server_when_it_is_installed(exported_model,
                                                                  fake_model_server, capsys):
    record = fake_model_server
    base = exported_model[1]
    rest_port = free_port()
    assert cli.main(["serve", "--model-dir", base, "--port", "9000", "--rest-port",
                     str(rest_port), "--model-name", "shapes", "--no-web"]) == 0
    assert record.read_text().split() == [
        "--port=9000", "--model_name=shapes", f"--model_base_path={os.path.abspath(base)}",
        f"--rest_api_port={rest_port}"]
    # With the page (the default), TF Serving's REST API moves to a local port
    # behind the page's server, which listens on the REST port asked for.
    assert cli.main(["serve", "--model-dir", base, "--port", "9000", "--rest-port",
                     str(rest_port), "--model-name", "shapes"]) == 0
    arguments = record.read_text().split()
    backend_port = int(arguments[-1].split("=")[1])
    assert arguments[:3] == [
        "--port=9000", "--model_name=shapes", f"--model_base_path={os.path.abspath(base)}"]
    assert arguments[-1].startswith("--rest_api_port=") and backend_port != rest_port
    out = capsys.readouterr().out
    assert f"the caption page and TF Serving's REST API on http://127.0.0.1:{rest_port}/" in out
    assert "tensorflow_model_server listens on every interface" in out


def test_sigterm_reaches_tensorflow_model_server_and_serve_exits_0(exported_model, tmp_path):
    """`docker stop` sends SIGTERM to `sat-keras serve`: TF Serving gets it and drains."""
    bin_dir, record = tmp_path / "bin", tmp_path / "record"
    bin_dir.mkdir()
    fake = bin_dir / "tensorflow_model_server"
    fake.write_text(f"#!/bin/sh\ntrap 'echo terminated >> {record}; exit 0' TERM\n"
                    f"echo started > {record}\nwhile true; do sleep 0.1; done\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    environment = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    process = subprocess.Popen([SAT_KERAS, "serve", "--model-dir", exported_model[1],
                                "--rest-port", "0"], env=environment,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while not record.exists() and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()[0][-3000:]
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
    assert record.read_text().split() == ["started", "terminated"]


def test_serve_without_a_version_directory_says_so(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert cli.main(["serve", "--model-dir", str(tmp_path / "empty")]) == 2
    assert "holds no SavedModel version" in capsys.readouterr().err


def test_serve_turns_on_tf_servings_xla_for_an_xla_export(exported_model, fake_model_server,
                                                          tmp_path):
    record = fake_model_server
    base = tmp_path / "tiny"
    shutil.copytree(exported_model[1], base)
    config_path = base / "1" / "assets.extra" / "export_config.json"
    config = json.loads(config_path.read_text())
    assert config["jit_compile"] is False
    assert cli.main(["serve", "--model-dir", str(base), "--rest-port", "0"]) == 0
    assert "--xla_cpu_compilation_enabled=true" not in record.read_text().split()
    config_path.write_text(json.dumps({**config, "jit_compile": True}))
    assert cli.main(["serve", "--model-dir", str(base), "--rest-port", "0"]) == 0
    assert record.read_text().split()[-1] == "--xla_cpu_compilation_enabled=true"


def test_the_in_process_servers_listen_on_loopback_unless_told(exported_model, monkeypatch):
    """The banner names the address each server listens on, and the REST socket is bound
    to it: 127.0.0.1 by default, every interface with --host 0.0.0.0."""
    printed = []

    class Stop(Exception):
        pass

    def print_until_served(line):
        printed.append(line)
        if line.startswith("  the caption page on"):  # the banner's last line
            raise Stop

    monkeypatch.setattr(server_module.shutil, "which", lambda name: None)
    started = []
    real = server_module.LocalServer

    def recording(*args, **kwargs):
        started.append(real(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(server_module, "LocalServer", recording)
    for host in ("127.0.0.1", "0.0.0.0"):
        printed.clear()
        with pytest.raises(Stop):
            server_module.serve(exported_model[1], port=0, rest_port=0, host=host,
                                print_fn=print_until_served)
        local = started[-1]
        try:
            assert local.rest_server.server_address[0] == host
            assert f"  gRPC PredictionService on {host}:{local.port}" in printed
            assert f"  the caption page on http://{host}:{local.rest_port}/" in printed
        finally:
            local.stop()
