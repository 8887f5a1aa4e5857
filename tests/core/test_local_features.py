"""Finding the exact product in a cluttered photo: local features, geometric verification, multi-crop
queries, and where the features are kept. Real parts only: OpenCV's SIFT, the offline encoder, the
embedded engine and the server backend (qdrant-client's in-process mode); the products are printed
"labels" generated here, photographed into a cluttered scene (scaled, rotated, among other prints)."""

from __future__ import annotations

import csv
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tests.core.test_pipeline import CountingStore
from visearch.core.config import Settings, load_settings
from visearch.core.domain import Hit, Query
from visearch.core.errors import ConfigError
from visearch.core.ingest import index_catalog
from visearch.core.local_features import (
    EXTRACTOR_VERSION,
    MAX_QUERY_FEATURES,
    LocalFeatures,
    crops,
    extract,
    plausible_warp,
    root_sift,
    verification_bonuses,
    verify,
)
from visearch.core.search import SearchService, mean_over_views
from visearch.core.store.factory import open_store
from visearch.core.store.server import ServerStore

PRODUCTS = 6
#: the product photographed in the cluttered query scene
SHOWN = 3


def printed_label(seed: int, size: tuple[int, int] = (300, 400)) -> Image.Image:
    """A product's printed packaging: random shapes in random colours (many stable corners, like a label)."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", size, tuple(int(c) for c in rng.integers(0, 255, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(60):
        x, y = int(rng.integers(0, size[0])), int(rng.integers(0, size[1]))
        w, h = (int(v) for v in rng.integers(8, 60, 2))
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        shape = int(rng.integers(0, 3))
        if shape == 0:
            draw.rectangle([x, y, x + w, y + h], fill=colour)
        elif shape == 1:
            draw.ellipse([x, y, x + w, y + h], fill=colour)
        else:
            draw.polygon(
                [(x, y), (x + w, y + int(rng.integers(0, 30))), (x + int(rng.integers(0, 30)), y + h)], fill=colour
            )
    return image


def shelf_photo(product: Image.Image, clutter_seed: int = 99) -> Image.Image:
    """The product at 70% size, turned 12 degrees, off-centre among other prints: a customer's photo."""
    scene = printed_label(clutter_seed, (640, 480))
    item = product.resize((int(product.width * 0.7), int(product.height * 0.7))).convert("RGBA")
    item = item.rotate(12, expand=True, resample=Image.Resampling.BICUBIC)
    scene.paste(item, (300, 60), item)
    return scene


def jpeg(image: Image.Image, path: Path) -> Path:
    image.save(path, "JPEG", quality=92)
    return path


# --- the features themselves ---------------------------------------------------------------------


def test_features_survive_the_stored_form_and_damage_is_a_value_error() -> None:
    features = extract(printed_label(1))
    assert len(features) > 100
    back = LocalFeatures.from_bytes(features.to_bytes())
    assert (back.width, back.height) == (features.width, features.height)
    assert np.array_equal(back.descriptors, features.descriptors)
    assert np.abs(back.xy - features.xy).max() <= 0.5  # positions are kept to the pixel
    blob = features.to_bytes()
    for damaged in (b"", b"JPEG" + blob[4:], blob[:-20], blob[:12] + b"\x00" * 40):
        with pytest.raises(ValueError):
            LocalFeatures.from_bytes(damaged)


def test_the_photographed_product_verifies_and_other_products_do_not() -> None:
    query = extract(shelf_photo(printed_label(SHOWN)), MAX_QUERY_FEATURES)
    root = root_sift(query.descriptors)
    shown = verify(query, root, extract(printed_label(SHOWN)))
    assert shown.inliers >= 26, shown
    for other in (1, 2, 4):
        assert verify(query, root, extract(printed_label(other))).inliers == 0
    plain = extract(Image.new("RGB", (300, 400), (200, 30, 30)))  # solid colour: no keypoints at all
    assert len(plain) == 0 and verify(query, root, plain).inliers == 0


def test_bonuses_go_only_to_verified_candidates_and_a_damaged_blob_is_skipped() -> None:
    query = extract(shelf_photo(printed_label(SHOWN)), MAX_QUERY_FEATURES)
    candidates = [(f"p{i}", extract(printed_label(i)).to_bytes()) for i in range(PRODUCTS)]
    candidates.append(("broken", b"VLF1 not really"))
    bonuses = verification_bonuses(query, candidates, min_inliers=6, full_inliers=26, weight=0.5)
    assert bonuses == {f"p{SHOWN}": 0.5}
    # a high bar: the same match earns a share of the weight, growing with the inliers
    partial = verification_bonuses(query, candidates, min_inliers=6, full_inliers=500, weight=0.5)
    assert set(partial) == {f"p{SHOWN}"} and 0 < partial[f"p{SHOWN}"] < 0.5
    tiny = extract(Image.new("RGB", (32, 32), (0, 0, 0)))
    assert verification_bonuses(tiny, candidates, 6, 26, 0.5) == {}  # a query without keypoints verifies nothing


