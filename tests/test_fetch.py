"""Image fetching over real HTTP on 127.0.0.1: retries, limits, content types, local paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import load_settings
from indexer.fetch import FetchError, ImageFetcher
from tests.fakes.http_server import Reply, scripted_server

JPEG = b"\xff\xd8\xff\xe0" + b"x" * 100


def settings(**overrides: object):
    return load_settings(fetch_retries=2, fetch_timeout=2.0, **overrides)


async def test_download_ok(tmp_path: Path) -> None:
    with scripted_server() as server:
        url = server.route("/a.jpg", Reply(200, JPEG))
        async with ImageFetcher(settings()) as fetcher:
            assert await fetcher.fetch(url, tmp_path) == JPEG


async def test_retries_5xx_then_succeeds(tmp_path: Path) -> None:
    with scripted_server() as server:
        url = server.route("/flaky.jpg", Reply(503, b"busy", "text/plain"), Reply(503, b"busy", "text/plain"), Reply(200, JPEG))
        async with ImageFetcher(settings()) as fetcher:
            assert await fetcher.fetch(url, tmp_path) == JPEG
        assert server.hits["/flaky.jpg"] == 3


async def test_429_honours_retry_after(tmp_path: Path) -> None:
    with scripted_server() as server:
        url = server.route("/slow-down.jpg", Reply(429, b"", "text/plain", {"Retry-After": "1"}), Reply(200, JPEG))
        async with ImageFetcher(settings()) as fetcher:
            assert await fetcher.fetch(url, tmp_path) == JPEG
        assert server.hits["/slow-down.jpg"] == 2


async def test_404_is_not_retried(tmp_path: Path) -> None:
    with scripted_server() as server:
        async with ImageFetcher(settings()) as fetcher:
            with pytest.raises(FetchError, match="HTTP 404"):
                await fetcher.fetch(server.url("/missing.jpg"), tmp_path)
        assert server.hits["/missing.jpg"] == 1


async def test_gives_up_after_retries(tmp_path: Path) -> None:
    with scripted_server() as server:
        url = server.route("/down.jpg", Reply(500, b"", "text/plain"))
        async with ImageFetcher(settings()) as fetcher:
            with pytest.raises(FetchError, match="HTTP 500 after 3 attempts"):
                await fetcher.fetch(url, tmp_path)


async def test_html_is_not_an_image(tmp_path: Path) -> None:
    with scripted_server() as server:
        url = server.route("/page", Reply(200, b"<html></html>", "text/html; charset=utf-8"))
        async with ImageFetcher(settings()) as fetcher:
            with pytest.raises(FetchError, match="not an image \\(content-type text/html\\)"):
                await fetcher.fetch(url, tmp_path)


async def test_size_limit(tmp_path: Path) -> None:
    with scripted_server() as server:
        url = server.route("/big.jpg", Reply(200, JPEG * 200))
        async with ImageFetcher(settings(max_image_bytes=1000)) as fetcher:
            with pytest.raises(FetchError, match="larger than"):
                await fetcher.fetch(url, tmp_path)


async def test_timeout(tmp_path: Path) -> None:
    with scripted_server() as server:
        url = server.route("/hang.jpg", Reply(200, JPEG, delay_s=1.5))
        async with ImageFetcher(load_settings(fetch_retries=0, fetch_timeout=0.3)) as fetcher:
            with pytest.raises(FetchError, match="timed out after 1 attempt"):
                await fetcher.fetch(url, tmp_path)


async def test_unreachable_host(tmp_path: Path) -> None:
    with scripted_server() as server:
        closed = server.base
    async with ImageFetcher(load_settings(fetch_retries=0)) as fetcher:
        with pytest.raises(FetchError, match="connection failed"):
            await fetcher.fetch(closed + "/x.jpg", tmp_path)


async def test_local_paths_and_refused_schemes(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(JPEG)
    async with ImageFetcher(settings()) as fetcher:
        assert await fetcher.fetch("a.jpg", tmp_path) == JPEG
        with pytest.raises(FetchError, match="file not found"):
            await fetcher.fetch("nope.jpg", tmp_path)
        with pytest.raises(FetchError, match="unsupported image location"):
            await fetcher.fetch("file:///etc/passwd", tmp_path)
        with pytest.raises(FetchError, match="unsupported image location"):
            await fetcher.fetch("ftp://example.test/a.jpg", tmp_path)
