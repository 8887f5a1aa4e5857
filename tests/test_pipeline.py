"""The indexing pipeline on the real offline encoder and the embedded Qdrant engine.

Good and bad images come from local files and from a real HTTP server on 127.0.0.1.
The encoder is the real one, wrapped only to count how many images it was asked to embed.
"""

from __future__ import annotations

import csv
import io
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.config import Settings, load_settings
from core.store.factory import open_store
from indexer.pipeline import index_catalog
from tests.fakes.http_server import Reply, ScriptedServer, scripted_server

SAMPLE = Path(__file__).resolve().parents[1] / "indexer" / "demo_data" / "grocery"
GOOD = ["banana", "granny-smith", "arla-standard-milk", "red-bell-pepper"]


class CountingEncoder:
    """The real encoder, counting embedded images; can stop the run after N batches (a 'kill')."""

    def __init__(self, inner, stop_after_batches: int | None = None) -> None:
        self.inner = inner
        self.model_id, self.dim = inner.model_id, inner.dim
        self.min_score_image, self.min_score_text = inner.min_score_image, inner.min_score_text
        self.images = 0
        self.batches = 0
        self.stop_after_batches = stop_after_batches

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        if self.stop_after_batches is not None and self.batches >= self.stop_after_batches:
            raise RuntimeError("killed")
        self.batches += 1
        self.images += len(images)
        return self.inner.embed_images(images)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self.inner.embed_texts(texts)


def huge_png() -> bytes:
    """A 20000x20000 PNG that is tiny on disk (1-bit, one colour)."""
    buf = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buf, format="PNG")
    return buf.getvalue()


def write_catalog(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["id", "title", "image", "price", "category", "in_stock"])
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def huge_png_bytes() -> bytes:
    return huge_png()


@pytest.fixture
def server() -> ScriptedServer:
    with scripted_server() as srv:
        yield srv


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(data_dir=tmp_path / "data", encoder="offline", batch_size=2, fetch_retries=1)


@pytest.fixture
def catalog_dir(tmp_path: Path) -> Path:
    root = tmp_path / "catalog"
    root.mkdir()
    for name in GOOD:
        shutil.copyfile(SAMPLE / "images" / f"{name}.jpg", root / f"{name}.jpg")
    return root


def good_rows() -> list[dict[str, str]]:
    return [{"id": name, "title": name.replace("-", " "), "image": f"{name}.jpg", "price": "10",
             "category": "test", "in_stock": "true"} for name in GOOD]


