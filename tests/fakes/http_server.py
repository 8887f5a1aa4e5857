"""A real HTTP server on 127.0.0.1 serving scripted responses: files, status codes, delays, drips.

Each path gets a list of replies; the n-th request to that path gets the n-th reply (the last
one repeats), so "503 twice, then the image" is one line in a test. Unknown paths get 404.
The server counts requests per path and the most requests it ever had in flight at once.

Use `with scripted_server() as server:` or the `http_server` fixture (import it into a test module).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass(frozen=True)
class Reply:
    """One scripted response.

    `delay_s` waits before the headers; `chunk_delay_s` sends the body `chunk_size` bytes at a
    time with that pause between chunks; `truncate_at` announces the full Content-Length but
    closes the connection after that many body bytes.
    """

    status: int = 200
    body: bytes = b""
    content_type: str | None = "image/jpeg"
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    chunk_size: int = 64 * 1024
    chunk_delay_s: float = 0.0
    truncate_at: int | None = None


class ScriptedServer:
    """Routes, per-path hit counts and peak concurrency; `url(path)` gives the full URL of a route."""

    def __init__(self, base: str = "") -> None:
        self.base = base
        self.routes: dict[str, list[Reply]] = {}
        self.hits: dict[str, int] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()

    def route(self, path: str, *replies: Reply) -> str:
        """Script `path`; returns its URL."""
        if not path.startswith("/"):
            raise ValueError("route paths start with '/'")
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

    def enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1


def _handler(server: ScriptedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            server.enter()
            self._counted = True
            try:
                self._reply(server.next_reply(self.path))
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout, size limit): expected in tests
            finally:
                self._done()

        def _done(self) -> None:
            if self._counted:
                self._counted = False
                server.leave()

        def _reply(self, reply: Reply) -> None:
            if reply.delay_s:
                time.sleep(reply.delay_s)
            # no longer "in flight" once the answer starts: the client may send its next request
            # the moment it has read this one, before this thread gets to run again
            self._done()
            self.send_response(reply.status)
            if reply.content_type is not None:
                self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            for key, value in reply.headers.items():
                self.send_header(key, value)
            self.end_headers()
            body = reply.body if reply.truncate_at is None else reply.body[: reply.truncate_at]
            for start in range(0, len(body), reply.chunk_size):
                if start and reply.chunk_delay_s:
                    time.sleep(reply.chunk_delay_s)
                self.wfile.write(body[start : start + reply.chunk_size])
                self.wfile.flush()
            if reply.truncate_at is not None:
                self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@contextmanager
def scripted_server() -> Iterator[ScriptedServer]:
    """Start a threaded HTTP server on a free port of 127.0.0.1; stop it on exit."""
    script = ScriptedServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(script))
    httpd.daemon_threads = True
    script.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="scripted-http", daemon=True
    )
    thread.start()
    try:
        yield script
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def http_server() -> Iterator[ScriptedServer]:
    """A fresh scripted server per test."""
    with scripted_server() as server:
        yield server
