"""What an anonymous client may send: each route's own body limit, and a body that must keep
coming. Real uvicorn on 127.0.0.1, raw sockets where a well-behaved client library would not
misbehave on purpose."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from tests.bots.test_api import WRITE, Api, png_bytes, run_api
from tests.conftest import copy_collection
from visearch.core.config import Settings


@pytest.fixture(scope="module")
def limits_catalog(tmp_path_factory: pytest.TempPathFactory, sample_collection: Settings) -> Settings:
    return copy_collection(sample_collection, tmp_path_factory.mktemp("limits-data"))


@pytest.fixture
async def tight(limits_catalog: Settings, offline_encoder: Any) -> Any:
    """The API with a one-second grace before a body must arrive at the minimum rate."""
    async with run_api(limits_catalog, offline_encoder, body_timeout=1.0) as running:
        yield running


async def read_response(reader: asyncio.StreamReader) -> bytes:
    """One HTTP response: its head and a body of its Content-Length (the connection may stay open)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0
    )
    return head + await reader.readexactly(length)


async def raw_request(api: Api, head: str, chunks: list[bytes], pause_s: float) -> tuple[bytes, float]:
    """Send `head` then each chunk `pause_s` apart; returns what the server answered and when."""
    host, port = api.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    started = time.perf_counter()
    try:
        writer.write(head.encode())
        await writer.drain()
        answer = asyncio.create_task(read_response(reader))
        for chunk in chunks:
            done, _ = await asyncio.wait({answer}, timeout=pause_s)
            if done:
                break
            writer.write(chunk)
            await writer.drain()
        data = await asyncio.wait_for(answer, timeout=10)
        return data, time.perf_counter() - started
    finally:
        writer.close()


async def test_public_json_search_takes_a_few_kb_not_the_upload_limit(tight: Api) -> None:
    padding = {"text": "milk", "filters": {"categories": ["x" * 100] * 10}, "pad": "y" * 70_000}
    refused = await tight.http.post(
        "/api/v1/search", content=json.dumps(padding), headers={"Content-Type": "application/json"}
    )
    assert refused.status_code == 413
    assert refused.json()["kind"] == "too_large" and "65536 bytes" in refused.json()["error"]
    assert "multipart form" in refused.json()["error"]
    # a photo search may still send a real photo, and a keyed write its uploads
    photo = png_bytes((640, 480))
    found = await tight.http.post("/api/v1/search", files={"image": ("q.png", photo, "image/png")})
    assert found.status_code == 200
    too_big_photo = await tight.http.post(
        "/api/v1/search", files={"image": ("q.png", b"x" * (21 * 1024 * 1024), "image/png")}
    )
    assert too_big_photo.status_code == 413
    product = {"id": "big-ok", "title": "Big but keyed", "description": "d" * 9_000}
    written = await tight.http.post(
        "/api/v1/products",
        headers=WRITE,
        data={"product": json.dumps(product)},
        files={"images": ("p.png", photo, "image/png")},
    )
    assert written.status_code == 200, written.text


async def test_a_body_that_trickles_in_is_cut_off_with_408(tight: Api) -> None:
    for path in ("/api/v1/search", "/webhooks/viber", "/api/v1/products"):
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 2000\r\n\r\n"
        )
        answer, seconds = await raw_request(tight, head, [b"{"] + [b" "] * 40, pause_s=0.25)
        status = answer.split(b"\r\n", 1)[0]
        if path == "/api/v1/products":  # keyless: refused before its body is read
            assert status.endswith(b"401 Unauthorized"), answer[:200]
            continue
        if path == "/webhooks/viber":  # no Viber configured here: the route does not exist, said before any body
            assert b" 404 " in status, answer[:200]
            assert seconds < 1, seconds  # not after waiting for the drips
            continue
        assert b" 408 " in status, answer[:300]
        assert b'"kind": "timeout"' in answer and b"connection: close" in answer.lower()
        assert seconds < 5  # cut near the one-second grace, not after 40 drips

    # a client that sends steadily, even slowly at first, is served
    body = json.dumps({"text": "banana", "limit": 3}).encode()
    head = (
        f"POST /api/v1/search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    answer, _ = await raw_request(tight, head, [body[:5], body[5:]], pause_s=0.3)
    assert answer.split(b"\r\n", 1)[0].endswith(b"200 OK"), answer[:300]
