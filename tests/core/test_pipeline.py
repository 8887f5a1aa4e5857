"""The indexing pipeline on the real offline encoder and real stores, with real grocery photos.

Good and bad images come from local files and from a real HTTP server on 127.0.0.1. The encoder
is the real one, wrapped only to count (and, for the interruption tests, to stop) its calls; the
store is the real one (embedded engine, and qdrant-client's in-memory mode), wrapped to count writes.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.fakes.http_server import Reply, ScriptedServer, http_server
from visearch.core.config import Settings, load_settings
from visearch.core.domain import PointRecord, point_id_for
from visearch.core.errors import CatalogError
from visearch.core.ingest import IndexSummary, index_catalog
from visearch.core.store.base import VectorStore
from visearch.core.store.factory import open_store
from visearch.indexer.progress import TqdmProgress

REPO = Path(__file__).resolve().parents[2]
N = 6  # good products in the basic catalog; batch_size=2 makes that three batches


class CountingEncoder:
    """The real encoder, counting embedded images; `before_batch(n)` runs before the n-th call (from 0)."""

    def __init__(self, inner: Any, before_batch: Callable[[int], None] | None = None) -> None:
        self.inner = inner
        self.model_id, self.dim = inner.model_id, inner.dim
        self.min_score_image, self.min_score_text = inner.min_score_image, inner.min_score_text
        self.images = 0
        self.batches = 0
        self.before_batch = before_batch

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        if self.before_batch is not None:
            self.before_batch(self.batches)
        self.batches += 1
        self.images += len(images)
        return self.inner.embed_images(images)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self.inner.embed_texts(texts)


class CountingStore:
    """A real store, counting what is written (points upserted, payloads set, deletions, local features)
    and how often local features are read."""

    def __init__(self, inner: VectorStore) -> None:
        self.inner = inner
        self.writes: Counter[str] = Counter()
        self.feature_reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def upsert(self, points: Sequence[PointRecord]) -> None:
        self.writes["upsert"] += len(points)
        await self.inner.upsert(points)

    async def set_payload(self, point_id: str, payload: dict) -> None:
        self.writes["set_payload"] += 1
        await self.inner.set_payload(point_id, payload)

    async def delete_points(self, point_ids: Sequence[str]) -> None:
        self.writes["delete_points"] += len(point_ids)
        await self.inner.delete_points(point_ids)

    async def delete_products(self, product_ids: Sequence[str]) -> int:
        self.writes["delete_products"] += len(product_ids)
        return await self.inner.delete_products(product_ids)

    async def put_features(self, version: str, items: Mapping[str, bytes]) -> None:
        self.writes["put_features"] += len(items)
        await self.inner.put_features(version, items)

    async def get_features(self, version: str, hashes: Sequence[str]) -> dict[str, bytes]:
        self.feature_reads += 1
        return await self.inner.get_features(version, hashes)


# --- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def photos(grocery_dir: Path) -> list[Path]:
    """Eight real phone photos of different products."""
    found = sorted((grocery_dir / "train").rglob("*_001.jpg"))[:8]
    assert len(found) == 8, "the grocery dataset should have at least 8 products"
    return found


@pytest.fixture
def catalog_dir(tmp_path: Path, photos: list[Path]) -> Path:
    root = tmp_path / "catalog"
    root.mkdir()
    for i, photo in enumerate(photos):
        shutil.copyfile(photo, root / f"p{i}.jpg")
    return root


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(
        data_dir=tmp_path / "data", encoder="offline", batch_size=2, fetch_retries=1, fetch_concurrency=4
    )


@pytest.fixture(params=["edge", "memory"])
async def store(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[CountingStore]:
    """The embedded engine, and the server backend on qdrant-client's in-memory mode."""
    if request.param == "edge":
        inner = open_store(settings)
    else:
        from visearch.core.store.server import ServerStore

        inner = ServerStore(settings.collection, location=":memory:")
    try:
        yield CountingStore(inner)
    finally:
        await inner.close()


