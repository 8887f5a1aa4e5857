"""A real HTTP server on 127.0.0.1 serving scripted responses: files, status codes, delays.

Each path gets a list of responses; the n-th request to that path gets the n-th response
(the last one repeats), so "503 twice, then the image" is one line in a test.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Reply:
    """One scripted response."""

    status: int = 200
    body: bytes = b""
    content_type: str = "image/jpeg"
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


class ScriptedServer:
    """Routes and a log of requests; `url(path)` gives the full URL of a route."""

    def __init__(self, host: str, port: int) -> None:
        self.base = f"http://{host}:{port}"
        self.routes: dict[str, list[Reply]] = {}
        self.hits: dict[str, int] = {}
        self._lock = threading.Lock()

    def route(self, path: str, *replies: Reply) -> str:
        self.routes[path] = list(replies)
        return self.url(path)

    def url(self, path: str) -> str:
        return self.base + path

    def next_reply(self, path: str) -> Reply:
        with self._lock:
            n = self.hits.get(path, 0)
            self.hits[path] = n + 1
        replies = self.routes.get(path)
        if not replies:
            return Reply(404, b"not found", "text/plain")
        return replies[min(n, len(replies) - 1)]


def _handler(server: ScriptedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            reply = server.next_reply(self.path)
            if reply.delay_s:
                time.sleep(reply.delay_s)
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(reply.body)))
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(reply.body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout, size limit): expected in tests

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    return Handler


@contextmanager
def scripted_server() -> Iterator[ScriptedServer]:
    """Start a threaded HTTP server on a free port of 127.0.0.1; stop it on exit."""
    script = ScriptedServer("127.0.0.1", 0)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(script))
    httpd.daemon_threads = True
    script.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield script
    finally:
        httpd.shutdown()
        httpd.server_close()
