"""Issue 13, "exhaustion before authentication" and "500s and wrong answers": `visearch serve`
over real HTTP on 127.0.0.1 (uvicorn, the offline encoder, the embedded store, fake Viber,
WhatsApp and Telegram servers) against oversized, keyless, deep, non-finite and odd requests.

Limits are set low in the servers' options so every body stays a few KB; raw sockets are used
where the attack is a header (a huge Content-Length) or a body that never finishes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn

from tests.bots.test_api import KEYS, WRITE, png_bytes
from tests.bots.test_server import SAMPLE, TG_SECRET, Served, serve
from tests.conftest import copy_collection, free_port
from tests.fakes.messengers import viber_message, whatsapp_payload
from tests.serving import cli_env
from visearch.bots.server.app import create_app, open_photo, read_all
from visearch.bots.server.config import load_server_settings
from visearch.bots.telegram.config import load_telegram_settings
from visearch.core.catalog import RowError, product_from_record
from visearch.core.config import Settings
from visearch.core.domain import Query
from visearch.core.search import SearchService
from visearch.core.store.factory import open_store

WEBHOOK_LIMIT = 8 * 1024
API_LIMIT = 1024 * 1024
DEEP_API = "[" * 100_000 + "]" * 100_000  # 200 KB (600 KB url-encoded): under the API limit, far too deep
DEEP_SEARCH = "[" * 10_000 + "]" * 10_000  # 20 KB (60 KB url-encoded): under the public search's 64 KB
DEEP_WEBHOOK = "[" * 3_000 + "]" * 3_000  # 6 KB: under the webhook limit, deeper than json's recursion limit
NOWHERE = "http://127.0.0.1:9/a.jpg"  # a refused product never gets its photo fetched; nothing listens here anyway


@pytest.fixture(scope="module")
def hard_catalog(tmp_path_factory: pytest.TempPathFactory, bot_catalog: Settings) -> Settings:
    """A writable copy of the bot catalog (82 products) for this module's servers."""
    return copy_collection(bot_catalog, tmp_path_factory.mktemp("hardening-data"))


@pytest.fixture
async def hard(hard_catalog: Settings, offline_encoder) -> AsyncIterator[Served]:
    async for running in serve(
        hard_catalog, offline_encoder, api_keys=KEYS, webhook_max_body_bytes=WEBHOOK_LIMIT, api_max_body_bytes=API_LIMIT
    ):
        yield running


async def raw_http(
    url: str, head: str, body: bytes = b"", wait: float = 5.0
) -> tuple[int | None, dict[str, str], bytes]:
    """Send a request's head (and some body) over a socket and read the answer, without finishing
    the body: (status, headers, body); status None when no answer came within `wait` seconds."""
    where = urlsplit(url)
    reader, writer = await asyncio.open_connection(where.hostname, where.port)
    try:
        writer.write(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        await writer.drain()
        try:
            raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), wait)
        except (TimeoutError, asyncio.IncompleteReadError):
            return None, {}, b""
        lines = raw.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        content = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), wait)
        return int(lines[0].split()[1]), headers, content
    finally:
        writer.close()


