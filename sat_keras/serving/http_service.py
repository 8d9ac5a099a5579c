"""The HTTP server under the REST API and the caption page: tornado, on its own thread.

`http.server` reads what a client declares: a body until the client closes
when `Content-Length` is -1, nothing at all from a stalled client (one
thread held per connection, forever), chunked bytes as a second request.
Tornado's `HTTPServer` parses `Content-Length` and chunk sizes strictly,
bounds the header and body sizes, and closes a connection whose headers do
not arrive within `idle_connection_timeout` (the first request's and every
kept-alive one's) or whose body does not arrive within `body_timeout`.
`HTTPService` configures those from `HTTPLimits`, and adds what tornado
leaves to its users:

- a cap on open connections: one over it is answered 503 and closed;
- a JSON answer, in TF Serving's `{"error": "..."}` shape, to a request
  whose body it will not read: a `Content-Length` that is not one
  non-negative integer (400) or is over the body limit (413), or a
  `Transfer-Encoding` (411: send a length; chunked bodies are not taken).
  Tornado would refuse most of these too, but with a bare 400 and no
  message. The connection is then detached from tornado, answered, and
  closed, so no byte after the headers is read as a request;
- one log line per refused request (`LOGGER`), never a traceback;
- a drain on `stop(grace)`: no new connections, the requests in flight get
  up to `grace` seconds to finish and be sent, then every connection is
  closed.
"""

import asyncio
import dataclasses
import json
import logging
import re
import socket
import threading
import time

import tornado.httpserver
import tornado.httputil
import tornado.iostream
import tornado.netutil
import tornado.web

LOGGER = logging.getLogger("sat_keras.serving")
SERVER_NAME = "sat-keras"  # the Server header: no library or Python version
MAX_HEADER_BYTES = 64 * 1024
LINGER_SECONDS = 2.0
_DIGITS = re.compile(r"[0-9]{1,19}")


@dataclasses.dataclass(frozen=True)
class HTTPLimits:
    """What one HTTP server spends on its clients.

    Args:
        timeout: seconds to wait for a request's headers (on a new or a
            kept-alive connection), and again for its body; a connection
            that sends nothing for that long is closed. 30, as TF Serving's
            `--rest_api_timeout_in_ms`.
        max_connections: open connections at once; one more is answered
            503 and closed.
        max_body_bytes: the largest request body (64 MB, as Triton's
            `--http-max-input-size`); a larger one is answered 413 unread.
    """

    timeout: float = 30.0
    max_connections: int = 64
    max_body_bytes: int = 64 * 1024 * 1024

    def __post_init__(self):
        if not (self.timeout > 0 and self.max_connections > 0 and self.max_body_bytes > 0):
            raise ValueError(f"HTTP limits must be positive. Received: {self}")


def error_body(message):
    return json.dumps({"error": message}).encode()


def _framing_problem(headers, max_body_bytes):
    """(status, message) when the body's framing is refused before reading it, else None."""
    if "Transfer-Encoding" in headers:
        return 411, (f"Transfer-Encoding {headers['Transfer-Encoding']!r} is not accepted: "
                     "send the body with a Content-Length")
    lengths = headers.get_list("Content-Length")
    if not lengths:
        return None
    if len(lengths) > 1 or not _DIGITS.fullmatch(lengths[0]):
        return 400, (f"Content-Length must be one non-negative integer; received "
                     f"{', '.join(lengths)!r}")
    if int(lengths[0]) > max_body_bytes:
        return 413, (f"The body is {int(lengths[0])} bytes, over the limit of "
                     f"{max_body_bytes} bytes")
    return None


class _FramingCheck(tornado.httputil.HTTPMessageDelegate):
    """Answers a request whose body framing is refused; passes the others on."""

    def __init__(self, delegate, connection, max_body_bytes, remote):
        self.delegate = delegate
        self.connection = connection
        self.max_body_bytes = max_body_bytes
        self.remote = remote
        self.refused = False

    def headers_received(self, start_line, headers):
        problem = _framing_problem(headers, self.max_body_bytes)
        if problem is None:
            return self.delegate.headers_received(start_line, headers)
        self.refused = True
        status, message = problem
        LOGGER.warning("HTTP %d %s %s from %s: %s", status, start_line.method,
                       start_line.path, self.remote, message)
        # Tornado reads nothing more from a detached stream: no byte the
        # client sends after these headers is taken for a request.
        stream = self.connection.detach()
        asyncio.ensure_future(answer_and_close(stream, status, message))
        return None

    def data_received(self, chunk):
        return None if self.refused else self.delegate.data_received(chunk)

    def finish(self):
        if not self.refused:
            self.delegate.finish()

    def on_connection_close(self):
        if not self.refused:
            self.delegate.on_connection_close()


async def answer_and_close(stream, status, message):
    """Writes a JSON error and closes `stream`, reading what the client still sends for up
    to `LINGER_SECONDS` first: a socket closed with unread bytes resets the connection,
    and the reset can reach the client before it has read the answer."""
    body = error_body(message)
    head = (f"HTTP/1.1 {status} {tornado.httputil.responses.get(status, 'Error')}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\nServer: {SERVER_NAME}\r\n\r\n")
    try:
        await stream.write(head.encode() + body)
        stream.socket.shutdown(socket.SHUT_WR)  # the client reads the answer, then EOF
        deadline = time.monotonic() + LINGER_SECONDS
        while time.monotonic() < deadline:
            await asyncio.wait_for(stream.read_bytes(65536, partial=True),
                                   deadline - time.monotonic())
    except (OSError, asyncio.TimeoutError, tornado.iostream.StreamClosedError):
        pass  # the client has gone, or lingered long enough
    finally:
        stream.close()


