"""A shop's web server on 127.0.0.1, as feed readers meet it: its feed documents and its product photos.

Speaks the parts of HTTP a feed sync relies on: a strong ETag and Last-Modified on every
document, `If-None-Match` / `If-Modified-Since` answered with 304, gzip when the client accepts
it (`gzip=True`), paged JSON (`?page=N`: Shopify's products.json, WooCommerce's Store API, with
`X-WP-TotalPages`), scripted failures (a status, a body cut short) and a delay per photo. Every
request is counted per path, so a test can say "one request to the feed, none to the photos".
"""

from __future__ import annotations

import gzip as gzip_module
import hashlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class Document:
    """One thing the shop serves at a path: its bytes and how."""

    body: bytes
    content_type: str = "application/xml"
    status: int = 200
    gzip: bool = False  # Content-Encoding: gzip when the client accepts it
    truncate_at: int | None = None  # announce the whole length, close after this many bytes
    delay_s: float = 0.0
    modified: float = 0.0
    total_pages: int | None = None  # X-WP-TotalPages


class FakeShop:
    """Paths -> documents (`page` adds `?page=N` variants); hit counts per path."""

    def __init__(self) -> None:
        self.base = ""
        self.documents: dict[str, Document] = {}
        self.pages: dict[str, list[Document]] = {}
        self.hits: dict[str, int] = {}
        self.not_modified = 0
        self._lock = threading.Lock()

    def url(self, path: str) -> str:
        return self.base + path

    def serve(self, path: str, body: bytes, content_type: str = "application/xml", **options: object) -> str:
        """Serve `body` at `path` (replacing what was there: a new ETag); returns its URL."""
        self.documents[path] = Document(body, content_type, modified=time.time(), **options)  # type: ignore[arg-type]
        return self.url(path)

    def serve_pages(self, path: str, pages: list[bytes], *, total_header: bool = False) -> str:
        """Serve JSON pages at `path?page=1..n`; any later page is `[]`-like empty (the caller passes it last)."""
        total = len(pages) if total_header else None
        self.pages[path] = [Document(p, "application/json", total_pages=total) for p in pages]
        return self.url(path)

    def hits_of(self, prefix: str) -> int:
        """Requests to paths starting with `prefix`."""
        with self._lock:
            return sum(n for path, n in self.hits.items() if path.startswith(prefix))

    def _count(self, path: str) -> None:
        with self._lock:
            self.hits[path] = self.hits.get(path, 0) + 1

    def find(self, raw_path: str) -> Document | None:
        parts = urlsplit(raw_path)
        if parts.path in self.pages:
            number = int(parse_qs(parts.query).get("page", ["1"])[0])
            pages = self.pages[parts.path]
            return pages[min(number, len(pages)) - 1]
        return self.documents.get(parts.path)


def _etag(document: Document) -> str:
    return '"' + hashlib.sha256(document.body).hexdigest()[:16] + '"'


def _handler(shop: FakeShop) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            shop._count(urlsplit(self.path).path)
            document = shop.find(self.path)
            try:
                if document is None:
                    self._plain(404, b"not found")
                    return
                self._answer(document)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _plain(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _answer(self, document: Document) -> None:
            if document.delay_s:
                time.sleep(document.delay_s)
            etag = _etag(document)
            if document.status == 200 and self.headers.get("If-None-Match") == etag:
                with shop._lock:
                    shop.not_modified += 1
                self.send_response(304)
                self.send_header("ETag", etag)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = document.body
            zipped = document.gzip and "gzip" in self.headers.get("Accept-Encoding", "")
            if zipped:
                body = gzip_module.compress(body)
            self.send_response(document.status)
            self.send_header("Content-Type", document.content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", formatdate(document.modified or time.time(), usegmt=True))
            if zipped:
                self.send_header("Content-Encoding", "gzip")
            if document.total_pages is not None:
                self.send_header("X-WP-TotalPages", str(document.total_pages))
            self.end_headers()
            if document.truncate_at is not None:
                self.wfile.write(body[: document.truncate_at])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@contextmanager
def fake_shop() -> Iterator[FakeShop]:
    """Start the shop on a free port of 127.0.0.1; stop it on exit."""
    shop = FakeShop()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(shop))
    httpd.daemon_threads = True
    shop.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield shop
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
