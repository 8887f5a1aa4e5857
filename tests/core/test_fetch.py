"""Image fetching over real HTTP on 127.0.0.1: retries, limits, content types, local paths."""

from __future__ import annotations

import asyncio
import gzip
import time
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import pytest

from tests.fakes.http_server import Reply, ScriptedServer, http_server
from visearch.core.config import Settings, load_settings
from visearch.core.fetch import FetchError, ImageFetcher, human_size, retry_after_s

JPEG = b"\xff\xd8\xff\xe0" + b"x" * 100
FAST = 0.02  # back-off base for tests: retries without the production half-second waits


def settings(**overrides: object) -> Settings:
    return load_settings(**{"fetch_retries": 2, "fetch_timeout": 2.0, **overrides})


def fetcher(**overrides: object) -> ImageFetcher:
    return ImageFetcher(settings(**overrides), backoff_s=FAST)


async def test_download_ok(tmp_path: Path, http_server: ScriptedServer) -> None:
    url = http_server.route("/a.jpg", Reply(200, JPEG))
    async with fetcher() as f:
        assert await f.fetch(url, tmp_path) == JPEG


async def test_retries_5xx_then_succeeds(tmp_path: Path, http_server: ScriptedServer) -> None:
    busy = Reply(503, b"busy", "text/plain")
    url = http_server.route("/flaky.jpg", busy, busy, Reply(200, JPEG))
    async with fetcher() as f:
        assert await f.fetch(url, tmp_path) == JPEG
    assert http_server.hits["/flaky.jpg"] == 3


async def test_429_honours_retry_after(tmp_path: Path, http_server: ScriptedServer) -> None:
    url = http_server.route("/slow-down.jpg", Reply(429, b"", "text/plain", {"Retry-After": "1"}), Reply(200, JPEG))
    async with fetcher() as f:
        started = time.monotonic()
        assert await f.fetch(url, tmp_path) == JPEG
        waited = time.monotonic() - started
    assert http_server.hits["/slow-down.jpg"] == 2
    assert waited >= 0.9  # the header's second, not the 20 ms back-off


def test_retry_after_forms() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_s("2") == 2.0
    assert retry_after_s(format_datetime(now + timedelta(seconds=5), usegmt=True), now=now) == 5.0
    assert retry_after_s(format_datetime(now - timedelta(seconds=5), usegmt=True), now=now) == 0.0
    assert retry_after_s("86400") == 30.0  # capped
    assert retry_after_s("soon") == retry_after_s(None) == retry_after_s("-3") == 0.0


@pytest.mark.parametrize("status", [404, 403, 410, 400])
async def test_client_errors_are_not_retried(tmp_path: Path, http_server: ScriptedServer, status: int) -> None:
    url = http_server.route("/x.jpg", Reply(status, b"no", "text/plain"))
    async with fetcher() as f:
        with pytest.raises(FetchError, match=f"^HTTP {status}$"):
            await f.fetch(url, tmp_path)
    assert http_server.hits["/x.jpg"] == 1


async def test_gives_up_after_retries(tmp_path: Path, http_server: ScriptedServer) -> None:
    url = http_server.route("/down.jpg", Reply(500, b"", "text/plain"))
    async with fetcher() as f:
        with pytest.raises(FetchError, match=r"^HTTP 500 after 3 attempts$"):
            await f.fetch(url, tmp_path)
    assert http_server.hits["/down.jpg"] == 3


async def test_timeout_is_retried_then_reported(tmp_path: Path, http_server: ScriptedServer) -> None:
    url = http_server.route("/hang.jpg", Reply(200, JPEG, delay_s=1.0))
    async with fetcher(fetch_timeout=0.2) as f:
        with pytest.raises(FetchError, match=r"^timed out after 3 attempts$"):
            await f.fetch(url, tmp_path)
    assert http_server.hits["/hang.jpg"] == 3


async def test_a_server_dripping_bytes_cannot_hold_a_slot_forever(tmp_path: Path, http_server: ScriptedServer) -> None:
    """Each chunk arrives within the read timeout; the per-attempt deadline still ends it."""
    url = http_server.route("/drip.jpg", Reply(200, JPEG * 10, chunk_size=20, chunk_delay_s=0.1))
    async with ImageFetcher(settings(fetch_retries=0, fetch_timeout=1.0), attempt_deadline_s=0.5) as f:
        started = time.monotonic()
        with pytest.raises(FetchError, match=r"^timed out after 1 attempt$"):
            await f.fetch(url, tmp_path)
        assert time.monotonic() - started < 1.5


async def test_connection_dropped_mid_body_is_retried(tmp_path: Path, http_server: ScriptedServer) -> None:
    url = http_server.route("/cut.jpg", Reply(200, JPEG, truncate_at=10), Reply(200, JPEG))
    async with fetcher() as f:
        assert await f.fetch(url, tmp_path) == JPEG
    assert http_server.hits["/cut.jpg"] == 2


@pytest.mark.parametrize(
    ("content_type", "shown"),
    [
        ("text/html; charset=utf-8", "text/html"),
        ("application/octet-stream", "application/octet-stream"),
        (None, "missing"),
    ],
)
async def test_non_image_content_type_is_refused(
    tmp_path: Path, http_server: ScriptedServer, content_type: str | None, shown: str
) -> None:
    url = http_server.route("/page", Reply(200, b"<html></html>", content_type))
    async with fetcher() as f:
        with pytest.raises(FetchError, match=f"^not an image \\(content-type {shown}\\)$"):
            await f.fetch(url, tmp_path)
    assert http_server.hits["/page"] == 1