class _GuardedServer(tornado.httpserver.HTTPServer):
    """Tornado's HTTPServer with a connection cap and `_FramingCheck` before every handler."""

    limits = None  # HTTPLimits, set by HTTPService
    open_connections = 0

    def handle_stream(self, stream, address):
        if self.open_connections >= self.limits.max_connections:
            asyncio.ensure_future(self._refuse(stream, address))
            return
        self.open_connections += 1
        super().handle_stream(stream, address)

    def on_close(self, server_conn):
        self.open_connections -= 1
        super().on_close(server_conn)

    async def _refuse(self, stream, address):
        message = (f"The server is busy: {self.limits.max_connections} connections are open; "
                   "try again later")
        LOGGER.warning("HTTP 503 from %s: %s", address[0], message)
        await answer_and_close(stream, 503, message)

    def start_request(self, server_conn, request_conn):
        remote = getattr(request_conn.context, "remote_ip", "?")
        return _FramingCheck(super().start_request(server_conn, request_conn), request_conn,
                             self.limits.max_body_bytes, remote)


class JSONHandler(tornado.web.RequestHandler):
    """A handler whose every error is TF Serving's `{"error": ...}` and one log line."""

    service = None  # the HTTPService, set by it: counts the requests in flight

    def set_default_headers(self):
        self.set_header("Server", SERVER_NAME)

    def compute_etag(self):
        return None  # a hash of every answer buys nothing here

    def prepare(self):
        self._counted = True
        self.service.requests_in_flight += 1
        if self.service.draining:
            self.set_header("Connection", "close")

    def _uncount(self):
        if getattr(self, "_counted", False):
            self._counted = False
            self.service.requests_in_flight -= 1

    def finish(self, chunk=None):
        """Counts the request as in flight until its answer is sent, not only written."""
        sent = super().finish(chunk)
        sent.add_done_callback(lambda _: self._uncount())
        return sent

    def on_connection_close(self):
        self._uncount()

    def reply(self, status, payload):
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(payload).encode())

    def reply_error(self, status, message):
        LOGGER.warning("HTTP %d %s %s from %s: %s", status, self.request.method,
                       self.request.path, self.request.remote_ip, message)
        self.reply(status, {"error": message})

    def write_error(self, status_code, **kwargs):
        """Tornado's own refusals (405, a handler's exception) as JSON."""
        exc_info = kwargs.get("exc_info")
        message = (f"{exc_info[0].__name__}: {exc_info[1]}"
                   if exc_info and status_code >= 500 else self._reason)
        self.set_header("Content-Type", "application/json")
        self.finish(error_body(message))

    def log_exception(self, typ, value, tb):
        """One line, never a traceback (`write_error` answers the client)."""
        status = value.status_code if isinstance(value, tornado.web.HTTPError) else 500
        LOGGER.warning("HTTP %d %s %s from %s: %s: %s", status, self.request.method,
                       self.request.path, self.request.remote_ip, typ.__name__, value)


def _log_request(handler):
    """Tornado's access log is quiet: refusals are logged once, where they are made."""


class HTTPService:
    """Serves a tornado `Application` on host:port from a thread with its own event loop.

    Args:
        handlers: tornado URL specs; each handler class should derive from
            `JSONHandler`.
        port: the port (0 picks a free one).
        host: the interface ("127.0.0.1", "0.0.0.0", ...).
        limits: `HTTPLimits`.
        name: the thread's name.

    The socket is bound before the constructor returns (an `OSError` if the
    port is taken); `port` and `server_address` give where it listens.
    """

    def __init__(self, handlers, port, host="127.0.0.1", limits=None, name="http"):
        self.limits = limits or HTTPLimits()
        self.requests_in_flight = 0
        self.draining = False
        sockets = tornado.netutil.bind_sockets(port, address=host)
        self.server_address = sockets[0].getsockname()[:2]
        self.port = self.server_address[1]
        handlers = [(pattern, type(handler.__name__, (handler,), {"service": self}), *rest)
                    for pattern, handler, *rest in handlers]
        application = tornado.web.Application(handlers, log_function=_log_request)
        self._loop = None
        self._stopped = None
        started = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, daemon=True, name=name,
                                        args=(self._serve(application, sockets, started),))
        self._thread.start()
        started.wait()

    async def _serve(self, application, sockets, started):
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        self._server = _GuardedServer(
            application, idle_connection_timeout=self.limits.timeout,
            body_timeout=self.limits.timeout, max_body_size=self.limits.max_body_bytes,
            max_header_size=MAX_HEADER_BYTES)
        self._server.limits = self.limits
        self._server.add_sockets(sockets)
        started.set()
        await self._stopped.wait()

    async def _drain(self, grace):
        self._server.stop()  # no new connections
        self.draining = True
        deadline = time.monotonic() + grace
        while self.requests_in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await self._server.close_all_connections()
        self._stopped.set()

    def stop(self, grace=0.0):
        """Stops accepting, gives the requests in flight `grace` seconds, closes the rest."""
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._drain(grace), self._loop).result(grace + 10)
        self._thread.join(10)
