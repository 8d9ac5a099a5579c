"""The caption page: static files shipped in the package, and a forwarding server.

The page (`web/index.html`, `web/app.js`, `web/style.css`) sends the chosen
image to the model's REST `:predict` API and draws the caption's attention.
It is served from the same port as that API, so the browser needs no CORS:

- by the in-process REST server (`rest_server`), beside `/v1/models/...`;
- by `start_web_proxy` in front of a real `tensorflow_model_server`, whose
  REST API it forwards (TF Serving sends no CORS headers and serves no
  pages).

`GET /config.json` tells the page the model's name and the largest image
the export accepts.
"""

import http.client
import http.server
import json
import os
import threading
import urllib.parse

from sat_keras.export.saved_model import read_export_config

WEB_DIR = os.path.join(os.path.dirname(__file__), "web")
PAGE_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
FORWARDED_PREFIX = "/v1/"
MAX_FORWARDED_BYTES = 64 * 1024 * 1024


def export_config(model_dir, version):
    """The version's `export_config.json` as a dict; {} for other SavedModels."""
    return read_export_config(os.path.join(model_dir, str(version)))


def page_config(model_name, config):
    """What the page needs to know: the model's name and its image size limit."""
    limits = config.get("image_limits", {})
    return {"model_name": model_name, "max_image_bytes": limits.get("max_bytes")}


def page_response(path, model_name, config):
    """(content_type, body) for a page path, or None when `path` is not one."""
    path = urllib.parse.urlsplit(path).path
    if path == "/config.json":
        return "application/json", json.dumps(page_config(model_name, config)).encode()
    if path not in PAGE_FILES:
        return None
    file_name, content_type = PAGE_FILES[path]
    with open(os.path.join(WEB_DIR, file_name), "rb") as file:
        return content_type, file.read()


def send_page(handler, content_type, body):
    """Writes a 200 response with `body` through a BaseHTTPRequestHandler."""
    handler.send_response(200)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.send_header("Cache-Control", "no-cache")
    handler.end_headers()
    handler.wfile.write(body)


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    backend = None  # (host, port) of the REST API, set per server
    model_name = None
    config = None
    # One connection per request: the page sees a stopped server at its next
    # request, instead of a kept-alive connection that outlives it.
    protocol_version = "HTTP/1.0"

    def log_message(self, format, *args):
        pass

    def _reply(self, status, body, content_type="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status, message):
        self._reply(status, json.dumps({"error": message}).encode())

    def _forward(self, body=None):
        host, port = self.backend
        connection = http.client.HTTPConnection(host, port, timeout=300)
        try:
            headers = {"Content-Type": self.headers.get("Content-Type", "application/json")}
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            content_type = response.getheader("Content-Type", "application/json")
        except OSError as error:
            return self._error(502, f"The model server at {host}:{port} is not answering "
                                    f"({error}).")
        finally:
            connection.close()
        self._reply(response.status, payload, content_type)

    def do_GET(self):
        page = page_response(self.path, self.model_name, self.config)
        if page is not None:
            return send_page(self, *page)
        if not self.path.startswith(FORWARDED_PREFIX):
            return self._error(404, f"Nothing here: {self.path}")
        self._forward()

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_FORWARDED_BYTES:
            self.close_connection = True
            return self._error(400, f"The body is over {MAX_FORWARDED_BYTES} bytes ({length})")
        body = self.rfile.read(length)
        if not self.path.startswith(FORWARDED_PREFIX):
            return self._error(404, f"Nothing here: {self.path}")
        self._forward(body)


def start_web_proxy(port, backend, model_name, config=None, host="127.0.0.1"):
    """Serves the page on `port` and forwards `/v1/...` to the REST API at `backend`.

    Args:
        port: the port to listen on (0 picks a free one).
        backend: (host, port) of the model server's REST API.
        model_name: the name the page asks the API for.
        config: the export's `export_config.json` as a dict.
        host: the interface to listen on.

    Returns:
        (server, port); `server.shutdown()` stops it.
    """
    handler = type("ProxyHandler", (_ProxyHandler,),
                   {"backend": tuple(backend), "model_name": model_name,
                    "config": config or {}})
    server = http.server.ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]