def is_error(response: httpx.Response, status: int, kind: str, *says: str) -> None:
    """The one error shape, its status and kind, and words of its message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "field", "kind"} and body["kind"] == kind, body
    for words in says:
        assert words in body["error"], body


async def product_count(served: Served) -> int:
    return (await served.http.get("/api/v1/stats")).json()["products"]


# --- 5: every body is bounded, before any parsing or signature check -------------------------------


async def test_webhook_bodies_over_the_limit_get_413_and_nothing_is_processed(hard: Served) -> None:
    status, headers, body = await raw_http(
        hard.url, "POST /webhooks/viber HTTP/1.1\nHost: x\nContent-Length: 1000000000\n"
    )  # declared 1 GB, none sent
    assert status == 413 and headers.get("connection") == "close"
    assert json.loads(body) == {
        "error": f"the request body is larger than {WEBHOOK_LIMIT} bytes (VISEARCH_WEBHOOK_MAX_BODY_BYTES)",
        "field": None,
        "kind": "too_large",
    }

    async def unsigned_chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
        for _ in range(12):
            yield b"x" * 1024

    streamed = await hard.http.post("/webhooks/viber", content=unsigned_chunks())
    is_error(streamed, 413, "too_large", "VISEARCH_WEBHOOK_MAX_BODY_BYTES")
    big = viber_message("hard-viber-1", {"type": "text", "text": "apple " * 2000}, 3001)  # signed, 12 KB
    is_error(await hard.viber_post(big), 413, "too_large")
    big_wa = whatsapp_payload("4670000001", {"type": "text", "text": {"body": "apple " * 2000}})
    is_error(await hard.whatsapp_post(big_wa), 413, "too_large")
    tg = await hard.http.post(
        "/webhooks/telegram",
        content=b"{" + b" " * WEBHOOK_LIMIT + b"}",
        headers={"X-Telegram-Bot-Api-Secret-Token": TG_SECRET},
    )
    is_error(tg, 413, "too_large")
    small = viber_message("hard-viber-2", {"type": "text", "text": "green apple"}, 3002)  # normal traffic still works
    assert (await hard.viber_post(small)).status_code == 200
    assert (await hard.viber.wait_for_messages("hard-viber-2"))[0].body["type"] == "rich_media"
    small_wa = whatsapp_payload(
        "4670000002", {"id": "wamid.hard-probe", "type": "text", "text": {"body": "green apple"}}
    )
    assert (await hard.whatsapp_post(small_wa)).status_code == 200
    await hard.whatsapp.wait_for_messages("4670000002")
    # the probes were posted after the refused bodies and are answered: an answer to those would be here by now
    assert not hard.viber.to("hard-viber-1") and not hard.whatsapp.to("4670000001")


async def test_other_routes_take_no_big_body_and_the_api_refuses_a_huge_declared_length(hard: Served) -> None:
    is_error(await hard.http.request("GET", "/healthz", content=b"x" * 20_000), 413, "too_large", "16384 bytes")
    status, _, body = await raw_http(
        hard.url, "POST /api/v1/search HTTP/1.1\nHost: x\nContent-Type: application/json\nContent-Length: 1000000000\n"
    )
    assert status == 413 and "65536 bytes" in json.loads(body)["error"]  # a JSON search is a few KB
    assert (await hard.http.get("/healthz")).json() == {"status": "ok"}


# --- 6: the key is checked before a write's body is read ---------------------------------------------


async def test_keyless_batch_gets_401_before_its_body_is_read(hard: Served) -> None:
    before = await product_count(hard)
    # 60 KB declared, 100 bytes sent: the answer must come without the rest of the body
    head = "POST /api/v1/products:batch HTTP/1.1\nHost: x\nContent-Type: application/json\nContent-Length: 60000\n"
    status, _, body = await raw_http(hard.url, head, b'{"products": [' + b" " * 86)
    assert status == 401 and json.loads(body)["kind"] == "auth"
    for bad in (b"{not json", b'{"products": "not a list"}', b'{"nope": 1}', b"[1]"):  # keyless and invalid: 401
        is_error(
            await hard.http.post("/api/v1/products:batch", content=bad, headers={"Content-Type": "application/json"}),
            401,
            "auth",
            "API key",
        )
    keyed = await hard.http.post("/api/v1/products:batch", json={"products": [{"id": "no-title"}]}, headers=WRITE)
    assert keyed.status_code == 200 and keyed.json()["items"][0]["error"] == "products[0].title: Field required"
    is_error(
        await hard.http.post("/api/v1/products:batch", json={"products": "x"}, headers=WRITE),
        422,
        "validation",
        "products: Input should be a valid list",
    )
    many = {"products": [{"id": f"p{i}", "title": "t" * 100} for i in range(600)]}  # ~80 KB: parsed off the loop
    is_error(
        await hard.http.post("/api/v1/products:batch", json=many, headers=WRITE),
        422,
        "validation",
        "at most 100 per batch",
    )
    assert await product_count(hard) == before


# --- 7: every text field and list is capped, the limit named ----------------------------------------


CAPS = [
    ({"description": "d" * 10_001}, "description", "at most 10000 characters"),
    ({"title": "t" * 1001}, "title", "at most 1000 characters"),
    ({"category": "c" * 201}, "category", "at most 200 characters"),
    ({"brand": "b" * 201}, "brand", "at most 200 characters"),
    ({"currency": "c" * 21}, "currency", "at most 20 characters"),
    ({"url": "https://shop.example/" + "u" * 2048}, "url", "at most 2048 characters"),
    ({"tags": [f"t{i}" for i in range(51)]}, "tags", "at most 50 items"),
    ({"tags": ["t" * 101]}, "tags.0", "at most 100 characters"),
    ({"extra": {f"k{i}": "v" for i in range(51)}}, "extra", "at most 50 keys"),
    ({"extra": {"notes": "n" * 2001}}, "extra", "at most 2000 characters"),
    ({"extra": {"specs": {"a": ["x" * 500] * 5}}}, "extra", "at most 2000 characters of JSON"),
    ({"extra": {"k" * 101: "v"}}, "extra", "at most 100 characters"),
]


async def test_product_fields_are_capped_in_json_multipart_and_batch(hard: Served) -> None:
    before = await product_count(hard)
    for change, field, says in CAPS:
        product = {"id": "capped", "title": "Capped", **change}
        as_json = await hard.http.post("/api/v1/products", json={**product, "images": [NOWHERE]}, headers=WRITE)
        is_error(as_json, 422, "validation", f"{field}: ", says)
        assert as_json.json()["field"] == field
        form = await hard.http.post(
            "/api/v1/products",
            data={"product": json.dumps(product)},
            files={"images": ("a.png", png_bytes((40, 40)), "image/png")},
            headers=WRITE,
        )
        is_error(form, 422, "validation", says)
        batch = await hard.http.post(
            "/api/v1/products:batch", headers=WRITE, json={"products": [{**product, "images": [NOWHERE]}]}
        )
        assert batch.status_code == 200 and says in batch.json()["items"][0]["error"], (field, batch.text)
    assert (await hard.http.get("/api/v1/products/capped")).status_code == 404
    assert await product_count(hard) == before


async def test_search_text_and_filters_are_capped(hard: Served) -> None:
    form = await hard.http.post("/api/v1/search", data={"text": "apple " * 200})
    is_error(form, 422, "validation", "text: at most 500 characters")
    is_error(
        await hard.http.post("/api/v1/search", json={"text": "a" * 501}), 422, "validation", "at most 500 characters"
    )
    filters = json.dumps({"tags": ["t"] * 51})
    is_error(
        await hard.http.post("/api/v1/search", data={"text": "apple", "filters": filters}),
        422,
        "validation",
        "filters.tags: List should have at most 50 items",
    )
    ok = await hard.http.post("/api/v1/search", data={"text": "apple", "filters": json.dumps({"in_stock": True})})
    assert ok.status_code == 200 and ok.json()["cards"]


def test_catalog_rows_get_the_same_caps(tmp_path: Path) -> None:
    """`visearch index` reads rows into the same Product: an oversized row is reported, not stored."""
    row = product_from_record(7, {"id": "long", "title": "Long", "description": "d" * 10_001, "image": "a.jpg"})
    assert isinstance(row, RowError) and "description: String should have at most 10000 characters" in row.reason
    weighed = product_from_record(8, {"id": "inf", "title": "Inf", "weight": float("inf"), "image": "a.jpg"})
    assert isinstance(weighed, RowError) and "'weight': numbers must be finite" in weighed.reason
    fine = product_from_record(9, {"id": "ok", "title": "Ok", "description": "d" * 10_000, "tags": ["t"] * 50})
    assert not isinstance(fine, RowError)


# --- 9: deep JSON, non-finite numbers, blank text, no server path in errors ---------------------------


async def test_deep_json_gets_a_clear_4xx_everywhere(hard: Served) -> None:
    says = "nested deeper than 32 levels"
    is_error(
        await hard.http.post("/api/v1/search", content=DEEP_SEARCH, headers={"Content-Type": "application/json"}),
        422,
        "validation",
        f"body: {says}",
    )
    is_error(
        await hard.http.post(
            "/api/v1/products", content=DEEP_API, headers={**WRITE, "Content-Type": "application/json"}
        ),
        422,
        "validation",
        says,
    )
    is_error(
        await hard.http.post("/api/v1/search", data={"text": "apple", "filters": DEEP_SEARCH}),
        422,
        "validation",
        f"filters: {says}",
    )
    is_error(
        await hard.http.post("/api/v1/products", data={"product": DEEP_API}, headers=WRITE),
        422,
        "validation",
        f"product: {says}",
    )
    is_error(
        await hard.http.post(
            "/api/v1/products:batch", content=DEEP_API, headers={**WRITE, "Content-Type": "application/json"}
        ),
        422,
        "validation",
        says,
    )
    deep_update = ('{"update_id": 1, "message": ' + DEEP_WEBHOOK + "}").encode()
    assert (await hard.viber_post(DEEP_WEBHOOK.encode())).status_code == 400
    assert (await hard.whatsapp_post(DEEP_WEBHOOK.encode())).status_code == 400
    tg = await hard.http.post(
        "/webhooks/telegram", content=deep_update, headers={"X-Telegram-Bot-Api-Secret-Token": TG_SECRET}
    )
    assert tg.status_code == 400
    assert (await hard.http.post("/api/v1/search", json={"text": "apple"})).status_code == 200


@pytest.mark.parametrize(
    "body, says",
    [
        ('{"id": "granny-smith", "title": "G", "price": Infinity, "images": ["http://127.0.0.1:9/a.jpg"]}', "Infinity"),
        ('{"id": "granny-smith", "title": "G", "price": NaN, "images": ["http://127.0.0.1:9/a.jpg"]}', "NaN"),
        ('{"id": "granny-smith", "title": "G", "price": 1e309, "images": ["http://127.0.0.1:9/a.jpg"]}', "1e309"),
        (
            '{"id": "granny-smith", "title": "G", "extra": {"w": -1e999}, "images": ["http://127.0.0.1:9/a.jpg"]}',
            "-1e999",
        ),
        (
            '{"id": "granny-smith", "title": "G", "extra": {"w": 99999999999999999999}, "images": ["http://127.0.0.1:9/a.jpg"]}',
            "out of range",
        ),
    ],
)
async def test_non_finite_numbers_get_422_and_the_product_is_kept(hard: Served, body: str, says: str) -> None:
    before = (await hard.http.get("/api/v1/products/granny-smith")).json()
    answer = await hard.http.post(
        "/api/v1/products", content=body, headers={**WRITE, "Content-Type": "application/json"}
    )
    is_error(answer, 422, "validation", says)
    assert str(hard.service.settings.data_dir) not in answer.text
    form = await hard.http.post("/api/v1/products", data={"product": body}, headers=WRITE)
    is_error(form, 422, "validation", says)
    assert (await hard.http.get("/api/v1/products/granny-smith")).json() == before


async def test_blank_text_and_a_broken_store_get_clear_answers_without_server_paths(hard: Served) -> None:
    is_error(await hard.http.post("/api/v1/search", json={"text": "   "}), 422, "validation", "text: send words")
    is_error(
        await hard.http.post(
            "/api/v1/search",
            content='{"text": "milk", "filters": {"price_max": 1e400}}',
            headers={"Content-Type": "application/json"},
        ),
        422,
        "validation",
        "finite",
    )
    await hard.service.store.close()  # the store fails: its error names the data directory
    for response in (
        await hard.http.post("/api/v1/search", json={"text": "apple"}),
        await hard.http.get("/api/v1/products/granny-smith"),
    ):
        is_error(response, 503, "unavailable", "try again later")
        assert str(hard.service.settings.data_dir) not in response.text and "/tmp" not in response.text


# --- 10: ids with slashes --------------------------------------------------------------------------


async def test_ids_with_slashes_can_be_read_searched_from_and_deleted(hard: Served) -> None:
    photo = (SAMPLE / "images" / "banana.jpg").read_bytes()
    product = {"id": "fruit/banana-2", "title": "Slashed banana", "category": "Banana"}
    created = await hard.http.post(
        "/api/v1/products",
        data={"product": json.dumps(product)},
        files={"images": ("b.jpg", photo, "image/jpeg")},
        headers=WRITE,
    )
    assert created.status_code == 200, created.text
    for path in ("/api/v1/products/fruit/banana-2", "/api/v1/products/fruit%2Fbanana-2"):
        got = await hard.http.get(path)
        assert got.status_code == 200 and got.json()["id"] == "fruit/banana-2", path
    similar = await hard.http.get("/api/v1/products/fruit%2Fbanana-2/similar")
    assert similar.status_code == 200 and "fruit/banana-2" not in [c["product_id"] for c in similar.json()["cards"]]
    plain = await hard.http.get("/api/v1/products/fruit/banana-2/similar")
    assert [c["product_id"] for c in plain.json()["cards"]] == [c["product_id"] for c in similar.json()["cards"]]
    deleted = await hard.http.delete("/api/v1/products/fruit%2Fbanana-2", headers=WRITE)
    assert deleted.status_code == 200 and deleted.json() == {"id": "fruit/banana-2", "deleted_points": 1}
    is_error(await hard.http.get("/api/v1/products/fruit/banana-2"), 404, "not_found", "'fruit/banana-2'")
    assert (await hard.http.get("/api/v1/products/granny-smith")).status_code == 200


# --- 11: /media -------------------------------------------------------------------------------------


async def test_media_serves_uploads_and_catalog_photos_when_an_image_root_is_set(
    hard_catalog: Settings, offline_encoder, tmp_path: Path
) -> None:
    configured = hard_catalog.model_copy(update={"image_root": tmp_path})
    async for served in serve(configured, offline_encoder, api_keys=KEYS):
        upload = png_bytes((64, 48), colour=(10, 120, 200))
        created = await served.http.post(
            "/api/v1/products",
            data={"product": json.dumps({"id": "up-1", "title": "Up"})},
            files={"images": ("u.png", upload, "image/png")},
            headers=WRITE,
        )
        assert created.status_code == 200, created.text
        url = (await served.http.get("/api/v1/products/up-1")).json()["images"][0]["image_url"]
        photo = await served.http.get(url)
        assert photo.status_code == 200 and photo.content == upload and photo.headers["content-type"] == "image/png"
        same = await served.service.search(Query(images=[upload], limit=3))
        [card] = [c for c in same.cards if c.product_id == "up-1"]
        assert card.image_file and Path(card.image_file).read_bytes() == upload  # what a bot uploads to a chat
        catalog = (await served.http.get("/api/v1/products/granny-smith")).json()["images"][0]
        stored = (await served.service.store.retrieve([catalog["point_id"]]))[0].payload
        copy = tmp_path / stored["image"]
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(stored["image_root"]) / stored["image"], copy)
        from_root = await served.http.get(catalog["image_url"])
        assert from_root.status_code == 200 and from_root.content == copy.read_bytes()
        is_error(await served.http.get("/media/not-a-point-id"), 404, "not_found")
        assert (await served.http.delete("/api/v1/products/up-1", headers=WRITE)).status_code == 200
        is_error(await served.http.get(url), 404, "not_found")


def test_a_photo_opened_for_media_survives_its_delete(tmp_path: Path, hard_catalog: Settings) -> None:
    """The file is opened before headers go out: a delete in between cannot cut the body."""
    data = os.urandom(700_000)
    (tmp_path / "p.jpg").write_bytes(data)
    opened = open_photo(
        {"image": "p.jpg", "image_root": str(tmp_path), "product_id": "x"},
        hard_catalog.model_copy(update={"image_root": None}),
    )
    assert opened is not None
    (tmp_path / "p.jpg").unlink()
    handle, size = opened
    assert size == len(data) and read_all(handle, size) == data


# --- 12: one error shape, quiet disconnects --------------------------------------------------------


async def test_framework_errors_use_the_one_error_shape(hard: Served) -> None:
    is_error(await hard.http.get("/no/such/route"), 404, "not_found", "no such route")
    is_error(await hard.http.get("/api/v1/nothing"), 404, "not_found")
    is_error(await hard.http.get("/api/v1/search"), 405, "validation", "GET is not allowed", "POST")
    two = [("image", ("a.png", png_bytes((8, 8)), "image/png")), ("image", ("b.png", png_bytes((8, 8)), "image/png"))]
    is_error(await hard.http.post("/api/v1/search", files=two), 400, "validation", "Too many files")
    fields = {f"f{i}": "x" for i in range(60)}
    is_error(
        await hard.http.post(
            "/api/v1/products",
            data={"product": "{}", **fields},
            headers=WRITE,
            files={"images": ("a.png", png_bytes((8, 8)), "image/png")},
        ),
        400,
        "validation",
        "Too many fields",
    )
    is_error(await hard.http.get("/api/v1/products/granny-smith/similar?limit=0"), 422, "validation", "limit")
    is_error(
        await hard.http.post("/api/v1/search", content=b"{nope", headers={"Content-Type": "application/json"}),
        422,
        "validation",
        "body: not valid JSON",
    )


async def test_a_client_that_hangs_up_mid_body_is_no_server_error(
    hard: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="visearch")
    for path in ("/api/v1/search", "/webhooks/viber"):
        where = urlsplit(hard.url)
        _, writer = await asyncio.open_connection(where.hostname, where.port)
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            'Content-Length: 4000\r\n\r\n{"text": '.encode()
        )
        await writer.drain()
        writer.close()
    for _ in range(100):
        if sum("disconnected before sending the whole body" in r.getMessage() for r in caplog.records) == 2:
            break
        await asyncio.sleep(0.02)
    assert sum("disconnected before sending the whole body" in r.getMessage() for r in caplog.records) == 2
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert (await hard.http.post("/api/v1/search", json={"text": "apple"})).status_code == 200


# --- 13: a second server on the same data directory -------------------------------------------------


async def test_a_second_serve_on_the_same_data_directory_says_so_in_one_line(
    hard_catalog: Settings, offline_encoder
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    service = SearchService(offline_encoder, open_store(hard_catalog), hard_catalog)
    app = create_app(
        hard_catalog,
        load_server_settings(),
        load_telegram_settings(token=None, webhook_secret=None),
        service=service,
        listen_url=url,
    )
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(uv.serve())
    try:
        while not uv.started:
            await asyncio.sleep(0.02)
        env = cli_env(hard_catalog, VISEARCH_ENCODER="offline")
        second = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "visearch.indexer.cli",
            "serve",
            "--port",
            str(free_port()),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(second.communicate(), timeout=120)
        lines = [line for line in (out + err).decode().splitlines() if line.strip()]
        assert second.returncode == 2, lines
        assert len(lines) == 1 and "Traceback" not in lines[0], lines
        assert lines[0].startswith("error: ") and f"in use by visearch serve at {url}" in lines[0]
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{url}/healthz")).status_code == 200  # the first one is untouched
    finally:
        uv.should_exit = True
        await task
        await service.close()


# --- ids the API could not address are refused where they come in -------------------------------------

UNADDRESSABLE_IDS = [
    ("x/similar", "may not end with '/similar'"),  # GET .../x/similar is "more like x"
    ("a/b/similar", "may not end with '/similar'"),
    ("a\nb", "may not contain control characters"),  # the path route does not match a newline
    ("a\rb", "may not contain control characters"),
    ("tab\there", "may not contain control characters"),
    ("nul\x00", "may not contain control characters"),
    ("del\x7f", "may not contain control characters"),
    ("line\u2028sep", "may not contain control characters"),
    ("rtl\u202eoverride", "invisible formatting characters (found U+202E)"),
    ("..", "may not be '.' or '..'"),  # clients drop dot segments: only a raw client reached it
    (".", "may not be '.' or '..'"),
    ("a/../b", "may not be '.' or '..'"),
    ("./x", "may not be '.' or '..'"),
    ("x/.", "may not be '.' or '..'"),
]


async def test_ids_the_api_could_not_address_get_422_and_nothing_is_created(hard: Served) -> None:
    before = await product_count(hard)
    photo = png_bytes((40, 40))
    for bad, says in UNADDRESSABLE_IDS:
        product = {"id": bad, "title": "Unreachable"}
        form = await hard.http.post(
            "/api/v1/products",
            data={"product": json.dumps(product)},
            files={"images": ("a.png", photo, "image/png")},
            headers=WRITE,
        )
        is_error(form, 422, "validation", "id: ", says)
        assert form.json()["field"] == "id", bad
        as_json = await hard.http.post("/api/v1/products", json={**product, "images": [NOWHERE]}, headers=WRITE)
        is_error(as_json, 422, "validation", "id: ", says)
        batch = await hard.http.post(
            "/api/v1/products:batch", headers=WRITE, json={"products": [{**product, "images": [NOWHERE]}]}
        )
        assert batch.status_code == 200 and batch.json()["written"] == 0
        assert batch.json()["items"][0]["error"].startswith("products[0].id: ") and says in batch.text, bad
    assert await product_count(hard) == before
    assert (await hard.http.get("/api/v1/products/x")).status_code == 404


async def test_ids_with_slashes_spaces_unicode_and_percent_work_end_to_end(hard: Served) -> None:
    from urllib.parse import quote

    photo = (SAMPLE / "images" / "banana.jpg").read_bytes()
    before = await product_count(hard)
    for good in ("shelf 2/kiwi gold", "café/über-äpfel", "50%/off %2F", "v1..2/a.b", "similar", "similar/x"):
        created = await hard.http.post(
            "/api/v1/products",
            data={"product": json.dumps({"id": good, "title": "Good"})},
            files={"images": ("b.jpg", photo, "image/jpeg")},
            headers=WRITE,
        )
        assert created.status_code == 200, (good, created.text)
        for encoded in (quote(good, safe="/"), quote(good, safe="")):
            got = await hard.http.get(f"/api/v1/products/{encoded}")
            assert got.status_code == 200 and got.json()["id"] == good, (good, encoded, got.text)
        similar = await hard.http.get(f"/api/v1/products/{quote(good, safe='')}/similar")
        assert similar.status_code == 200 and similar.json()["cards"], (good, similar.text)
        assert good not in [c["product_id"] for c in similar.json()["cards"]]
        deleted = await hard.http.delete(f"/api/v1/products/{quote(good, safe='/')}", headers=WRITE)
        assert deleted.status_code == 200 and deleted.json() == {"id": good, "deleted_points": 1}, (good, deleted.text)
        assert (await hard.http.get(f"/api/v1/products/{quote(good, safe='')}")).status_code == 404
    assert await product_count(hard) == before


def test_catalog_rows_with_unaddressable_ids_are_row_errors(tmp_path: Path) -> None:
    """The catalog reader shares `Product`: such a row is reported with its line and the id rule."""
    from visearch.core.catalog import read_catalog

    for line, (bad, says) in enumerate(UNADDRESSABLE_IDS, start=2):
        row = product_from_record(line, {"id": bad, "title": "T", "image": "a.jpg"})
        assert isinstance(row, RowError) and row.line == line and row.reason.startswith("id: "), (bad, row)
        assert says in row.reason and not row.structural
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text(
        '{"id": "ok/1", "title": "T", "image": "a.jpg"}\n'
        '{"id": "a\\nb", "title": "T", "image": "a.jpg"}\n'
        '{"id": "shelf/similar", "title": "T", "image": "a.jpg"}\n',
        encoding="utf-8",
    )
    result = read_catalog(jsonl)
    assert [row.product.id for row in result.rows] == ["ok/1"]
    assert [(e.line, e.product_id, e.reason.split(" (")[0]) for e in result.errors] == [
        (2, "a\nb", "id: may not contain control characters or invisible formatting characters"),
        (3, "shelf/similar", "id: may not end with '/similar'"),
    ]
