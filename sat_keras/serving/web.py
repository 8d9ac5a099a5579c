"""The caption page: static files shipped in the package, and a forwarding server.

The page (`web/index.html`, `web/app.js`, `web/style.css`) sends the chosen
image to the model's REST `:predict` API and draws the caption's attention.
It is served from the same port as that API, so the browser needs no CORS:

- by the in-process REST server (`rest_server`), beside `/v1/models/...`;
- by `start_web_proxy` in front of a real `tensorflow_model_server`, whose
  REST API it forwards (TF Serving sends no CORS headers and serves no
  pages).

`GET /config.json` tells the page the model's name and the largest image
the export accepts. Both servers stand on `http_service.HTTPService`
(tornado), with its limits on time, connections and body size.
"""

import json
import os
import urllib.parse

import tornado.httpclient

from sat_keras.export.saved_model import read_export_config
from sat_keras.serving.http_service import HTTPService
from sat_keras.serving.http_service import JSONHandler

WEB_DIR = os.path.join(os.path.dirname(__file__), "web")
PAGE_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
FORWARDED_PREFIX = "/v1/"


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


class PageHandler(JSONHandler):
    """GET and HEAD of the page's files; 404 for anything else."""

    model_name = None  # set per server, with:
    config = None  # the export's export_config.json

    def get(self):
        page = page_response(self.request.path, self.model_name, self.config or {})
        if page is None:
            return self.reply_error(404, f"Nothing here: {self.request.path}")
        content_type, body = page
        self.set_header("Content-Type", content_type)
        self.set_header("Cache-Control", "no-cache")
        self.finish(body)

    head = get  # tornado sends HEAD the headers of GET, without the body


class ForwardingHandler(JSONHandler):
    """`/v1/...`: forwarded to the model server's REST API, its answer passed back."""

    backend = None  # (host, port), set per server

    async def _forward(self):
        host, port = self.backend
        request = tornado.httpclient.HTTPRequest(
            f"http://{host}:{port}{self.request.uri}", method=self.request.method,
            body=self.request.body if self.request.method == "POST" else None,
            headers={"Content-Type": self.request.headers.get("Content-Type",
                                                              "application/json")},
            request_timeout=300, follow_redirects=False, decompress_response=False)
        try:  # raise_error=False: an HTTP error status is passed back as it is
            response = await tornado.httpclient.AsyncHTTPClient().fetch(request,
                                                                        raise_error=False)
        except (OSError, tornado.httpclient.HTTPClientError) as error:  # no HTTP answer
            return self.reply_error(502, f"The model server at {host}:{port} is not answering "
                                         f"({error}).")
        self.set_status(response.code, response.reason)
        self.set_header("Content-Type",
                        response.headers.get("Content-Type", "application/json"))
        self.finish(response.body)

    get = post = _forward


def start_web_proxy(port, backend, model_name, config=None, host="127.0.0.1", limits=None):
    """Serves the page on `port` and forwards `/v1/...` to the REST API at `backend`.

    Args:
        port: the port to listen on (0 picks a free one).
        backend: (host, port) of the model server's REST API.
        model_name: the name the page asks the API for.
        config: the export's `export_config.json` as a dict.
        host: the interface to listen on.
        limits: `http_service.HTTPLimits` (timeouts, connections, body size).

    Returns:
        (HTTPService, port); `stop()` stops it.
    """
    forwarding = type("ForwardingHandler", (ForwardingHandler,), {"backend": tuple(backend)})
    page = type("PageHandler", (PageHandler,), {"model_name": model_name,
                                                 "config": config or {}})
    service = HTTPService([(FORWARDED_PREFIX + ".*", forwarding), (r".*", page)], port, host,
                          limits, name="web-proxy")
    return service, service.port
