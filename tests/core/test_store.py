"""One suite, two backends: the embedded engine (qdrant-edge) and the server store (qdrant-client :memory:)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import free_port
from visearch.core.config import load_settings
from visearch.core.domain import Filters, PointRecord, Product, point_id_for
from visearch.core.errors import (
    CollectionNotFoundError,
    EncoderMismatchError,
    StoreError,
    StoreLockedError,
)
from visearch.core.store.base import VectorStore
from visearch.core.store.edge import EdgeStore
from visearch.core.store.factory import open_store
from visearch.core.store.server import ServerStore

DIM = 8
ENCODER = "test-encoder@v1"
REPO = Path(__file__).resolve().parents[2]

# qdrant-client warns (rightly, for operators) when an API key travels over plain http
pytestmark = pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection")

PRODUCTS = [
    Product(
        id="milk",
        title="Milk",
        category="Dairy",
        brand="Arla",
        tags=["Organic", "lactose-free"],
        price=15.0,
        images=["milk-1.jpg", "milk-2.jpg"],
    ),
    Product(
        id="cheese",
        title="Cheese",
        category="Dairy",
        brand="Valio",
        tags=["organic"],
        price=50.0,
        in_stock=False,
        images=["cheese.jpg"],
    ),
    Product(id="apple", title="Apple", category="Fruit", tags=["organic", "Fresh"], price=5.0, images=["apple.jpg"]),
    Product(
        id="banana",
        title="Banana",
        category="Fruit",
        brand="Chiquita",
        tags=["fresh"],
        price=None,
        images=["banana-1.jpg", "banana-2.jpg", "banana-3.jpg"],
    ),
    Product(
        id="bread",
        title="Bread",
        category="Bakery",
        brand="Pågen",
        price=25.0,
        extra={"origin": "SE"},
        images=["bread.jpg"],
    ),
]
IMAGES_PER_PRODUCT = {p.id: len(p.images) for p in PRODUCTS}
TOTAL_POINTS = sum(IMAGES_PER_PRODUCT.values())


def unit(values: np.ndarray) -> list[float]:
    return (values / np.linalg.norm(values)).astype(np.float32).tolist()


def make_points(products: list[Product] = PRODUCTS, seed: int = 0) -> list[PointRecord]:
    """One point per image, random unit vectors (the engines store cosine vectors normalised)."""
    rng = np.random.default_rng(seed)
    points = []
    for product in products:
        for index, image in enumerate(product.images):
            points.append(
                PointRecord(
                    id=point_id_for(product.id, image),
                    vector=unit(rng.standard_normal(DIM)),
                    payload=product.payload(image, f"sha-{image}", index),
                )
            )
    return points


@pytest.fixture(params=["edge", "server"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[VectorStore]:
    s: VectorStore
    if request.param == "edge":
        s = EdgeStore(tmp_path / "data", "products")
    else:
        s = ServerStore("products", location=":memory:")
    yield s
    await s.close()


@pytest.fixture
async def filled(store: VectorStore) -> VectorStore:
    await store.ensure_collection(ENCODER, DIM)
    await store.upsert(make_points())
    return store


async def product_ids_of(store: VectorStore, filters: Filters | None) -> set[str]:
    hits = await store.search(unit(np.ones(DIM)), filters, 100)
    return {h.payload["product_id"] for h in hits}


# --- collection lifecycle ---------------------------------------------------------------------


async def test_satisfies_protocol(store: VectorStore) -> None:
    assert isinstance(store, VectorStore)


async def test_ensure_collection_creates_then_verifies(store: VectorStore) -> None:
    assert await store.info() is None
    info = await store.ensure_collection(ENCODER, DIM)
    assert (info.name, info.encoder_id, info.dim, info.points, info.backend) == (
        "products",
        ENCODER,
        DIM,
        0,
        store.backend,
    )
    again = await store.ensure_collection(ENCODER, DIM)
    assert again.encoder_id == ENCODER
    assert await store.info() == again


async def test_ensure_collection_mismatch_names_both_encoders(store: VectorStore) -> None:
    await store.ensure_collection(ENCODER, DIM)
    with pytest.raises(EncoderMismatchError) as err:
        await store.ensure_collection("other-encoder", DIM)
    assert ENCODER in str(err.value) and "other-encoder" in str(err.value)
    assert "--reembed" in str(err.value)
    with pytest.raises(EncoderMismatchError, match="dim 16"):
        await store.ensure_collection(ENCODER, 16)


async def test_recreate_switches_encoder_and_empties(filled: VectorStore) -> None:
    info = await filled.ensure_collection("other-encoder", 4, recreate=True)
    assert (info.encoder_id, info.dim, info.points) == ("other-encoder", 4, 0)
    await filled.upsert([PointRecord(id=point_id_for("x", "x.jpg"), vector=[1, 0, 0, 0], payload={"product_id": "x"})])
    assert await filled.count() == 1


async def test_operations_before_collection_exists_name_the_fix(store: VectorStore) -> None:
    calls = [
        store.count(),
        store.search([1.0] * DIM, None, 5),
        store.upsert(make_points()),
        store.retrieve([point_id_for("milk", "milk-1.jpg")]),
        store.delete_products(["milk"]),
    ]
    for call in calls:
        with pytest.raises(CollectionNotFoundError, match="visearch index CATALOG"):
            await call
    with pytest.raises(CollectionNotFoundError):
        _ = [p async for p in store.scroll()]


# --- writes and reads -------------------------------------------------------------------------


async def test_upsert_then_retrieve_roundtrip(filled: VectorStore) -> None:
    points = make_points()
    assert await filled.count() == TOTAL_POINTS
    wanted = [points[0].id, "not-a-uuid", point_id_for("ghost", "ghost.jpg"), points[3].id]
    got = await filled.retrieve(wanted, with_vectors=True)
    assert [p.point_id for p in got] == [points[0].id, points[3].id]
    assert got[0].payload == points[0].payload
    assert got[0].vector == pytest.approx(points[0].vector, abs=1e-5)
    bread = next(p for p in points if p.payload["product_id"] == "bread")
    (stored,) = await filled.retrieve([bread.id])
    assert stored.vector is None
    assert Product.from_payload(stored.payload) == PRODUCTS[-1]


async def test_reupsert_same_ids_does_not_duplicate(filled: VectorStore) -> None:
    points = make_points(seed=1)
    points[0].payload["title"] = "Milk 2.0"
    await filled.upsert(points)
    await filled.upsert(points[:3])
    assert await filled.count() == TOTAL_POINTS
    (milk,) = await filled.retrieve([points[0].id], with_vectors=True)
    assert milk.payload["title"] == "Milk 2.0"
    assert milk.vector == pytest.approx(points[0].vector, abs=1e-5)


async def test_upsert_wrong_dimension_is_refused(filled: VectorStore) -> None:
    bad = PointRecord(id=point_id_for("x", "x.jpg"), vector=[1.0, 0.0], payload={"product_id": "x"})
    with pytest.raises(StoreError, match="2-d vector"):
        await filled.upsert([bad])


async def test_set_payload_keeps_vector(filled: VectorStore) -> None:
    point = make_points()[0]
    new_payload = {**point.payload, "price": 99.0, "in_stock": False}
    await filled.set_payload(point.id, new_payload)
    (got,) = await filled.retrieve([point.id], with_vectors=True)
    assert got.payload == new_payload
    assert got.vector == pytest.approx(point.vector, abs=1e-5)
    assert await filled.count(Filters(price_min=90)) == 1
    with pytest.raises(StoreError, match="not in collection"):
        await filled.set_payload(point_id_for("ghost", "g.jpg"), {"a": 1})


# --- search and filters -----------------------------------------------------------------------


async def test_search_ranks_by_cosine(store: VectorStore) -> None:
    await store.ensure_collection(ENCODER, DIM)
    basis = np.eye(DIM)
    query = basis[0]
    # cosines to the query: 1.0, ~0.894, ~0.707, ~0.447, 0.0, -1.0
    vectors = [basis[0], basis[0] * 2 + basis[1], basis[0] + basis[1], basis[0] + basis[1] * 2, basis[1], -basis[0]]
    points = [
        PointRecord(id=point_id_for(f"p{i}", "a.jpg"), vector=unit(v), payload={"product_id": f"p{i}"})
        for i, v in enumerate(vectors)
    ]
    await store.upsert(list(reversed(points)))
    hits = await store.search(query.tolist(), None, 10)
    assert [h.payload["product_id"] for h in hits] == [f"p{i}" for i in range(6)]
    assert [h.point_id for h in hits] == [p.id for p in points]
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert hits[2].score == pytest.approx(0.7071, abs=1e-3)
    assert hits[-1].score == pytest.approx(-1.0, abs=1e-5)
    top2 = await store.search(query.tolist(), None, 2)
    assert [h.point_id for h in top2] == [points[0].id, points[1].id]
    # same ranking when a filter forces the exact path
    filtered = await store.search(query.tolist(), Filters(exclude_product_ids=["p1"]), 3)
    assert [h.payload["product_id"] for h in filtered] == ["p0", "p2", "p3"]


FILTER_CASES = [
    (Filters(), {"milk", "cheese", "apple", "banana", "bread"}),
    (Filters(categories=["dairy"]), {"milk", "cheese"}),
    (Filters(categories=[" Dairy", "FRUIT"]), {"milk", "cheese", "apple", "banana"}),
    (Filters(categories=["nothing"]), set()),
    (Filters(brands=["ARLA", "chiquita"]), {"milk", "banana"}),
    (Filters(brands=["pågen"]), {"bread"}),
    (Filters(tags=["organic"]), {"milk", "cheese", "apple"}),
    (Filters(tags=["organic", "fresh"]), {"apple"}),
    (Filters(tags=["organic", "fresh", "lactose-free"]), set()),
    (Filters(price_min=10), {"milk", "cheese", "bread"}),
    (Filters(price_max=20), {"milk", "apple"}),  # banana has no price: never matches a price filter
    (Filters(price_min=10, price_max=30), {"milk", "bread"}),
    (Filters(price_min=15, price_max=15), {"milk"}),
    (Filters(in_stock=True), {"milk", "apple", "banana", "bread"}),
    (Filters(in_stock=False), {"cheese"}),
    (Filters(exclude_product_ids=["milk", "apple"]), {"cheese", "banana", "bread"}),
    (Filters(categories=["dairy"], in_stock=True), {"milk"}),
    (Filters(tags=["organic"], price_max=20, exclude_product_ids=["milk"]), {"apple"}),
    (Filters(categories=["fruit", "bakery"], brands=["chiquita", "pågen"], in_stock=True, price_min=1), {"bread"}),
]


def case_id(filters: Filters) -> str:
    return ",".join(f"{k}={v}" for k, v in filters.model_dump(exclude_defaults=True).items()) or "none"


@pytest.mark.parametrize(("filters", "expected"), FILTER_CASES, ids=[case_id(f) for f, _ in FILTER_CASES])
async def test_filters(filled: VectorStore, filters: Filters, expected: set[str]) -> None:
    assert await product_ids_of(filled, filters) == expected
    assert await filled.count(filters) == sum(IMAGES_PER_PRODUCT[p] for p in expected)


async def test_count_without_filters(filled: VectorStore) -> None:
    assert await filled.count() == TOTAL_POINTS
    assert await filled.count(None) == TOTAL_POINTS
    assert (await filled.info()).points == TOTAL_POINTS  # type: ignore[union-attr]


# --- deletes and scroll -----------------------------------------------------------------------


async def test_delete_products_returns_points_removed(filled: VectorStore) -> None:
    assert await filled.delete_products(["banana", "milk", "ghost"]) == 5
    assert await filled.count() == TOTAL_POINTS - 5
    assert await product_ids_of(filled, None) == {"cheese", "apple", "bread"}
    assert await filled.delete_products(["banana"]) == 0
    assert await filled.delete_products([]) == 0


async def test_delete_points(filled: VectorStore) -> None:
    points = make_points()
    await filled.delete_points([points[0].id, "not-a-uuid", point_id_for("ghost", "g.jpg")])
    assert await filled.count() == TOTAL_POINTS - 1
    assert await filled.retrieve([points[0].id]) == []
    assert await filled.count(Filters(categories=["dairy"])) == 2


async def test_scroll_returns_every_point(filled: VectorStore) -> None:
    points = {p.id: p for p in make_points()}
    seen = [p async for p in filled.scroll(batch_size=3)]
    assert sorted(p.point_id for p in seen) == sorted(points)
    assert all(p.vector is None and p.payload == points[p.point_id].payload for p in seen)
    with_vectors = [p async for p in filled.scroll(batch_size=100, with_vectors=True)]
    assert len(with_vectors) == TOTAL_POINTS
    for p in with_vectors:
        assert p.vector == pytest.approx(points[p.point_id].vector, abs=1e-5)


async def test_scroll_of_some_products_only(filled: VectorStore) -> None:
    points = make_points()
    wanted = sorted({points[0].payload["product_id"], points[-1].payload["product_id"]})
    expected = sorted(p.id for p in points if p.payload["product_id"] in wanted)
    seen = [p async for p in filled.scroll(batch_size=1, product_ids=wanted)]
    assert sorted(p.point_id for p in seen) == expected and len(expected) < TOTAL_POINTS
    assert [p async for p in filled.scroll(product_ids=[])] == []
    assert [p async for p in filled.scroll(product_ids=["no-such-product"])] == []


async def test_scroll_empty_collection(store: VectorStore) -> None:
    await store.ensure_collection(ENCODER, DIM)
    assert [p async for p in store.scroll()] == []


async def test_closed_store_refuses_calls(filled: VectorStore) -> None:
    await filled.close()
    await filled.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        await filled.count()


# --- embedded engine only ---------------------------------------------------------------------


async def test_edge_persists_across_close_and_reopen(tmp_path: Path) -> None:
    first = EdgeStore(tmp_path, "products")
    await first.ensure_collection(ENCODER, DIM)
    await first.upsert(make_points())
    await first.delete_products(["cheese"])
    await first.close()

    second = EdgeStore(tmp_path, "products")
    try:
        info = await second.info()
        assert info is not None and (info.encoder_id, info.dim, info.points) == (ENCODER, DIM, TOTAL_POINTS - 1)
        assert await second.count(Filters(in_stock=False)) == 0
        assert await product_ids_of(second, Filters(tags=["organic"])) == {"milk", "apple"}
        with pytest.raises(EncoderMismatchError):
            await second.ensure_collection("other-encoder", DIM)
        assert second.optimize() in (True, False)
        assert await second.count() == TOTAL_POINTS - 1
    finally:
        await second.close()
    meta = (tmp_path / "products.visearch.json").read_text()
    assert '"encoder_id": "test-encoder@v1"' in meta and '"visearch_schema": 2' in meta and "created_at" in meta


async def test_edge_second_opener_is_locked_out(tmp_path: Path) -> None:
    first = EdgeStore(tmp_path, "products")
    await first.ensure_collection(ENCODER, DIM)
    with pytest.raises(StoreLockedError) as err:
        EdgeStore(tmp_path, "products")
    message = str(err.value)
    assert str(tmp_path) in message and "another visearch process" in message and "VISEARCH_QDRANT_URL" in message
    await first.close()
    again = EdgeStore(tmp_path, "products")  # released on close
    assert (await again.info()) is not None
    await again.close()


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_edge_lock_holds_across_processes(tmp_path: Path) -> None:
    owner = EdgeStore(tmp_path, "products")
    try:
        result = run_python(f"""
            from visearch.core.errors import StoreLockedError
            from visearch.core.store.edge import EdgeStore
            try:
                EdgeStore({str(tmp_path)!r}, "products")
            except StoreLockedError as exc:
                print("LOCKED", exc)
        """)
        assert "LOCKED" in result.stdout, result.stderr
        assert str(tmp_path) in result.stdout
    finally:
        await owner.close()


async def test_edge_upsert_survives_a_crash(tmp_path: Path) -> None:
    """`upsert` is durable when it returns: the writer dies without close(), the data is there."""
    result = run_python(f"""
        import asyncio, os
        from visearch.core.store.edge import EdgeStore
        from tests.core.test_store import ENCODER, DIM, make_points

        async def main():
            store = EdgeStore({str(tmp_path)!r}, "products")
            await store.ensure_collection(ENCODER, DIM)
            await store.upsert(make_points())
            os._exit(0)

        asyncio.run(main())
    """)
    assert result.returncode == 0, result.stderr
    store = EdgeStore(tmp_path, "products")
    try:
        assert await store.count() == TOTAL_POINTS
    finally:
        await store.close()


async def test_edge_shard_without_metadata_is_reported(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path, "products")
    await store.ensure_collection(ENCODER, DIM)
    await store.upsert(make_points())
    await store.close()
    (tmp_path / "products.visearch.json").unlink()
    store = EdgeStore(tmp_path, "products")
    try:
        with pytest.raises(StoreError, match="--recreate"):
            await store.info()
        info = await store.ensure_collection(ENCODER, DIM, recreate=True)
        assert info.points == 0
    finally:
        await store.close()


async def test_edge_unwritable_data_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="VISEARCH_DATA_DIR"):
        EdgeStore(blocker / "data", "products")


# --- server only ------------------------------------------------------------------------------


async def test_server_unreachable_names_url_and_hides_key() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    store = ServerStore("products", url=url, api_key="top-secret-key", timeout=2)
    try:
        with pytest.raises(StoreError) as err:
            await store.info()
    finally:
        await store.close()
    message = str(err.value)
    assert url in message and "VISEARCH_QDRANT_URL" in message
    assert "top-secret-key" not in message
    assert not isinstance(err.value, CollectionNotFoundError)


async def test_server_metadata_lives_in_collection_metadata() -> None:
    store = ServerStore("products", location=":memory:")
    try:
        await store.ensure_collection(ENCODER, DIM)
        described = await store._client.get_collection("products")
        assert described.config.metadata is not None
        assert described.config.metadata["visearch"]["encoder_id"] == ENCODER
        assert await store.count() == 0  # no reserved metadata point
    finally:
        await store.close()


# --- factory ----------------------------------------------------------------------------------


async def test_open_store_picks_the_backend(tmp_path: Path) -> None:
    edge = open_store(load_settings(data_dir=tmp_path, qdrant_url=None))
    assert isinstance(edge, EdgeStore) and edge.backend == "edge"
    await edge.close()
    server = open_store(load_settings(data_dir=tmp_path, qdrant_url="http://127.0.0.1:1", qdrant_api_key="k"))
    assert isinstance(server, ServerStore) and server.backend == "server"
    await server.close()
