"""The dashboard's HTTP server: Python's http.server, no framework.

    GET  /              the page (page.py)
    GET  /api/info      the model and tokenizer: vocab_size, context_length, ... (sets the sliders' ranges)
    GET  /api/next?prompt=...&temperature=0.7&top_k=none&top_p=0.9&min_p=0.05&n_samples=3&max_new_tokens=40&seed=0
    POST /api/next      the same parameters as a JSON object
         -> 200 {"entropy_before": ..., "kept_mass": ..., "top": [...], "samples": [...], ...}  (report.py)
         -> 400 {"error": "top_p must be None or a number in (0, 1] ..."}   bad input, shown on the page
         -> 500 {"error": "internal error: ..."}                            a bug; the server keeps serving

Every malformed request is a 400 naming the field and what it may hold: a body that is not
JSON, nests too deeply, is not an object or is over MAX_BODY bytes (64 KiB; drained, not parsed),
an unknown field, a value of the wrong type, NaN, inf, 1e400, a 5000-digit integer
(parse_body keeps such a number as its length, report.BigNumber). Only a bug is a 500.
parse_body and answer are the handler's two steps as functions, for tests without a socket.

A ThreadingHTTPServer answers each request in its own thread; one lock lets a
single request use the model at a time (generate switches it to eval mode and
back, so two at once would race), and the page's debounce keeps the queue short.

    server = serve(model, tok, host="127.0.0.1", port=0)   # port 0: a free one; served from a daemon thread
    print(server.url); ...; server.stop()
"""

from __future__ import annotations

import json
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from tinyllm.viz.dashboard.page import PAGE
from tinyllm.viz.dashboard.report import BadRequest, info, next_token_report, parse_int

MAX_BODY = 1 << 16  # bytes of a POST body
DRAIN_BYTES, DRAIN_PAUSE = 1 << 22, 0.25  # how much of a refused body is read and dropped, and for how long


def parse_body(raw: bytes) -> dict:
    """A POST body -> its JSON object; BadRequest for anything else (b"" is {})."""
    try:
        params = json.loads(raw.decode("utf-8") or "{}", parse_int=parse_int)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadRequest(f"the request body is not JSON: {e}") from None
    except RecursionError:  # [[[[...: the decoder recurses once per level
        raise BadRequest("the request body nests too deeply; send a flat JSON object of fields") from None
    if not isinstance(params, dict):
        raise BadRequest(f"the request body must be a JSON object, got {type(params).__name__}")
    return params


def answer(model, tok, params_fn, lock=None) -> tuple[int, bytes]:
    """(status, JSON bytes) for the request whose parameters params_fn() returns (it may raise BadRequest):
    200 with the report, 400 with the message of a BadRequest, 500 (traceback to stderr) for anything else."""
    try:
        params = params_fn()
        if lock is None:
            status, body = 200, next_token_report(model, tok, params)
        else:
            with lock:
                status, body = 200, next_token_report(model, tok, params)
        # subtle: allow_nan=False; a NaN would be written as NaN, which JSON.parse in the browser rejects
        return status, json.dumps(body, allow_nan=False).encode()
    except BadRequest as e:
        status, body = 400, dict(error=str(e))
    except Exception as e:  # a bug must not take the server down; say what happened
        traceback.print_exc(file=sys.stderr)
        status, body = 500, dict(error=f"internal error: {type(e).__name__}: {e}")
    return status, json.dumps(body).encode()


class DashboardServer(ThreadingHTTPServer):
    daemon_threads = True  # a request in flight does not keep the process alive after Ctrl-C

    def __init__(self, address, model, tok, quiet: bool = True):
        self.model, self.tok, self.quiet = model, tok, quiet
        self.lock = threading.Lock()
        self.thread = None
        super().__init__(address, Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def stop(self) -> None:
        """Stop serving (when started by serve) and release the port."""
        if self.thread is not None:
            self.shutdown()
            self.thread.join()
            self.thread = None
        self.server_close()


class Handler(BaseHTTPRequestHandler):
    server: DashboardServer
    server_version = "tinyllm-dashboard"
    timeout = 30  # seconds a client may take to send its request (a body shorter than its Content-Length)

    def log_message(self, fmt, *args):  # the default prints every request to stderr
        if not self.server.quiet:
            super().log_message(fmt, *args)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj) -> None:
        # subtle: allow_nan=False; a NaN would be written as NaN, which JSON.parse in the browser rejects
        self._send(status, json.dumps(obj, allow_nan=False).encode(), "application/json; charset=utf-8")

    def _api(self, params_fn) -> None:
        status, body = answer(self.server.model, self.server.tok, params_fn, self.server.lock)
        try:
            self._send(status, body, "application/json; charset=utf-8")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the page gave up on this answer (a newer request replaced it): nothing to do

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path in ("/", "/index.html"):
            self._send(200, PAGE.encode(), "text/html; charset=utf-8")
        elif url.path == "/api/info":
            self._json(200, info(self.server.model, self.server.tok))
        elif url.path == "/api/next":
            # keep_blank_values: "prompt=" must reach the check that says the prompt is empty
            self._api(lambda: {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()})
        else:
            self._json(404, dict(error=f"no page {url.path}; try / or /api/next"))

    def do_POST(self):
        if urlsplit(self.path).path != "/api/next":
            self._json(404, dict(error=f"no endpoint {self.path}; POST to /api/next"))
            return
        self._api(self._read_json)

    def _refuse_unread_body(self, message: str) -> BadRequest:
        """The body will not be read: drop the connection after this answer, but first discard what the
        client is still sending (at most DRAIN_BYTES, until it pauses for DRAIN_PAUSE seconds). Closing a
        socket with unread input sends a reset, and the client would lose the 400 mid-send."""
        self.close_connection = True
        left, old = DRAIN_BYTES, self.connection.gettimeout()
        self.connection.settimeout(DRAIN_PAUSE)
        try:
            while left > 0 and (chunk := self.rfile.read1(min(left, 1 << 14))):
                left -= len(chunk)
        except OSError:  # the pause (TimeoutError) or the client hung up: either way, done
            pass
        finally:
            self.connection.settimeout(old)
        return BadRequest(message)

    def _read_json(self) -> dict:
        if self.headers.get("Transfer-Encoding"):
            raise self._refuse_unread_body("send the request body with a Content-Length, not a Transfer-Encoding")
        try:
            n = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            raise BadRequest("Content-Length must be an integer") from None
        if not 0 <= n <= MAX_BODY:
            raise self._refuse_unread_body(f"the request body must be at most {MAX_BODY} bytes, got {n}")
        try:
            raw = self.rfile.read(n)
        except OSError:  # TimeoutError: fewer bytes than Content-Length said, and the client waits too
            self.close_connection = True
            raise BadRequest(f"the request body ended before its Content-Length of {n} bytes") from None
        return parse_body(raw)


def make_server(model, tok, host: str = "127.0.0.1", port: int = 0, quiet: bool = True) -> DashboardServer:
    """A bound, not yet serving DashboardServer (port 0: the system picks a free port)."""
    model.eval()
    return DashboardServer((host, port), model, tok, quiet=quiet)


def serve(model, tok, host: str = "127.0.0.1", port: int = 0, quiet: bool = True) -> DashboardServer:
    """Start serving in a daemon thread and return the server (server.url, server.stop())."""
    server = make_server(model, tok, host, port, quiet)
    server.thread = threading.Thread(target=server.serve_forever, name="tinyllm-dashboard", daemon=True)
    server.thread.start()
    return server
