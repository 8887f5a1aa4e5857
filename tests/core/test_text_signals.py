"""Text signals: the catalog's words as a second vector, OCR of product photos, and their fusion with the photos."""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

import visearch.core.store.schema as store_schema
from visearch.core.config import load_settings
from visearch.core.domain import Hit, PointRecord, Query
from visearch.core.errors import StoreError
from visearch.core.fusion import Signal, fuse, has_all_terms, query_terms
from visearch.core.ingest import index_catalog
from visearch.core.ocr import TextReader
from visearch.core.search import SearchService
from visearch.core.store.base import VectorStore
from visearch.core.store.edge import EdgeStore
from visearch.core.store.factory import open_store
from visearch.core.store.server import ServerStore

DIM, TEXT_DIM = 6, 4


def unit(values: list[float]) -> list[float]:
    arr = np.asarray(values, dtype=np.float32)
    return (arr / np.linalg.norm(arr)).tolist()


def record(product: str, image: list[float], text: list[float] | None) -> PointRecord:
    from visearch.core.domain import point_id_for

    return PointRecord(
        id=point_id_for(product, "a.jpg"),
        vector=unit(image),
        payload={"product_id": product},
        text_vector=unit(text) if text else None,
    )


@pytest.fixture(params=["edge", "server"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[VectorStore]:
    s: VectorStore = EdgeStore(tmp_path, "p") if request.param == "edge" else ServerStore("p", location=":memory:")
    yield s
    await s.close()


# --- the store: a second named vector ------------------------------------------------------------


async def test_text_vector_is_searched_apart_from_the_image_vector(store: VectorStore) -> None:
    info = await store.ensure_collection("enc", DIM, text_dim=TEXT_DIM)
    assert info.text_dim == TEXT_DIM
    await store.upsert(
        [
            record("looks-right", [1, 0, 0, 0, 0, 0], [0, 1, 0, 0]),
            record("reads-right", [0, 1, 0, 0, 0, 0], [1, 0, 0, 0]),
        ]
    )
    by_image = await store.search(unit([1, 0, 0, 0, 0, 0]), None, 2)
    by_words = await store.search(unit([1, 0, 0, 0]), None, 2, using="text")
    assert by_image[0].payload["product_id"] == "looks-right"
    assert by_words[0].payload["product_id"] == "reads-right"
    assert by_words[0].score == pytest.approx(1.0, abs=1e-5)
    (back,) = await store.retrieve([by_words[0].point_id], with_vectors=True)
    assert back.vector == pytest.approx(unit([0, 1, 0, 0, 0, 0]), abs=1e-6)
    assert back.text_vector == pytest.approx(unit([1, 0, 0, 0]), abs=1e-6)


async def test_text_vector_of_the_wrong_size_is_refused_by_name(store: VectorStore) -> None:
    await store.ensure_collection("enc", DIM, text_dim=TEXT_DIM)
    with pytest.raises(StoreError, match="3-d text vector"):
        await store.upsert([record("x", [1, 0, 0, 0, 0, 0], [1, 0, 0])])


async def test_image_only_collection_has_no_words_to_search(store: VectorStore) -> None:
    info = await store.ensure_collection("enc", DIM)
    assert info.text_dim is None
    await store.upsert([record("x", [1, 0, 0, 0, 0, 0], [1, 0, 0, 0])])  # the text vector is dropped, not an error
    assert await store.search(unit([1, 0, 0, 0]), None, 5, using="text") == []
    assert len(await store.search(unit([1, 0, 0, 0, 0, 0]), None, 5)) == 1


async def test_collection_from_before_text_signals_still_opens_and_searches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A schema-1 collection (one unnamed vector) written by an older visearch keeps working, image side only."""
    with monkeypatch.context() as patch:
        patch.setattr(store_schema, "SCHEMA_VERSION", 1)
        old = EdgeStore(tmp_path, "p")
        await old.ensure_collection("enc", DIM)
        await old.upsert([record("x", [1, 0, 0, 0, 0, 0], None)])
        await old.close()
    assert '"visearch_schema": 1' in (tmp_path / "p.visearch.json").read_text()
    reopened = EdgeStore(tmp_path, "p")
    try:
        info = await reopened.ensure_collection("enc", DIM, text_dim=TEXT_DIM)
        assert info.text_dim is None and info.points == 1
        await reopened.upsert([record("y", [0, 1, 0, 0, 0, 0], [1, 0, 0, 0])])
        hits = await reopened.search(unit([0, 1, 0, 0, 0, 0]), None, 5)
        assert hits[0].payload["product_id"] == "y"
        assert await reopened.search(unit([1, 0, 0, 0]), None, 5, using="text") == []
        (point,) = await reopened.retrieve([hits[0].point_id], with_vectors=True)
        assert point.vector is not None and point.text_vector is None
    finally:
        await reopened.close()


# --- fusion --------------------------------------------------------------------------------------


def hits(*products: str, score: float = 0.5) -> list[Hit]:
    return [Hit(point_id=p, score=score - i * 0.01, payload={"product_id": p}) for i, p in enumerate(products)]


@pytest.mark.parametrize("method", ["rrf", "weighted"])
def test_fusion_puts_what_both_signals_found_first(method: str) -> None:
    fused = fuse(
        [Signal("image", hits("a", "b", "c"), cut_off=0.3), Signal("words", hits("c", "d"), cut_off=0.3)], method
    )  # type: ignore[arg-type]
    assert fused[0].payload["product_id"] == "c"
    assert {h.payload["product_id"] for h in fused} == {"a", "b", "c", "d"}
    assert set(fused[0].signals) == {"image", "words"}


def test_fusion_weights_tilt_the_ranking() -> None:
    image, words = hits("a", "b"), hits("b", "a")
    assert fuse([Signal("image", image, 2.0), Signal("words", words, 1.0)])[0].payload["product_id"] == "a"
    assert fuse([Signal("image", image, 1.0), Signal("words", words, 2.0)])[0].payload["product_id"] == "b"
    assert [h.payload["product_id"] for h in fuse([Signal("image", image, 1.0), Signal("words", [], 1.0)])] == [
        "a",
        "b",
    ]


def test_literal_match_needs_every_query_word_in_the_products_own_words() -> None:
    payload = {"title": "Item 1", "brand": None, "tags": ["Organic", "fresh"], "ocr_text": "TROPICANA Orange Juice"}
    assert has_all_terms(query_terms("tropicana"), payload)
    assert has_all_terms(query_terms("a Tropicana juice"), payload)  # "a" is a stop word
    assert has_all_terms(query_terms("organic orange"), payload)
    assert not has_all_terms(query_terms("tropicana apple"), payload)
    assert not has_all_terms(query_terms("the"), payload)  # nothing left to match: no literal match


# --- OCR -----------------------------------------------------------------------------------------


def label(*lines: str, size: tuple[int, int] = (480, 320)) -> Image.Image:
    """A product label: coloured box, big white letters (Pillow's bundled font, no system fonts)."""
    img = Image.new("RGB", size, (236, 228, 210))
    draw = ImageDraw.Draw(img)
    draw.rectangle([30, 50, size[0] - 30, size[1] - 50], fill=(170, 30, 40))
    for i, line in enumerate(lines):
        draw.text((55, 80 + i * 70), line, font=ImageFont.load_default(size=52), fill="white")
    return img


@pytest.fixture(scope="module")
def reader() -> TextReader:
    return TextReader()


def test_ocr_reads_a_rendered_product_label(reader: TextReader) -> None:
    text = reader.read(label("TROPICANA", "Orange Juice"))
    assert "TROPICANA" in text.upper() and "ORANGE" in text.upper()
    assert text.upper().index("TROPICANA") < text.upper().index("ORANGE")  # top line first


def test_ocr_of_a_photo_without_text_is_empty(reader: TextReader, grocery_dir: Path) -> None:
    apple = sorted((grocery_dir / "iconic-images-and-descriptions" / "Fruit" / "Apple").rglob("*.jpg"))[0]
    assert len(reader.read(Image.open(apple))) <= 3  # at most a stray digit on a fruit sticker


def test_ocr_scales_big_photos_down_first(reader: TextReader) -> None:
    big = label("TROPICANA", size=(480, 320)).resize((4800, 3200))
    assert "TROPICANA" in reader.read(big).upper()


# --- the whole path: catalog words and OCR text reach text queries -------------------------------


def write_catalog(root: Path, rows: list[dict[str, str]]) -> Path:
    with (root / "catalog.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["id", "title", "description", "image"])
        writer.writeheader()
        writer.writerows(rows)
    return root / "catalog.csv"


@pytest.fixture(scope="module")
def shoe_photos(clothing_dir: Path) -> list[Path]:
    with (clothing_dir / "images.csv").open(encoding="utf-8") as fh:
        names = [r["image"] for r in csv.DictReader(fh) if r["label"] == "Shoes"]
    return [clothing_dir / "images" / f"{n}.jpg" for n in names[:4]]


async def open_service(tmp_path: Path, encoder, **overrides: object) -> SearchService:
    settings = load_settings(data_dir=tmp_path / "data", encoder="offline", **overrides)
    return SearchService(encoder, open_store(settings), settings)


async def test_title_match_ranks_above_the_product_the_photos_prefer(
    tmp_path: Path, offline_encoder, shoe_photos: list[Path]
) -> None:
    """Four shoe photos; only one product says "sneakers". The image side alone ranks by looks;
    with the words fused in, the product titled "sneakers" comes first."""
    rows = [
        {"id": f"p{i}", "title": f"Item {i}", "description": "", "image": str(p)} for i, p in enumerate(shoe_photos)
    ]
    catalog = write_catalog(tmp_path, rows)
    image_only = await open_service(tmp_path, offline_encoder, weight_words=0.0, min_score_text=0.0)
    try:
        assert (await index_catalog(catalog, offline_encoder, image_only.store, image_only.settings)).ok
        by_looks = [c.product_id for c in (await image_only.search(Query(text="white sneakers", limit=4))).cards]
    finally:
        await image_only.close()
    assert len(by_looks) == 4
    underdog = by_looks[-1]  # the photo the image side likes least
    rows[int(underdog[1:])]["title"] = "White leather sneakers"
    write_catalog(tmp_path, rows)
    fused = await open_service(tmp_path, offline_encoder, min_score_text=0.0)
    try:
        summary = await index_catalog(catalog, offline_encoder, fused.store, fused.settings)
        assert summary.updated == 1 and summary.embedded == 0  # new words, same photo: no image re-embedding
        result = await fused.search(Query(text="white sneakers", limit=4))
        assert result.cards[0].product_id == underdog
        assert set(result.cards[0].signals) == {"image", "words"}
        photo_query = await fused.search(Query(images=[shoe_photos[0].read_bytes()], limit=1))
        assert photo_query.cards[0].product_id == "p0"  # photos still search by photo only
    finally:
        await fused.close()


async def test_words_read_off_a_photo_find_the_product(tmp_path: Path, offline_encoder) -> None:
    """OCR at index time: a brand printed on the box (and nowhere in the catalog) answers a text query."""
    label("TROPICANA", "Orange Juice").save(tmp_path / "box.jpg")
    Image.new("RGB", (320, 320), (240, 240, 240)).save(tmp_path / "plain.jpg")
    catalog = write_catalog(
        tmp_path,
        [
            {"id": "box", "title": "Item 1", "description": "", "image": str(tmp_path / "box.jpg")},
            {"id": "plain", "title": "Item 2", "description": "", "image": str(tmp_path / "plain.jpg")},
        ],
    )
    service = await open_service(tmp_path, offline_encoder, ocr=True)
    try:
        assert (await index_catalog(catalog, offline_encoder, service.store, service.settings)).ok
        (point,) = [p async for p in service.store.scroll() if p.payload["product_id"] == "box"]
        assert "TROPICANA" in point.payload["ocr_text"].upper()
        result = await service.search(Query(text="tropicana", limit=5))
        assert [c.product_id for c in result.cards] == ["box"]
        assert "words" in result.cards[0].signals  # found by its words (literally: "tropicana" is on the box)
    finally:
        await service.close()


async def test_turning_ocr_on_reads_photos_already_indexed(tmp_path: Path, offline_encoder) -> None:
    label("TROPICANA").save(tmp_path / "box.jpg")
    catalog = write_catalog(
        tmp_path, [{"id": "box", "title": "Item 1", "description": "", "image": str(tmp_path / "box.jpg")}]
    )
    service = await open_service(tmp_path, offline_encoder)
    try:
        assert (await index_catalog(catalog, offline_encoder, service.store, service.settings)).ok
        assert (await service.search(Query(text="tropicana", limit=5))).no_match
        service.settings = service.settings.model_copy(update={"ocr": True})
        summary = await index_catalog(catalog, offline_encoder, service.store, service.settings)
        assert summary.embedded == 1 and summary.unchanged == 0
        assert [c.product_id for c in (await service.search(Query(text="tropicana", limit=5))).cards] == ["box"]
    finally:
        await service.close()


async def test_unrelated_words_still_get_no_match(tmp_path: Path, offline_encoder, shoe_photos: list[Path]) -> None:
    rows = [
        {
            "id": "s",
            "title": "White leather sneakers",
            "description": "Comfortable everyday shoes",
            "image": str(shoe_photos[0]),
        }
    ]
    service = await open_service(tmp_path, offline_encoder)
    try:
        assert (await index_catalog(write_catalog(tmp_path, rows), offline_encoder, service.store, service.settings)).ok
        assert (await service.search(Query(text="where is my order", limit=5))).no_match
        assert not (await service.search(Query(text="shoes", limit=5))).no_match
    finally:
        await service.close()


async def test_show_more_pages_a_fused_text_query(tmp_path: Path, offline_encoder, shoe_photos: list[Path]) -> None:
    rows = [
        {"id": f"p{i}", "title": f"Sneakers model {i}", "description": "", "image": str(p)}
        for i, p in enumerate(shoe_photos)
    ]
    service = await open_service(tmp_path, offline_encoder)
    try:
        assert (await index_catalog(write_catalog(tmp_path, rows), offline_encoder, service.store, service.settings)).ok
        first = await service.search(Query(text="sneakers", limit=2))
        assert first.next_cursor is not None
        second = await service.search(Query(cursor=first.next_cursor, limit=2))
        seen = [c.product_id for c in first.cards + second.cards]
        assert sorted(seen) == ["p0", "p1", "p2", "p3"]
    finally:
        await service.close()