async def test_size_limit_from_content_length(tmp_path: Path, http_server: ScriptedServer) -> None:
    url = http_server.route("/big.jpg", Reply(200, JPEG * 200))
    async with fetcher(max_image_bytes=1000) as f:
        with pytest.raises(FetchError, match=r"^larger than 1000 bytes \(20 KB\)$"):
            await f.fetch(url, tmp_path)


async def test_size_limit_while_streaming_a_compressed_body(tmp_path: Path, http_server: ScriptedServer) -> None:
    """The limit applies to the decoded bytes: a tiny gzip body cannot smuggle in 1 MB."""
    body = gzip.compress(b"\0" * 1_000_000)
    url = http_server.route("/bomb.jpg", Reply(200, body, headers={"Content-Encoding": "gzip"}))
    async with fetcher(max_image_bytes=100_000) as f:
        with pytest.raises(FetchError, match=r"^larger than 98 KB$"):
            await f.fetch(url, tmp_path)


def test_sizes_read_like_the_spec() -> None:
    assert human_size(20 * 1024 * 1024) == "20 MB"
    assert human_size(1536) == "1.5 KB"
    assert human_size(999) == "999 bytes"


async def test_redirects_are_followed_but_not_forever(tmp_path: Path, http_server: ScriptedServer) -> None:
    target = http_server.route("/real.jpg", Reply(200, JPEG))
    moved = http_server.route("/moved.jpg", Reply(302, b"", "text/plain", {"Location": target}))
    loop = http_server.route("/loop.jpg", Reply(302, b"", "text/plain", {"Location": "/loop.jpg"}))
    ftp = http_server.route("/ftp.jpg", Reply(302, b"", "text/plain", {"Location": "ftp://example.test/a.jpg"}))
    async with fetcher() as f:
        assert await f.fetch(moved, tmp_path) == JPEG
        with pytest.raises(FetchError, match=r"^more than 5 redirects$"):
            await f.fetch(loop, tmp_path)
        with pytest.raises(FetchError, match="unsupported URL scheme"):
            await f.fetch(ftp, tmp_path)


async def test_unreachable_host(tmp_path: Path, http_server: ScriptedServer) -> None:
    async with ImageFetcher(settings(fetch_retries=1), backoff_s=FAST) as f:
        with pytest.raises(FetchError, match=r"^connection failed \(ConnectError\) after 2 attempts$"):
            await f.fetch("http://127.0.0.1:9/x.jpg", tmp_path)  # port 9 (discard): nothing listens


async def test_concurrency_limit(tmp_path: Path, http_server: ScriptedServer) -> None:
    urls = [http_server.route(f"/{i}.jpg", Reply(200, JPEG, delay_s=0.2)) for i in range(6)]
    async with fetcher(fetch_concurrency=2) as f:
        results = await asyncio.gather(*(f.fetch(url, tmp_path) for url in urls))
    assert results == [JPEG] * 6
    assert http_server.max_in_flight == 2


async def test_waiting_for_a_retry_does_not_hold_a_download_slot(tmp_path: Path, http_server: ScriptedServer) -> None:
    slow = http_server.route("/later.jpg", Reply(429, b"", "text/plain", {"Retry-After": "1"}), Reply(200, JPEG))
    quick = http_server.route("/now.jpg", Reply(200, JPEG))
    async with fetcher(fetch_concurrency=1) as f:
        first = asyncio.create_task(f.fetch(slow, tmp_path))
        while not http_server.hits.get("/later.jpg"):
            await asyncio.sleep(0.01)
        started = time.monotonic()
        assert await f.fetch(quick, tmp_path) == JPEG
        assert time.monotonic() - started < 0.5  # not stuck behind the 1 s Retry-After
        assert await first == JPEG


async def test_local_paths(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(JPEG)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b:c.jpg").write_bytes(JPEG)  # a colon in a file name is not a URL scheme
    (tmp_path / "big.jpg").write_bytes(JPEG * 20)
    (tmp_path / "empty.jpg").write_bytes(b"")
    async with fetcher(max_image_bytes=1000) as f:
        assert await f.fetch("a.jpg", tmp_path) == JPEG
        assert await f.fetch("sub/b:c.jpg", tmp_path) == JPEG
        assert await f.fetch(str(tmp_path / "a.jpg"), Path("/nonexistent")) == JPEG  # absolute paths too
        assert await f.fetch("empty.jpg", tmp_path) == b""  # the decoder reports "empty file (0 bytes)"
        with pytest.raises(FetchError, match=r"^file not found: .*nope\.jpg$"):
            await f.fetch("nope.jpg", tmp_path)
        with pytest.raises(FetchError, match=r"^is a directory"):
            await f.fetch("sub", tmp_path)
        with pytest.raises(FetchError, match=r"^larger than 1000 bytes \(2.0 KB\)$"):
            await f.fetch("big.jpg", tmp_path)


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("file:///etc/passwd", "unsupported image location file:"),
        ("ftp://example.test/a.jpg", "unsupported image location ftp:"),
        ("data:image/png;base64,iVBORw0KGgo=", "unsupported image location data:"),
        ("//cdn.example.test/a.jpg", "protocol-relative URL"),
        ("   ", "empty image reference"),
    ],
)
async def test_refused_locations(tmp_path: Path, ref: str, message: str) -> None:
    async with fetcher() as f:
        with pytest.raises(FetchError, match=message):
            await f.fetch(ref, tmp_path)


async def test_fetch_needs_the_context_manager(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="async with"):
        await ImageFetcher(settings()).fetch("http://127.0.0.1:9/x.jpg", tmp_path)