@pytest.fixture
async def edge_store(settings: Settings) -> AsyncIterator[CountingStore]:
    inner = open_store(settings)
    try:
        yield CountingStore(inner)
    finally:
        await inner.close()


def good_rows(n: int = N) -> list[dict[str, str]]:
    return [
        {
            "id": f"p{i}",
            "title": f"Product {i}",
            "image": f"p{i}.jpg",
            "price": f"1{i}.50",
            "category": "Fruit" if i % 2 else "Dairy",
            "in_stock": "yes",
        }
        for i in range(n)
    ]


def write_catalog(path: Path, rows: list[dict[str, str]]) -> Path:
    fields = list(dict.fromkeys(key for row in rows for key in row))
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


async def index(catalog: Path, encoder: Any, store: Any, settings: Settings, **kwargs: Any) -> IndexSummary:
    return await index_catalog(catalog, encoder, store, settings, **kwargs)


async def stored(store: Any, with_vectors: bool = False) -> dict[str, Any]:
    """point id -> StoredPoint, everything in the collection."""
    return {p.point_id: p async for p in store.scroll(with_vectors=with_vectors)}


def png_of_size(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("1", (width, height)).save(buf, format="PNG")
    return buf.getvalue()


# --- tests ------------------------------------------------------------------------------------


async def test_bad_rows_and_images_are_reported_and_the_rest_indexed(
    catalog_dir: Path, settings: Settings, http_server: ScriptedServer, edge_store: CountingStore, offline_encoder: Any
) -> None:
    photo = (catalog_dir / "p5.jpg").read_bytes()
    (catalog_dir / "broken.jpg").write_bytes(photo[: len(photo) // 3])
    (catalog_dir / "empty.jpg").write_bytes(b"")
    (catalog_dir / "doc.jpg").write_bytes(b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer <<>>\n%%EOF\n")
    (catalog_dir / "huge.png").write_bytes(png_of_size(8000, 6000))  # 48 MP > the 40 MP limit, 10 KB on disk
    busy = Reply(503, b"busy", "text/plain")
    remote = http_server.route("/p4.jpg", busy, Reply(200, (catalog_dir / "p4.jpg").read_bytes()))
    html = http_server.route("/page", Reply(200, b"<html>soon</html>", "text/html; charset=utf-8"))
    rows = [
        *good_rows(4),
        {"id": "remote", "title": "From a URL (503 first)", "image": remote},  # line 6
        {"id": "", "title": "No id", "image": "p0.jpg"},  # line 7
        {"id": "broken", "title": "Broken JPEG", "image": "broken.jpg"},  # line 8
        {"id": "empty", "title": "Zero bytes", "image": "empty.jpg"},  # line 9
        {"id": "pdf", "title": "PDF renamed", "image": "doc.jpg"},  # line 10
        {"id": "gone", "title": "404 URL", "image": http_server.url("/nope.jpg")},  # line 11
        {"id": "huge", "title": "Huge PNG", "image": "huge.png"},  # line 12
        {"id": "html", "title": "HTML page", "image": html},  # line 13
        {"id": "mixed", "title": "One good one bad", "image": "p6.jpg|missing.jpg"},  # line 14
        {"id": "cheap", "title": "Bad price", "image": "p7.jpg", "price": "ten"},  # line 15
        {"id": "bare", "title": "No image", "image": ""},  # line 16
    ]
    encoder = CountingEncoder(offline_encoder)
    summary = await index(write_catalog(catalog_dir / "catalog.csv", rows), encoder, edge_store, settings)

    assert not summary.ok
    counts = summary.counts()
    assert counts == {
        "products": 13,
        "images": 13,
        "indexed": 6,
        "embedded": 6,
        "unchanged": 0,
        "updated": 0,
        "skipped": 3,
        "failed": 7,
        "deleted": 0,
        "features": 6,
    }
    problems = {(p.line, p.product_id, p.image): p.reason for p in summary.problems}
    assert problems.pop((7, None, None)) == "missing id"
    assert problems.pop((8, "broken", "broken.jpg")).startswith("broken or truncated JPEG image")
    assert problems.pop((9, "empty", "empty.jpg")) == "empty file (0 bytes)"
    assert problems.pop((10, "pdf", "doc.jpg")) == "not an image: PDF document"
    assert problems.pop((11, "gone", http_server.url("/nope.jpg"))) == "HTTP 404"
    assert problems.pop((12, "huge", "huge.png")).startswith("image too large: 8000x6000 (48.0 megapixels)")
    assert problems.pop((13, "html", html)) == "not an image (content-type text/html)"
    assert problems.pop((14, "mixed", "missing.jpg")) == f"file not found: {catalog_dir / 'missing.jpg'}"
    assert problems.pop((15, "cheap", None)) == "price: not a number ('ten')"
    assert problems.pop((16, "bare", None)) == "no image: a product needs at least one photo"
    assert not problems
    assert [p.line for p in summary.problems] == sorted(p.line or 0 for p in summary.problems)
    assert str(summary.problems[1]) == "line 8, product broken, image broken.jpg: " + summary.problems[1].reason

    assert encoder.images == 6 and http_server.hits["/p4.jpg"] == 2
    points = await stored(edge_store)
    assert {p.payload["product_id"] for p in points.values()} == {"p0", "p1", "p2", "p3", "remote", "mixed"}
    mixed = points[point_id_for("mixed", "p6.jpg")].payload
    assert mixed["image"] == "p6.jpg" and mixed["image_index"] == 0 and mixed["title"] == "One good one bad"
    assert mixed["image_sha256"] == hashlib.sha256((catalog_dir / "p6.jpg").read_bytes()).hexdigest()
    assert mixed["product_hash"] and mixed["f_category"] is None
    assert points[point_id_for("p1", "p1.jpg")].payload["f_category"] == "fruit"


async def test_second_run_does_no_work(
    catalog_dir: Path, settings: Settings, store: CountingStore, offline_encoder: Any
) -> None:
    catalog = write_catalog(catalog_dir / "catalog.csv", good_rows())
    encoder = CountingEncoder(offline_encoder)
    first = await index(catalog, encoder, store, settings)
    assert first.ok and (first.indexed, first.embedded, first.unchanged) == (N, N, 0)
    assert encoder.batches == 3 and store.writes == {"upsert": N, "put_features": N}

    store.writes.clear()
    second = await index(catalog, encoder, store, settings)
    assert second.ok and second.counts() == {
        "products": N,
        "images": N,
        "indexed": 0,
        "embedded": 0,
        "unchanged": N,
        "updated": 0,
        "skipped": 0,
        "failed": 0,
        "deleted": 0,
        "features": 0,
    }
    assert encoder.images == N  # nothing embedded
    assert not store.writes  # nothing written
    assert await store.count() == N


async def test_metadata_change_updates_payload_and_keeps_the_vector(
    catalog_dir: Path, settings: Settings, store: CountingStore, offline_encoder: Any
) -> None:
    catalog = write_catalog(catalog_dir / "catalog.csv", good_rows())
    encoder = CountingEncoder(offline_encoder)
    await index(catalog, encoder, store, settings)
    before = await stored(store, with_vectors=True)

    rows = good_rows()
    rows[0]["price"] = "99.5"
    rows[1]["title"] = "Renamed"
    for row in rows:
        row["colour"] = "red" if row["id"] == "p2" else ""  # a new unknown column, set on one product
    summary = await index(write_catalog(catalog, rows), encoder, store, settings)
    assert (summary.indexed, summary.updated, summary.unchanged, summary.embedded) == (0, 3, 3, 0)
    assert encoder.images == N

    after = await stored(store, with_vectors=True)
    assert after.keys() == before.keys()
    for pid, point in after.items():
        assert point.vector == pytest.approx(before[pid].vector, abs=1e-6)
    p0, p1, p2 = (after[point_id_for(f"p{i}", f"p{i}.jpg")].payload for i in range(3))
    assert p0["price"] == 99.5 and p1["title"] == "Renamed" and p2["colour"] == "red"
    assert p0["product_hash"] != before[point_id_for("p0", "p0.jpg")].payload["product_hash"]
    third = await index(catalog, encoder, store, settings)
    assert (third.unchanged, third.updated) == (N, 0)


async def test_changed_image_file_is_reembedded_in_place(
    catalog_dir: Path, settings: Settings, store: CountingStore, offline_encoder: Any
) -> None:
    catalog = write_catalog(catalog_dir / "catalog.csv", good_rows())
    encoder = CountingEncoder(offline_encoder)
    await index(catalog, encoder, store, settings)
    shutil.copyfile(catalog_dir / "p7.jpg", catalog_dir / "p0.jpg")  # new photo, same file name
    again = await index(catalog, encoder, store, settings)
    assert (again.indexed, again.embedded, again.unchanged) == (1, 1, N - 1)
    assert await store.count() == N
    [point] = await store.retrieve([point_id_for("p0", "p0.jpg")])
    assert point.payload["image_sha256"] == hashlib.sha256((catalog_dir / "p7.jpg").read_bytes()).hexdigest()


async def test_moved_and_dropped_images(
    catalog_dir: Path, settings: Settings, store: CountingStore, http_server: ScriptedServer, offline_encoder: Any
) -> None:
    """Same bytes at a new location reuse the stored vector; an image a row dropped is deleted."""
    rows = good_rows()
    rows[0]["image"] = "p0.jpg|p6.jpg"
    catalog = write_catalog(catalog_dir / "catalog.csv", rows)
    encoder = CountingEncoder(offline_encoder)
    await index(catalog, encoder, store, settings)
    assert await store.count() == N + 1

    moved = http_server.route("/cdn/p1.jpg", Reply(200, (catalog_dir / "p1.jpg").read_bytes()))
    rows = good_rows()
    rows[1]["image"] = moved  # p1's photo now comes from a URL: same bytes
    store.writes.clear()
    summary = await index(write_catalog(catalog, rows), encoder, store, settings)
    assert summary.ok
    assert (summary.indexed, summary.embedded, summary.unchanged, summary.deleted) == (1, 0, N - 2, 2)
    assert summary.updated == 1  # p0: its image list changed, so did its payload
    assert encoder.images == N + 1  # nothing embedded the second time
    points = await stored(store, with_vectors=True)
    assert set(points) == {point_id_for(f"p{i}", moved if i == 1 else f"p{i}.jpg") for i in range(N)}
    assert points[point_id_for("p0", "p0.jpg")].payload["images"] == ["p0.jpg"]


async def test_identical_images_are_embedded_once(
    catalog_dir: Path, settings: Settings, edge_store: CountingStore, offline_encoder: Any
) -> None:
    shutil.copyfile(catalog_dir / "p0.jpg", catalog_dir / "copy.jpg")
    rows = [*good_rows(3), {"id": "twin", "title": "Same photo", "image": "copy.jpg|p1.jpg"}]
    encoder = CountingEncoder(offline_encoder)
    summary = await index(write_catalog(catalog_dir / "catalog.csv", rows), encoder, edge_store, settings)
    assert (summary.indexed, summary.embedded) == (5, 3)
    assert encoder.images == 3
    points = await stored(edge_store, with_vectors=True)
    twin, original = points[point_id_for("twin", "copy.jpg")], points[point_id_for("p0", "p0.jpg")]
    assert twin.vector == pytest.approx(original.vector, abs=1e-6)


async def test_sync_removes_dropped_products_but_keeps_broken_rows(
    catalog_dir: Path, settings: Settings, store: CountingStore, offline_encoder: Any
) -> None:
    catalog = catalog_dir / "catalog.csv"
    await index(write_catalog(catalog, good_rows()), offline_encoder, store, settings)

    rows = good_rows(5)  # p5 is gone from the catalog
    rows[4]["price"] = "not a price"  # p4's row is broken: it must survive a sync
    rows[3]["image"] = ""  # p3 lost its images: reported, kept
    write_catalog(catalog, rows)
    plain = await index(catalog, offline_encoder, store, settings)
    assert plain.deleted == 0 and await store.count() == N  # without sync, products stay
    assert "its 1 stored image(s) are kept" in next(p.reason for p in plain.problems if p.product_id == "p3")

    synced = await index(catalog, offline_encoder, store, settings, sync=True)
    assert synced.deleted == 1 and not synced.ok
    assert {p.payload["product_id"] for p in (await stored(store)).values()} == {"p0", "p1", "p2", "p3", "p4"}
    assert "sync kept 1 product(s) whose catalog row has an error: p4" in synced.notes
    assert "sync removed 1 product(s) no longer in the catalog: p5" in synced.notes

    # a broken row without a readable id could be any product: sync then deletes nothing
    rows = [*good_rows(3), {"id": "", "title": "who am I", "image": "p3.jpg"}]
    anonymous = await index(write_catalog(catalog, rows), offline_encoder, store, settings, sync=True)
    assert anonymous.deleted == 0 and await store.count() == 5
    assert any(
        note.startswith("sync deleted nothing: 1 row(s) without a readable id (line 5)") for note in anonymous.notes
    )


async def test_interrupted_run_resumes_after_cancellation(
    catalog_dir: Path, settings: Settings, store: CountingStore, offline_encoder: Any
) -> None:
    """Ctrl-C under asyncio.run cancels the main task: here, while the second batch is embedded. The
    batches in flight (the first, and the second beside it on another worker) are finished and kept."""
    catalog = write_catalog(catalog_dir / "catalog.csv", good_rows())
    loop = asyncio.get_running_loop()
    task: asyncio.Task[IndexSummary] | None = None

    def cancel_on_second_batch(n: int) -> None:
        if n == 1:
            assert task is not None
            loop.call_soon_threadsafe(task.cancel)

    task = asyncio.create_task(
        index(catalog, CountingEncoder(offline_encoder, cancel_on_second_batch), store, settings)
    )
    with pytest.raises(asyncio.CancelledError):
        await task
    kept = await store.count()
    assert 2 <= kept < N  # the first batch was written and stays; the run stopped before the end

    resumed = CountingEncoder(offline_encoder)
    summary = await index(catalog, resumed, store, settings)
    assert (summary.indexed, summary.unchanged) == (N - kept, kept)
    assert resumed.images == N - kept
    assert await store.count() == N


async def test_interrupted_run_resumes_after_keyboard_interrupt(
    catalog_dir: Path, settings: Settings, offline_encoder: Any
) -> None:
    catalog = write_catalog(catalog_dir / "catalog.csv", good_rows())

    def interrupt_on_third_batch(n: int) -> None:
        if n == 2:
            raise KeyboardInterrupt

    store = open_store(settings)
    try:
        with pytest.raises(KeyboardInterrupt):
            await index(catalog, CountingEncoder(offline_encoder, interrupt_on_third_batch), store, settings)
    finally:
        await store.close()
    store = open_store(settings)  # as the next process would
    try:
        assert await store.count() == 4
        resumed = CountingEncoder(offline_encoder)
        summary = await index(catalog, resumed, store, settings)
        assert (summary.indexed, summary.unchanged, resumed.images) == (2, 4, 2)
    finally:
        await store.close()


KILLER = textwrap.dedent("""
    import asyncio, os, signal, sys
    from visearch.core.config import load_settings
    from visearch.core.encoders.offline import OfflineEncoder
    from visearch.core.store.factory import open_store
    from visearch.core.ingest import index_catalog

    class KilledOnThirdBatch:
        def __init__(self, inner):
            self.inner, self.calls = inner, 0
            self.model_id, self.dim = inner.model_id, inner.dim
            self.min_score_image, self.min_score_text = inner.min_score_image, inner.min_score_text
        def embed_images(self, images):
            self.calls += 1
            if self.calls == 3:  # two workers: a third batch starts only once one was written
                os.kill(os.getpid(), signal.SIGKILL)
            return self.inner.embed_images(images)
        def embed_texts(self, texts):
            return self.inner.embed_texts(texts)

    settings = load_settings(data_dir=sys.argv[2], encoder="offline", batch_size=2)
    asyncio.run(index_catalog(sys.argv[1], KilledOnThirdBatch(OfflineEncoder(backend="onnx")), open_store(settings), settings))
""")


@pytest.mark.slow
async def test_killed_process_loses_nothing_written(
    catalog_dir: Path, settings: Settings, offline_encoder: Any
) -> None:
    """kill -9 in the middle of a run: every batch written before stays, the next run does the rest."""
    catalog = write_catalog(catalog_dir / "catalog.csv", good_rows())
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", KILLER, str(catalog), str(settings.data_dir)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -9, proc.stderr[-2000:]

    store = open_store(settings)
    try:
        kept = await store.count()
        assert 2 <= kept < N
        resumed = CountingEncoder(offline_encoder)
        summary = await index(catalog, resumed, store, settings)
        assert (summary.indexed, summary.unchanged, resumed.images) == (N - kept, kept, N - kept)
        assert await store.count() == N
    finally:
        await store.close()


async def test_downloads_run_concurrently(
    catalog_dir: Path, settings: Settings, http_server: ScriptedServer, edge_store: CountingStore, offline_encoder: Any
) -> None:
    rows = good_rows()
    for row in rows:
        row["image"] = http_server.route(
            f"/{row['id']}.jpg", Reply(200, (catalog_dir / row["image"]).read_bytes(), delay_s=0.3)
        )
    summary = await index(write_catalog(catalog_dir / "catalog.csv", rows), offline_encoder, edge_store, settings)
    assert summary.ok and summary.indexed == N
    assert http_server.max_in_flight == settings.fetch_concurrency


async def test_jsonl_catalog_and_recreate(
    catalog_dir: Path, settings: Settings, http_server: ScriptedServer, edge_store: CountingStore, offline_encoder: Any
) -> None:
    url = http_server.route("/p2.png", Reply(200, (catalog_dir / "p2.jpg").read_bytes(), "image/png"))
    lines = [
        {
            "id": "j1",
            "title": "Lamp",
            "images": ["p0.jpg", url],
            "tags": ["home", "Light"],
            "price": 20,
            "in_stock": False,
            "sku": {"group": 7},
        },
        {"id": "j2", "title": "Chair", "image": "p1.jpg"},
    ]
    catalog = catalog_dir / "catalog.jsonl"
    catalog.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    encoder = CountingEncoder(offline_encoder)
    first = await index(catalog, encoder, edge_store, settings)
    assert first.ok and first.indexed == 3
    [point] = await edge_store.retrieve([point_id_for("j1", url)])
    assert point.payload["image_index"] == 1 and point.payload["sku"] == {"group": 7}
    assert point.payload["f_tags"] == ["home", "light"] and point.payload["in_stock"] is False

    again = await index(catalog, encoder, edge_store, settings, recreate=True)
    assert (again.indexed, again.unchanged, encoder.images) == (3, 0, 6)
    assert await edge_store.count() == 3


async def test_progress_bar_goes_to_stderr(
    catalog_dir: Path,
    settings: Settings,
    edge_store: CountingStore,
    offline_encoder: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    catalog = write_catalog(catalog_dir / "catalog.csv", good_rows())
    with TqdmProgress() as progress:
        await index_catalog(catalog, offline_encoder, edge_store, settings, progress=progress)
    out, err = capsys.readouterr()
    assert out == ""
    assert "indexing" in err and f"{N}/{N}" in err and ("img/s" in err or "s/img" in err)
    with TqdmProgress(enabled=False) as progress:
        await index_catalog(catalog, offline_encoder, edge_store, settings, progress=progress)
    assert capsys.readouterr() == ("", "")
    await index_catalog(catalog, offline_encoder, edge_store, settings)
    assert capsys.readouterr() == ("", "")


async def test_unreadable_catalog_touches_nothing(
    tmp_path: Path, settings: Settings, edge_store: CountingStore, offline_encoder: Any
) -> None:
    with pytest.raises(CatalogError, match="no id, title column"):
        await index(
            write_catalog(tmp_path / "c.csv", [{"sku": "1", "name": "x"}]),
            offline_encoder,
            edge_store,
            settings,
            sync=True,
        )
    assert await edge_store.info() is None


async def test_other_encoder_is_refused_before_any_work(
    catalog_dir: Path, settings: Settings, edge_store: CountingStore, offline_encoder: Any, tiny_clip_dir: Path
) -> None:
    from visearch.core.encoders.clip import ClipEncoder
    from visearch.core.errors import EncoderMismatchError

    catalog = write_catalog(catalog_dir / "catalog.csv", good_rows())
    await index(catalog, offline_encoder, edge_store, settings)
    clip = ClipEncoder(str(tiny_clip_dir), device="cpu", batch_size=8)
    edge_store.writes.clear()
    with pytest.raises(EncoderMismatchError, match=r"offline:.*clip:"):
        await index(catalog, clip, edge_store, settings, sync=True)
    assert not edge_store.writes and await edge_store.count() == N


async def test_summary_says_where_the_time_went(
    catalog_dir: Path, settings: Settings, store: CountingStore, offline_encoder: Any
) -> None:
    """`--json` reports seconds per pipeline stage: what a shop owner with a slow run looks at first."""
    from visearch.core.ingest.summary import STAGES

    summary = await index(write_catalog(catalog_dir / "catalog.csv", good_rows()), offline_encoder, store, settings)
    seconds = summary.as_dict()["seconds"]
    assert set(seconds) <= set(STAGES)
    assert list(seconds) == [stage for stage in STAGES if stage in seconds]  # pipeline order
    for stage in ("fetch", "decode", "image vectors", "colours", "write"):
        assert seconds[stage] > 0, stage
    assert "ocr" not in seconds or seconds["ocr"] < 0.01  # OCR is off: nothing was read


async def test_many_workers_embed_each_image_once_and_write_every_product(
    catalog_dir: Path, tmp_path: Path, offline_encoder: Any
) -> None:
    """Four batches in flight at once (VISEARCH_ENCODER_WORKERS): every product is written once, with the
    vector it has when embedded alone, and repeated bytes are still embedded once."""
    settings = load_settings(data_dir=tmp_path / "many", encoder="offline", batch_size=1, encoder_workers=4)
    shutil.copyfile(catalog_dir / "p2.jpg", catalog_dir / "again.jpg")
    rows = [*good_rows(), {"id": "again", "title": "Same bytes", "image": "again.jpg"}]
    encoder = CountingEncoder(offline_encoder)
    store = open_store(settings)
    try:
        summary = await index(write_catalog(catalog_dir / "catalog.csv", rows), encoder, store, settings)
        assert summary.ok and (summary.indexed, summary.embedded) == (N + 1, N)
        assert encoder.images == N
        points = await stored(store, with_vectors=True)
        assert len(points) == N + 1
        alone = offline_encoder.embed_images([Image.open(catalog_dir / "p2.jpg").convert("RGB")])[0]
        for pid in (point_id_for("p2", "p2.jpg"), point_id_for("again", "again.jpg")):
            assert float(np.dot(points[pid].vector, alone)) > 0.999
    finally:
        await store.close()