def test_implausible_warps_are_rejected() -> None:
    assert plausible_warp(np.eye(3))
    assert plausible_warp(np.array([[0.7, -0.1, 30], [0.1, 0.7, 12], [0, 0, 1]]))
    assert not plausible_warp(np.diag([-1.0, 1.0, 1.0]))  # a mirror
    assert not plausible_warp(np.diag([20.0, 20.0, 1.0]))  # a stamp blown up to a poster
    assert not plausible_warp(np.array([[1, 0, 0], [0, 1, 0], [0.01, 0, 1.0]]))  # strong perspective
    assert not plausible_warp(np.zeros((3, 3)))


def test_crops_are_the_photo_its_centre_and_four_corners() -> None:
    photo = Image.new("RGB", (200, 100))
    views = crops(photo)
    assert views[0] is photo and len(views) == 6
    assert {v.size for v in views[1:]} == {(140, 70)}


def hit(product: str, score: float, photo: str = "a") -> Hit:
    return Hit(point_id=f"{product}-{photo}", score=score, payload={"product_id": product})


def test_framings_are_scored_apart_and_averaged_per_product() -> None:
    """A product found by every framing beats one that only the whole photo likes; a product a framing
    did not return counts at that framing's lowest score."""
    full = [hit("shelf", 0.80), hit("milk", 0.70)]
    centre = [hit("milk", 0.90, "b"), hit("shelf", 0.40)]
    corner = [hit("milk", 0.85), hit("jam", 0.50)]
    ranked = mean_over_views([full, centre, corner])
    scores = {h.payload["product_id"]: h.score for h in ranked}
    assert [h.payload["product_id"] for h in ranked] == ["milk", "shelf", "jam"]
    assert scores["milk"] == pytest.approx((0.70 + 0.90 + 0.85) / 3)
    assert scores["shelf"] == pytest.approx((0.80 + 0.40 + 0.50) / 3)  # not in the corner's list: its floor
    assert scores["jam"] == pytest.approx((0.70 + 0.40 + 0.50) / 3)
    assert ranked[0].point_id == "milk-b"  # its best-matching photo stands for it (and is the one verified)


# --- a catalog of printed products, indexed with their features -----------------------------------


