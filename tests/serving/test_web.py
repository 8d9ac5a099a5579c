"""The caption page's files and the forwarding server, over plain HTTP."""

import http.client
import json
import os

import pytest
from helpers import encode_image
from helpers import free_port

from sat_keras.serving import CaptionClient
from sat_keras.serving.web import PAGE_FILES
from sat_keras.serving.web import WEB_DIR
from sat_keras.serving.web import start_web_proxy


def _get(port, path, method="GET", body=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    finally:
        connection.close()


def test_the_page_is_shipped_in_the_package_and_loads_nothing_from_elsewhere():
    for file_name, _ in PAGE_FILES.values():
        with open(os.path.join(WEB_DIR, file_name), encoding="utf-8") as file:
            text = file.read()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, file_name
    with open(os.path.join(WEB_DIR, "index.html"), encoding="utf-8") as file:
        html = file.read()
    assert 'lang="en"' in html and 'name="viewport"' in html  # screen readers, phones
    assert 'role="alert"' in html and 'type="file"' in html


def test_the_local_rest_server_serves_the_page_beside_the_api(local_server):
    port = local_server.rest_port
    status, content_type, body = _get(port, "/")
    assert status == 200 and content_type.startswith("text/html") and b"<canvas" in body
    assert _get(port, "/app.js")[1].startswith("text/javascript")
    assert _get(port, "/style.css")[1].startswith("text/css")
    status, _, body = _get(port, "/config.json")
    config = json.loads(body)
    assert config["model_name"] == local_server.model_name
    assert config["max_image_bytes"] == 20 * 1024 * 1024
    status, _, body = _get(port, "/nothing.js")
    assert status == 404 and "error" in json.loads(body)


def test_the_forwarding_server_passes_the_api_through(local_server):
    proxy, port = start_web_proxy(0, ("127.0.0.1", local_server.rest_port),
                                  local_server.model_name, host="127.0.0.1")
    try:
        assert b"<canvas" in _get(port, "/")[2]
        images = [encode_image("png", seed=5)]
        direct = CaptionClient(f"127.0.0.1:{local_server.rest_port}", local_server.model_name,
                               protocol="rest", timeout=60).caption(images)
        forwarded = CaptionClient(f"127.0.0.1:{port}", local_server.model_name,
                                  protocol="rest", timeout=60).caption(images)
        assert forwarded["captions"] == direct["captions"]
        status, _, body = _get(port, f"/v1/models/{local_server.model_name}:predict", "POST",
                               json.dumps({"instances": [{"b64": "bm90IGFuIGltYWdl"}]}))
        assert status == 400 and "Bad image" in json.loads(body)["error"]
        status, _, body = _get(port, "/v1/models/nobody")
        assert status == 404
    finally:
        proxy.stop()


def test_the_forwarding_server_says_when_the_model_server_is_down():
    proxy, port = start_web_proxy(0, ("127.0.0.1", free_port()), "shapes", host="127.0.0.1")
    try:
        status, _, body = _get(port, "/v1/models/shapes:predict", "POST", b"{}")
        assert status == 502 and "not answering" in json.loads(body)["error"]
        status, _, body = _get(port, "/")  # the page itself still loads
        assert status == 200
    finally:
        proxy.stop()


@pytest.mark.parametrize("path", ["/etc/passwd", "/../setup.cfg", "/web/app.js"])
def test_only_the_pages_files_are_served(local_server, path):
    assert _get(local_server.rest_port, path)[0] == 404