async def test_bad_rows_and_images_are_reported_and_the_rest_indexed(
    catalog_dir: Path, settings: Settings, server: ScriptedServer, offline_encoder, huge_png_bytes: bytes
) -> None:
    jpeg = (SAMPLE / "images" / "avocado.jpg").read_bytes()
    (catalog_dir / "broken.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    (catalog_dir / "empty.jpg").write_bytes(b"")
    (catalog_dir / "doc.jpg").write_bytes(b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer <<>>\n%%EOF\n")
    (catalog_dir / "huge.png").write_bytes(huge_png_bytes)
    remote_ok = server.route("/avocado.jpg", Reply(200, jpeg))
    rows = good_rows() + [
        {"id": "remote", "title": "Avocado from URL", "image": remote_ok},
        {"id": "", "title": "No id", "image": "banana.jpg"},                                       # line 7
        {"id": "broken", "title": "Broken JPEG", "image": "broken.jpg"},                           # line 8
        {"id": "empty", "title": "Zero bytes", "image": "empty.jpg"},                              # line 9
        {"id": "pdf", "title": "PDF renamed", "image": "doc.jpg"},                                 # line 10
        {"id": "gone", "title": "404 URL", "image": server.url("/nope.jpg")},                      # line 11
        {"id": "huge", "title": "Huge PNG", "image": "huge.png"},                                  # line 12
        {"id": "html", "title": "HTML page", "image": server.route("/page", Reply(200, b"<html>", "text/html"))},  # 13
        {"id": "mixed", "title": "One good one bad", "image": "banana.jpg|missing.jpg"},           # line 14
    ]
    encoder = CountingEncoder(offline_encoder)
    store = open_store(settings)
    try:
        summary = await index_catalog(write_catalog(catalog_dir / "catalog.csv", rows), encoder, store, settings, progress=False)
        assert not summary.ok
        assert (summary.indexed, summary.skipped, summary.failed) == (6, 1, 7)
        problems = {(p.line, p.product_id): p.reason for p in summary.problems}
        assert problems[(7, None)] == "missing id"
        assert "truncated" in problems[(8, "broken")] or "broken" in problems[(8, "broken")]
        assert "0 bytes" in problems[(9, "empty")]
        assert "PDF" in problems[(10, "pdf")]
        assert "HTTP 404" in problems[(11, "gone")]
        assert "too large" in problems[(12, "huge")]
        assert "content-type text/html" in problems[(13, "html")]
        assert "not found" in problems[(14, "mixed")]
        assert await store.count() == 6
        assert encoder.images == 6
    finally:
        await store.close()


async def test_second_run_does_no_work_and_metadata_change_only_updates_payload(
    catalog_dir: Path, settings: Settings, offline_encoder
) -> None:
    catalog = write_catalog(catalog_dir / "catalog.csv", good_rows())
    encoder = CountingEncoder(offline_encoder)
    store = open_store(settings)
    try:
        first = await index_catalog(catalog, encoder, store, settings, progress=False)
        assert first.ok and first.indexed == 4
        second = await index_catalog(catalog, encoder, store, settings, progress=False)
        assert (second.indexed, second.unchanged) == (0, 4)
        assert encoder.images == 4

        rows = good_rows()
        rows[0]["price"] = "99.5"
        third = await index_catalog(write_catalog(catalog, rows), encoder, store, settings, progress=False)
        assert (third.indexed, third.updated, third.unchanged) == (0, 1, 3)
        assert encoder.images == 4
        [hit] = [p async for p in store.scroll() if p.payload["product_id"] == GOOD[0]]
        assert hit.payload["price"] == 99.5
    finally:
        await store.close()


async def test_changed_image_file_is_reembedded_in_place(catalog_dir: Path, settings: Settings, offline_encoder) -> None:
    catalog = write_catalog(catalog_dir / "catalog.csv", good_rows())
    encoder = CountingEncoder(offline_encoder)
    store = open_store(settings)
    try:
        await index_catalog(catalog, encoder, store, settings, progress=False)
        shutil.copyfile(SAMPLE / "images" / "avocado.jpg", catalog_dir / "banana.jpg")
        again = await index_catalog(catalog, encoder, store, settings, progress=False)
        assert (again.indexed, again.unchanged) == (1, 3)
        assert await store.count() == 4
    finally:
        await store.close()


async def test_sync_removes_dropped_products_and_images(catalog_dir: Path, settings: Settings, offline_encoder) -> None:
    rows = good_rows()
    rows[0]["image"] = "banana.jpg|granny-smith.jpg"
    catalog = write_catalog(catalog_dir / "catalog.csv", rows)
    store = open_store(settings)
    try:
        await index_catalog(catalog, offline_encoder, store, settings, progress=False)
        assert await store.count() == 5
        # drop one product, one image of another, and break one row: its product must be kept
        rows = good_rows()[:3]
        rows[2]["price"] = "not a price"
        plain = await index_catalog(write_catalog(catalog, rows[:2]), offline_encoder, store, settings, progress=False)
        assert plain.deleted == 1  # the dropped image; without --sync products stay
        assert await store.count() == 4
        synced = await index_catalog(write_catalog(catalog, rows), offline_encoder, store, settings, sync=True, progress=False)
        assert synced.deleted == 1  # red-bell-pepper; arla-standard-milk kept: its row failed to parse
        ids = {p.payload["product_id"] async for p in store.scroll()}
        assert ids == {"banana", "granny-smith", "arla-standard-milk"}
        assert any("kept 1 product" in note for note in synced.notes)
    finally:
        await store.close()


async def test_interrupted_run_resumes(catalog_dir: Path, settings: Settings, offline_encoder) -> None:
    catalog = write_catalog(catalog_dir / "catalog.csv", good_rows())
    store = open_store(settings)
    try:
        killed = CountingEncoder(offline_encoder, stop_after_batches=1)  # batch_size=2: dies on the 2nd batch
        with pytest.raises(RuntimeError, match="killed"):
            await index_catalog(catalog, killed, store, settings, progress=False)
    finally:
        await store.close()
    store = open_store(settings)  # a new process would reopen the directory
    try:
        assert await store.count() == 2
        resumed = CountingEncoder(offline_encoder)
        summary = await index_catalog(catalog, resumed, store, settings, progress=False)
        assert (summary.indexed, summary.unchanged) == (2, 2)
        assert resumed.images == 2
        assert await store.count() == 4
    finally:
        await store.close()


async def test_other_encoder_is_refused_before_any_work(catalog_dir: Path, settings: Settings, offline_encoder, tiny_clip_dir: Path) -> None:
    from core.encoders.clip import ClipEncoder
    from core.errors import EncoderMismatchError

    catalog = write_catalog(catalog_dir / "catalog.csv", good_rows())
    store = open_store(settings)
    try:
        await index_catalog(catalog, offline_encoder, store, settings, progress=False)
        clip = ClipEncoder(str(tiny_clip_dir), device="cpu", batch_size=8)
        with pytest.raises(EncoderMismatchError, match="offline:.*clip:"):
            await index_catalog(catalog, clip, store, settings, progress=False)
        assert await store.count() == 4
    finally:
        await store.close()