def write_label_catalog(root: Path) -> Path:
    rows = []
    for i in range(PRODUCTS):
        jpeg(printed_label(i), root / f"p{i}.jpg")
        rows.append({"id": f"p{i}", "title": f"Printed box {i}", "image": f"p{i}.jpg", "tags": "packages"})
    with (root / "catalog.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root / "catalog.csv"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(data_dir=tmp_path / "data", encoder="offline")


@pytest.fixture(params=["edge", "server"])
async def store(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[CountingStore]:
    inner = open_store(settings) if request.param == "edge" else ServerStore(settings.collection, location=":memory:")
    try:
        yield CountingStore(inner)
    finally:
        await inner.close()


async def test_the_store_keeps_features_by_image_hash_and_version(store: CountingStore) -> None:
    await store.ensure_collection("offline:test", 8)
    blob = extract(printed_label(1)).to_bytes()
    await store.put_features(EXTRACTOR_VERSION, {"a" * 64: blob, "b" * 64: b"VLF1-other"})
    assert await store.get_features(EXTRACTOR_VERSION, ["a" * 64, "c" * 64]) == {"a" * 64: blob}
    assert await store.features_present(EXTRACTOR_VERSION, ["a" * 64, "b" * 64, "c" * 64]) == {"a" * 64, "b" * 64}
    assert await store.features_present("sift-0", ["a" * 64]) == set()  # another extractor's are not read
    await store.put_features(EXTRACTOR_VERSION, {"a" * 64: b"VLF1-new"})  # a re-extraction replaces
    assert await store.get_features(EXTRACTOR_VERSION, ["a" * 64]) == {"a" * 64: b"VLF1-new"}


async def test_indexing_extracts_every_photo_once(
    tmp_path: Path, settings: Settings, store: CountingStore, offline_encoder: Any
) -> None:
    catalog = write_label_catalog(tmp_path)
    first = await index_catalog(catalog, offline_encoder, store, settings)
    assert first.ok and first.features == PRODUCTS and store.writes["put_features"] == PRODUCTS
    hashes = [hashlib.sha256((tmp_path / f"p{i}.jpg").read_bytes()).hexdigest() for i in range(PRODUCTS)]
    stored = await store.get_features(EXTRACTOR_VERSION, hashes)
    assert set(stored) == set(hashes)
    assert all(len(LocalFeatures.from_bytes(blob)) > 50 for blob in stored.values())

    second = await index_catalog(catalog, offline_encoder, store, settings)
    assert second.ok and (second.unchanged, second.embedded, second.features) == (PRODUCTS, 0, 0)


async def test_photos_without_features_get_them_and_nothing_is_embedded_again(
    tmp_path: Path, settings: Settings, store: CountingStore, offline_encoder: Any
) -> None:
    """A collection indexed with VISEARCH_LOCAL_FEATURES off (or by a visearch before them) is brought
    up to date by the next `visearch index`: only the extraction runs."""
    catalog = write_label_catalog(tmp_path)
    bare = settings.model_copy(update={"local_features": False})
    first = await index_catalog(catalog, offline_encoder, store, bare)
    assert first.ok and first.embedded == PRODUCTS and first.features == 0
    assert store.writes["put_features"] == 0

    second = await index_catalog(catalog, offline_encoder, store, settings)
    assert second.ok and (second.unchanged, second.embedded, second.features) == (PRODUCTS, 0, PRODUCTS)


@pytest.fixture
async def label_service(
    tmp_path: Path, settings: Settings, store: CountingStore, offline_encoder: Any
) -> AsyncIterator[SearchService]:
    summary = await index_catalog(write_label_catalog(tmp_path), offline_encoder, store, settings)
    assert summary.ok
    service = SearchService(offline_encoder, store, settings)
    try:
        yield service
    finally:
        await service.close()


def photo_bytes(image: Image.Image, tmp_path: Path) -> bytes:
    return jpeg(image, tmp_path / "query.jpg").read_bytes()


async def test_the_product_in_a_cluttered_photo_is_verified_and_ranked_first(
    label_service: SearchService, tmp_path: Path
) -> None:
    query = Query(images=[photo_bytes(shelf_photo(printed_label(SHOWN)), tmp_path)], limit=3)
    result = await label_service.search(query)
    first = result.cards[0]
    assert first.product_id == f"p{SHOWN}"
    assert first.score < first.rank_score <= first.score + label_service.settings.verify_weight
    assert all(card.rank_score == card.score for card in result.cards[1:])  # nothing else verified

    label_service.settings = label_service.settings.model_copy(update={"verify": False})
    plain = await label_service.search(query)
    assert all(card.rank_score == card.score for card in plain.cards)


async def test_verification_keeps_its_order_on_the_next_page(label_service: SearchService, tmp_path: Path) -> None:
    query = Query(images=[photo_bytes(shelf_photo(printed_label(SHOWN)), tmp_path)], limit=1)
    page = await label_service.search(query)
    assert [c.product_id for c in page.cards] == [f"p{SHOWN}"] and page.next_cursor
    more = await label_service.search(Query(cursor=page.next_cursor, limit=2))
    assert f"p{SHOWN}" not in {c.product_id for c in more.cards}


async def test_text_queries_and_more_like_this_read_no_features(
    label_service: SearchService, store: CountingStore
) -> None:
    before = store.feature_reads
    found = await label_service.search(Query(text="printed box", limit=3))
    assert found.cards
    await label_service.search(Query(similar_to=found.cards[0].point_id, limit=3))
    assert store.feature_reads == before


async def test_a_collection_without_features_still_answers_photo_queries(
    tmp_path: Path, settings: Settings, store: CountingStore, offline_encoder: Any
) -> None:
    bare = settings.model_copy(update={"local_features": False})
    assert (await index_catalog(write_label_catalog(tmp_path), offline_encoder, store, bare)).ok
    service = SearchService(offline_encoder, store, settings)
    try:
        result = await service.search(Query(images=[photo_bytes(shelf_photo(printed_label(SHOWN)), tmp_path)]))
    finally:
        await service.close()
    assert result.cards and all(card.rank_score == card.score for card in result.cards)


def test_a_full_count_at_or_below_the_minimum_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"VISEARCH_VERIFY_FULL_INLIERS \(10\) must be above"):
        load_settings(verify_min_inliers=10, verify_full_inliers=10)
    with pytest.raises(ConfigError, match="VISEARCH_VERIFY_TOP_K"):
        load_settings(verify_top_k=0)
