"""/api/v1 over real HTTP on 127.0.0.1: the app under uvicorn, the offline encoder, the embedded
store, the bundled grocery sample, real in-store photos as queries; image URLs given to the API are
served by a scripted HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from PIL import Image

from tests.conftest import copy_collection, free_port
from tests.fakes.http_server import Reply, scripted_server
from visearch.bots.server.app import create_app
from visearch.bots.server.config import load_server_settings
from visearch.bots.telegram.config import load_telegram_settings
from visearch.core.config import Settings
from visearch.core.search import SearchService
from visearch.core.store.factory import open_store

SAMPLE = Path(__file__).resolve().parents[2] / "indexer" / "demo_data" / "grocery"
KEYS = "key-one-Aa1,key-two-Bb2"
WRITE = {"Authorization": "Bearer key-one-Aa1"}


@pytest.fixture(scope="module")
def api_catalog(tmp_path_factory: pytest.TempPathFactory, sample_collection: Settings) -> Settings:
    """A copy of the bundled sample's collection (81 products), writable by this module's tests."""
    return copy_collection(sample_collection, tmp_path_factory.mktemp("api-data"))


@dataclass
class Api:
    url: str
    http: httpx.AsyncClient
    service: SearchService

    async def search_photo(self, data: bytes, filename: str = "q.jpg", **fields: str) -> httpx.Response:
        return await self.http.post("/api/v1/search", files={"image": (filename, data, "image/jpeg")}, data=fields)

    async def product(self, product_id: str) -> httpx.Response:
        return await self.http.get(f"/api/v1/products/{product_id}")


@asynccontextmanager
async def run_api(settings: Settings, offline_encoder, **server_options: object) -> AsyncIterator[Api]:
    options: dict = {"api_keys": KEYS, "rate_limit": 0, "api_fetch_allow": "127.0.0.1/32"}  # the local image servers
    options.update(server_options)
    server = load_server_settings(**options)
    service = SearchService(offline_encoder, open_store(settings), settings)
    app = create_app(settings, server, load_telegram_settings(token=None, webhook_secret=None), service=service)
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(uv.serve())
    while not uv.started:
        await asyncio.sleep(0.02)
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            yield Api(url, http, service)
    finally:
        uv.should_exit = True
        await task
        await service.close()


@pytest.fixture
async def api(api_catalog: Settings, offline_encoder) -> AsyncIterator[Api]:
    async with run_api(api_catalog, offline_encoder) as running:
        yield running


def val_photo(grocery_dir: Path, fragment: str) -> bytes:
    """The first val photo of a class whose path holds `fragment` (e.g. 'Granny-Smith')."""
    for line in (grocery_dir / "val.txt").read_text().splitlines():
        rel = line.split(",")[0].strip()
        if fragment in rel:
            return (grocery_dir / rel).read_bytes()
    raise AssertionError(f"no val photo for {fragment}")


def png_bytes(size: tuple[int, int], mode: str = "RGB", colour: object = (200, 40, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, colour).save(buf, "PNG")
    return buf.getvalue()


PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


# --- schema, auth ----------------------------------------------------------------------------------


async def test_openapi_schema_lists_every_endpoint(api: Api) -> None:
    schema = (await api.http.get("/api/v1/openapi.json")).json()
    paths = schema["paths"]
    for path, methods in {
        "/api/v1/products": {"post"},
        "/api/v1/products/{product_id}": {"get", "delete"},
        "/api/v1/products:batch": {"post"},
        "/api/v1/stats": {"get"},
        "/api/v1/search": {"post"},
        "/api/v1/products/{product_id}/similar": {"get"},
    }.items():
        assert methods <= set(paths[path]), path
    body = paths["/api/v1/search"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(body)
    assert "image_file" not in json.dumps(schema)  # a server path is never part of the API
    assert "ProductIn" in schema["components"]["schemas"]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"X-API-Key": "key-one-Aa"}, {"Authorization": "Basic a2V5LW9uZS1BYTE="}],
)
async def test_writes_need_a_valid_key_and_write_nothing_without_one(api: Api, headers: dict) -> None:
    product = {"id": "no-key", "title": "Nope", "images": ["https://shop.example/x.jpg"]}
    response = await api.http.post("/api/v1/products", json=product, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["kind"] == "auth" and "key" in response.json()["error"]
    assert (await api.http.delete("/api/v1/products/granny-smith", headers=headers)).status_code == 401
    assert (
        await api.http.post("/api/v1/products:batch", json={"products": [product]}, headers=headers)
    ).status_code == 401
    assert (await api.product("no-key")).status_code == 404
    assert (await api.product("granny-smith")).status_code == 200  # the delete did not happen


async def test_either_key_works_in_either_header(api: Api, tmp_path: Path) -> None:
    with scripted_server() as images:
        url = images.route("/banana.jpg", Reply(200, (SAMPLE / "images" / "banana.jpg").read_bytes()))
        for i, headers in enumerate([{"Authorization": "Bearer key-two-Bb2"}, {"X-API-Key": "key-one-Aa1"}]):
            product = {"id": f"keyed-{i}", "title": "Keyed banana", "images": [url]}
            response = await api.http.post("/api/v1/products", json=product, headers=headers)
            assert response.status_code == 200, response.text
    for i in range(2):
        assert (await api.http.delete(f"/api/v1/products/keyed-{i}", headers=WRITE)).status_code == 200


async def test_without_configured_keys_writes_are_refused_with_the_fix(api_catalog: Settings, offline_encoder) -> None:
    async with run_api(api_catalog, offline_encoder, api_keys=None) as api:
        response = await api.http.post("/api/v1/products", json={"id": "x"}, headers=WRITE)
        assert response.status_code == 401 and "VISEARCH_API_KEYS" in response.json()["error"]


async def test_keyed_search_when_search_is_not_public(api_catalog: Settings, offline_encoder) -> None:
    async with run_api(api_catalog, offline_encoder, api_public_search=False) as api:
        assert (await api.http.post("/api/v1/search", json={"text": "apple"})).status_code == 401
        assert (await api.http.get("/api/v1/stats")).status_code == 401
        keyed = await api.http.post("/api/v1/search", json={"text": "apple"}, headers={"X-API-Key": "key-two-Bb2"})
        assert keyed.status_code == 200 and keyed.json()["cards"]


# --- products --------------------------------------------------------------------------------------


async def test_upsert_by_url_then_get_search_and_idempotent_repeat(api: Api, grocery_dir: Path) -> None:
    photo = val_photo(grocery_dir, "Fruit/Kiwi/")
    with scripted_server() as images:
        url = images.route("/kiwi.jpg", Reply(200, photo))
        product = {
            "id": "api-kiwi",
            "title": "Gold kiwi from the API",
            "price": 4.5,
            "currency": "EUR",
            "category": "Exotic",
            "tags": ["api", "fruit"],
            "url": "https://shop.example/kiwi",
            "in_stock": True,
            "images": [url],
            "extra": {"origin": "NZ"},
        }
        first = await api.http.post("/api/v1/products", json=product, headers=WRITE)
        assert first.status_code == 200, first.text
        assert first.json()["ok"] and first.json()["indexed"] == 1
        points = (await api.http.get("/api/v1/stats")).json()["points"]
        again = await api.http.post("/api/v1/products", json=product, headers=WRITE)
        assert again.json()["indexed"] == 0 and again.json()["unchanged"] == 1
        assert (await api.http.get("/api/v1/stats")).json()["points"] == points  # nothing duplicated
        assert images.hits["/kiwi.jpg"] == 2
    stored = (await api.product("api-kiwi")).json()
    assert stored["title"] == "Gold kiwi from the API" and stored["price"] == 4.5 and stored["tags"] == ["api", "fruit"]
    assert stored["extra"] == {"origin": "NZ"}
    assert stored["images"][0]["image_url"] == url
    found = (await api.search_photo(photo, filters=json.dumps({"categories": ["exotic"]}))).json()
    assert [c["product_id"] for c in found["cards"]] == ["api-kiwi"]
    assert found["cards"][0]["image_url"] == url and "image_file" not in found["cards"][0]
    assert (await api.http.delete("/api/v1/products/api-kiwi", headers=WRITE)).json()["deleted_points"] == 1


async def test_multipart_upload_is_served_back_and_found(api: Api, grocery_dir: Path) -> None:
    photo = val_photo(grocery_dir, "Vegetables/Zucchini/")
    product = {"id": "api-zucchini", "title": "Uploaded zucchini", "category": "Uploads", "in_stock": True}
    response = await api.http.post(
        "/api/v1/products",
        headers=WRITE,
        data={"product": json.dumps(product)},
        files=[("images", ("zucchini.jpg", photo, "image/jpeg"))],
    )
    assert response.status_code == 200, response.text
    assert response.json()["indexed"] == 1
    stored = (await api.product("api-zucchini")).json()
    image_url = stored["images"][0]["image_url"]
    assert image_url.startswith(api.url + "/media/")
    served = await api.http.get(image_url)
    assert served.status_code == 200 and served.content == photo and served.headers["content-type"] == "image/jpeg"
    found = (await api.search_photo(photo, filters=json.dumps({"categories": ["uploads"]}))).json()
    assert found["cards"][0]["product_id"] == "api-zucchini"
    # the same file again: the same image, nothing new written
    again = await api.http.post(
        "/api/v1/products",
        headers=WRITE,
        data={"product": json.dumps(product)},
        files=[("images", ("other-name.jpg", photo, "image/jpeg"))],
    )
    assert again.json()["unchanged"] == 1 and again.json()["indexed"] == 0
    assert (await api.http.delete("/api/v1/products/api-zucchini", headers=WRITE)).status_code == 200
    assert (await api.http.get(image_url)).status_code == 404


async def test_delete_then_search_does_not_return_the_product(api: Api, grocery_dir: Path) -> None:
    photo = val_photo(grocery_dir, "Packages/Oatghurt/")
    with scripted_server() as images:
        url = images.route("/oatghurt.jpg", Reply(200, photo))
        product = {"id": "api-oatghurt", "title": "Oatghurt from the API", "category": "DeleteMe", "images": [url]}
        assert (await api.http.post("/api/v1/products", json=product, headers=WRITE)).status_code == 200
    before = (await api.search_photo(photo)).json()["cards"]
    assert "api-oatghurt" in [c["product_id"] for c in before]
    deleted = await api.http.delete("/api/v1/products/api-oatghurt", headers=WRITE)
    assert deleted.status_code == 200 and deleted.json() == {"id": "api-oatghurt", "deleted_points": 1}
    after = (await api.search_photo(photo)).json()["cards"]
    assert "api-oatghurt" not in [c["product_id"] for c in after]
    assert (await api.product("api-oatghurt")).status_code == 404
    again = await api.http.delete("/api/v1/products/api-oatghurt", headers=WRITE)
    assert again.status_code == 404 and again.json()["kind"] == "not_found"
    facets = (await api.http.get("/api/v1/facets")).json()
    assert "deleteme" not in {k.casefold() for k in facets["categories"]}  # the facets cache was dropped


@pytest.mark.parametrize(
    ("product", "field"),
    [
        ({"title": "No id", "images": ["https://shop.example/a.jpg"]}, "id"),
        ({"id": "no-title", "images": ["https://shop.example/a.jpg"]}, "title"),
        ({"id": "neg", "title": "Negative", "price": -1, "images": ["https://shop.example/a.jpg"]}, "price"),
        ({"id": "file", "title": "Local file", "images": ["file:///etc/passwd"]}, "images.0"),
        ({"id": "path", "title": "Server path", "images": ["/etc/passwd"]}, "images.0"),
        ({"id": "noimg", "title": "No image", "images": []}, "images"),
        ({"id": "x", "title": "Unknown field", "images": ["https://shop.example/a.jpg"], "colour": "red"}, "colour"),
        (
            {"id": "xk", "title": "Extra overrides id", "images": ["https://shop.example/a.jpg"], "extra": {"id": []}},
            "extra",
        ),
        (
            {
                "id": "xr",
                "title": "Extra overrides",
                "images": ["https://shop.example/a.jpg"],
                "extra": {"image_root": "/"},
            },
            "extra",
        ),
    ],
)
async def test_invalid_products_get_422_naming_the_field_and_write_nothing(api: Api, product: dict, field: str) -> None:
    response = await api.http.post("/api/v1/products", json=product, headers=WRITE)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["kind"] == "validation" and body["field"] == field and body["error"].startswith(field)
    if "id" in product:
        assert (await api.product(product["id"])).status_code == 404


@pytest.mark.parametrize(
    ("data", "name", "says"),
    [
        (PDF, "catalog.pdf", "not an image"),
        (b"", "empty.jpg", "empty"),
        (b"\xff\xd8\xff\xe0 broken jpeg", "broken.jpg", "not an image"),
    ],
)
async def test_bad_uploads_get_422_and_write_nothing(api: Api, data: bytes, name: str, says: str) -> None:
    product = {"id": "bad-upload", "title": "Bad upload"}
    response = await api.http.post(
        "/api/v1/products",
        headers=WRITE,
        data={"product": json.dumps(product)},
        files=[("images", (name, data, "application/octet-stream"))],
    )
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "images[0]" and says in response.json()["error"]
    assert (await api.product("bad-upload")).status_code == 404


async def test_a_url_that_is_not_an_image_is_reported(api: Api) -> None:
    with scripted_server() as images:
        url = images.route("/gone.jpg", Reply(404, b"not found", content_type="text/plain"))
        response = await api.http.post(
            "/api/v1/products", headers=WRITE, json={"id": "gone", "title": "Gone", "images": [url]}
        )
    assert response.status_code == 422 and "404" in response.json()["error"]
    assert (await api.product("gone")).status_code == 404


async def test_batch_writes_the_good_items_and_reports_the_bad(api: Api, grocery_dir: Path) -> None:
    with scripted_server() as images:
        good = images.route("/lime.jpg", Reply(200, val_photo(grocery_dir, "Fruit/Lime/")))
        missing = images.route("/missing.jpg", Reply(404, b"", content_type="text/plain"))
        body = {
            "products": [
                {"id": "batch-lime", "title": "Batch lime", "images": [good]},
                {"id": "batch-bad", "images": [good]},  # no title
                {"id": "batch-404", "title": "Missing photo", "images": [missing]},
                "not an object",
            ]
        }
        response = await api.http.post("/api/v1/products:batch", json=body, headers=WRITE)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["written"] == 1 and result["failed"] == 3
    items = result["items"]
    assert items[0]["ok"] and items[0]["result"]["indexed"] == 1
    assert not items[1]["ok"] and items[1]["error"].startswith("products[1].title")
    assert not items[2]["ok"] and "404" in items[2]["error"]
    assert not items[3]["ok"] and items[3]["error"].startswith("products[3]")
    assert (await api.product("batch-lime")).status_code == 200
    assert (await api.product("batch-bad")).status_code == 404
    assert (await api.product("batch-404")).status_code == 404
    assert (await api.http.delete("/api/v1/products/batch-lime", headers=WRITE)).status_code == 200


async def test_batch_size_is_limited(api_catalog: Settings, offline_encoder) -> None:
    async with run_api(api_catalog, offline_encoder, api_max_batch=2) as api:
        body = {"products": [{"id": f"p{i}", "title": "x", "images": ["https://shop.example/a.jpg"]} for i in range(3)]}
        response = await api.http.post("/api/v1/products:batch", json=body, headers=WRITE)
        assert response.status_code == 422 and "VISEARCH_API_MAX_BATCH" in response.json()["error"]


# --- search ----------------------------------------------------------------------------------------


async def test_search_by_a_real_store_photo(api: Api, grocery_dir: Path) -> None:
    response = await api.search_photo(val_photo(grocery_dir, "Granny-Smith"), limit="3")
    assert response.status_code == 200
    cards = response.json()["cards"]
    assert cards[0]["product_id"] == "granny-smith"
    card = cards[0]
    assert card["title"] == "Granny Smith" and card["price"] == 11.44 and card["url"].startswith("https://")
    assert card["image_url"].endswith(f"/media/{card['point_id']}")
    assert (await api.http.get(card["image_url"])).headers["content-type"] == "image/jpeg"


async def test_text_search_with_filters_and_next_page(api: Api) -> None:
    first = await api.http.post(
        "/api/v1/search", json={"text": "apple", "limit": 2, "filters": {"categories": ["Apple"], "in_stock": True}}
    )
    assert first.status_code == 200, first.text
    page = first.json()
    assert len(page["cards"]) == 2 and all(c["category"] == "Apple" and c["in_stock"] for c in page["cards"])
    assert page["next_cursor"]
    second = (await api.http.post("/api/v1/search", json={"cursor": page["next_cursor"], "limit": 2})).json()
    assert second["cards"] and not {c["product_id"] for c in second["cards"]} & {c["product_id"] for c in page["cards"]}
    assert all(c["category"] == "Apple" and c["in_stock"] for c in second["cards"])


async def test_more_like_this(api: Api) -> None:
    response = await api.http.get("/api/v1/products/granny-smith/similar", params={"limit": 5})
    assert response.status_code == 200
    ids = [c["product_id"] for c in response.json()["cards"]]
    assert ids and "granny-smith" not in ids
    assert (await api.http.get("/api/v1/products/nope/similar")).status_code == 404


async def test_no_match_is_an_empty_answer_with_a_sentence(api: Api) -> None:
    body = (
        await api.http.post("/api/v1/search", json={"text": "apple", "filters": {"categories": ["no-such"]}})
    ).json()
    assert body["cards"] == [] and "No matching products" in body["message"]


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda: PDF, "not an image"),
        (lambda: b"", "empty"),
        (lambda: png_bytes((20000, 20000), mode="1", colour=0), "too large"),
    ],
)
async def test_bad_search_photos_get_a_clear_422(api: Api, make, says: str) -> None:
    response = await api.search_photo(make(), filename="x.png")
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "image" and says in response.json()["error"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"text": "apple", "limit": 0}, "limit"),
        ({"text": "apple", "filters": {"price_min": 5, "price_max": 1}}, "filters"),
        ({"text": "apple", "filters": {"price": 1}}, "filters.price"),
        ({}, "text"),
        ({"cursor": "expired-or-made-up"}, "cursor"),
    ],
)
async def test_search_validation_names_the_field(api: Api, body: dict, field: str) -> None:
    response = await api.http.post("/api/v1/search", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field and response.json()["error"].startswith(field)


async def test_multipart_search_form_errors(api: Api) -> None:
    bad_filters = await api.http.post("/api/v1/search", data={"text": "apple", "filters": "{not json"})
    assert bad_filters.status_code == 422 and bad_filters.json()["field"] == "filters"
    bad_limit = await api.http.post("/api/v1/search", data={"text": "apple", "limit": "many"})
    assert bad_limit.status_code == 422 and bad_limit.json()["field"] == "limit"
    nothing = await api.http.post("/api/v1/search", data={"limit": "3"}, files={"unused": ("a", b"1")})
    assert nothing.status_code == 422 and nothing.json()["field"] == "image"


async def test_stats(api: Api) -> None:
    stats = (await api.http.get("/api/v1/stats")).json()
    assert stats["products"] >= 81 and stats["points"] >= 81 and stats["backend"] == "edge"
    assert stats["encoder"] == stats["collection_encoder"]


# --- limits, CORS ----------------------------------------------------------------------------------


async def test_request_size_is_limited(api_catalog: Settings, offline_encoder, grocery_dir: Path) -> None:
    async with run_api(api_catalog, offline_encoder, api_max_body_bytes=4096) as api:
        response = await api.search_photo(val_photo(grocery_dir, "Granny-Smith"))
        assert response.status_code == 413 and "VISEARCH_API_MAX_BODY_BYTES" in response.json()["error"]

        async def chunks():  # no Content-Length: counted while it streams
            for _ in range(10):
                yield b"x" * 1024

        streamed = await api.http.post("/api/v1/search", content=chunks(), headers={"Content-Type": "application/json"})
        assert streamed.status_code == 413
        assert (await api.http.post("/api/v1/search", json={"text": "apple"})).status_code == 200


async def test_cors_only_for_configured_origins(api_catalog: Settings, offline_encoder) -> None:
    async with run_api(api_catalog, offline_encoder, cors_origins="https://shop.example") as api:
        preflight = {"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"}
        allowed = await api.http.options("/api/v1/search", headers=preflight)
        assert allowed.headers.get("access-control-allow-origin") == "https://shop.example"
        other = await api.http.options("/api/v1/search", headers={**preflight, "Origin": "https://evil.example"})
        assert other.headers.get("access-control-allow-origin") is None
    async with run_api(api_catalog, offline_encoder) as api:
        plain = await api.http.post(
            "/api/v1/search", json={"text": "apple"}, headers={"Origin": "https://shop.example"}
        )
        assert "access-control-allow-origin" not in plain.headers


async def test_the_page_and_its_assets_are_served(api: Api) -> None:
    page = await api.http.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"] and "/static/app.js" in page.text
    assert (await api.http.get("/static/app.js")).status_code == 200
    assert (await api.http.get("/static/style.css")).status_code == 200
