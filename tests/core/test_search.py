"""The search service on the real offline encoder and the embedded Qdrant engine."""

from __future__ import annotations

import asyncio
import csv
import shutil
from pathlib import Path

import pytest

from visearch.core.config import load_settings
from visearch.core.domain import Filters, PointRecord, Query
from visearch.core.encoders.base import words_dim
from visearch.core.errors import CollectionNotFoundError, EncoderMismatchError, ImageError
from visearch.core.ingest import index_catalog
from visearch.core.search import PointNotFoundError, SearchService
from visearch.core.store.factory import open_store
from visearch.core.store.server import ServerStore

SAMPLE = Path(__file__).resolve().parents[2] / "indexer" / "demo_data" / "grocery"


@pytest.fixture(scope="module")
def sample_catalog(tmp_path_factory: pytest.TempPathFactory, grocery_dir: Path) -> Path:
    """The bundled sample, with two extra in-store photos added to the banana (a similarity group)."""
    root = tmp_path_factory.mktemp("catalog")
    shutil.copytree(SAMPLE, root, dirs_exist_ok=True)
    extra = sorted((grocery_dir / "train" / "Fruit" / "Banana").glob("*.jpg"))[:2]
    rows = list(csv.DictReader((root / "catalog.csv").open(encoding="utf-8")))
    for row in rows:
        if row["id"] == "banana":
            for photo in extra:
                shutil.copyfile(photo, root / "images" / photo.name)
            row["image"] = "|".join([row["image"], *(f"images/{p.name}" for p in extra)])
    with (root / "catalog.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root


@pytest.fixture(scope="module")
def indexed_points(
    sample_catalog: Path, offline_encoder, tmp_path_factory: pytest.TempPathFactory
) -> list[PointRecord]:
    """The sample indexed once by the real pipeline, read back with its vectors: each test writes
    these into a fresh store instead of embedding the catalog again."""
    settings = load_settings(data_dir=tmp_path_factory.mktemp("indexed-once"), encoder="offline")

    async def index_then_read() -> list[PointRecord]:
        store = open_store(settings)
        try:
            summary = await index_catalog(sample_catalog / "catalog.csv", offline_encoder, store, settings)
            assert summary.ok, summary.problems
            return [
                PointRecord(id=p.point_id, vector=p.vector, text_vector=p.text_vector, payload=p.payload)
                async for p in store.scroll(with_vectors=True)
                if p.vector is not None
            ]
        finally:
            await store.close()

    return asyncio.run(index_then_read())


@pytest.fixture(params=["edge", "server"])
async def service(
    request: pytest.FixtureRequest,
    indexed_points: list[PointRecord],
    offline_encoder,
    tmp_path_factory: pytest.TempPathFactory,
):
    """A service over a fresh copy of the indexed sample, on the embedded engine (temp dir)
    and on the server backend (qdrant-client's in-process `:memory:` double)."""
    settings = load_settings(data_dir=tmp_path_factory.mktemp("data"), encoder="offline")
    store = open_store(settings) if request.param == "edge" else ServerStore(settings.collection, location=":memory:")
    await store.ensure_collection(offline_encoder.model_id, offline_encoder.dim, text_dim=words_dim(offline_encoder))
    await store.upsert(indexed_points)
    svc = SearchService(offline_encoder, store, settings)
    yield svc
    await svc.close()


@pytest.fixture(scope="module")
def tiny_clip_encoder(tiny_clip_dir: Path):
    from visearch.core.encoders.clip import ClipEncoder

    return ClipEncoder(str(tiny_clip_dir), device="cpu", batch_size=8)


def photo(path: Path) -> bytes:
    return path.read_bytes()


async def test_customer_photo_finds_its_product(service: SearchService) -> None:
    result = await service.search(Query(images=[photo(SAMPLE / "queries" / "arla-standard-milk.jpg")], limit=5))
    assert not result.no_match
    assert result.cards[0].category == "Milk"
    assert "arla-standard-milk" in [c.product_id for c in result.cards]


async def test_product_with_several_photos_appears_once(service: SearchService) -> None:
    result = await service.search(Query(images=[photo(SAMPLE / "queries" / "banana.jpg")], limit=5))
    ids = [c.product_id for c in result.cards]
    assert ids[0] == "banana"
    assert len(ids) == len(set(ids))


DAIRY = {"Milk", "Oat Milk", "Soy Milk", "Sour Milk", "Sour Cream", "Yoghurt", "Oatghurt", "Soyghurt"}


async def test_text_query_ranks_milk_cartons_above_apples(service: SearchService) -> None:
    result = await service.search(Query(text="milk", limit=3))
    assert len(result.cards) == 3, "text 'milk' found nothing"
    assert all(card.category in DAIRY for card in result.cards), [c.title for c in result.cards]


async def test_text_query_for_a_fruit_finds_it(service: SearchService) -> None:
    result = await service.search(Query(text="banana", limit=3))
    assert result.cards[0].product_id == "banana"


async def test_filters_combine(service: SearchService) -> None:
    filters = Filters(categories=["milk", "juice"], in_stock=True, price_max=30)
    milk_photo = photo(SAMPLE / "queries" / "arla-standard-milk.jpg")
    result = await service.search(Query(images=[milk_photo], filters=filters, limit=10))
    assert result.cards
    for card in result.cards:
        assert card.category in {"Milk", "Juice"}
        assert card.in_stock
        assert card.price is not None and card.price <= 30


async def test_colour_filter_keeps_products_of_that_colour(service: SearchService) -> None:
    pepper = photo(SAMPLE / "queries" / "red-bell-pepper.jpg")
    red = await service.search(Query(images=[pepper], filters=Filters(colours=["red"]), limit=10))
    assert "red-bell-pepper" in [c.product_id for c in red.cards]
    points = await service.store.retrieve([c.point_id for c in red.cards])
    assert all("red" in p.payload["colours"] for p in points)
    yellow = await service.search(Query(images=[pepper], filters=Filters(colours=["yellow"]), limit=10))
    assert "red-bell-pepper" not in [c.product_id for c in yellow.cards]
    assert "yellow" in (await service.facets()).colours


async def test_colour_boost_moves_same_colour_products_up(service: SearchService) -> None:
    from visearch.core.colour import dominant_colours
    from visearch.core.images import decode_image

    pepper = photo(SAMPLE / "queries" / "red-bell-pepper.jpg")
    query_colours = set(dominant_colours(decode_image(pepper, 10**8)))
    boosted = SearchService(service.encoder, service.store, service.settings.model_copy(update={"colour_boost": 1.0}))
    result = await boosted.search(Query(images=[pepper], limit=10))
    points = {p.point_id: p for p in await service.store.retrieve([c.point_id for c in result.cards])}
    shares = [bool(query_colours & set(points[c.point_id].payload["colours"])) for c in result.cards]
    assert shares == sorted(shares, reverse=True) and shares[0]
    plain = await service.search(Query(images=[pepper], limit=10))
    assert {c.product_id for c in plain.cards} == {c.product_id for c in result.cards}, "a boost reorders, never adds"


async def test_filter_that_matches_nothing_is_no_match(service: SearchService) -> None:
    result = await service.search(Query(text="milk", filters=Filters(brands=["no-such-brand"])))
    assert result.no_match


async def test_more_like_this_excludes_the_product_itself(service: SearchService) -> None:
    first = (await service.search(Query(images=[photo(SAMPLE / "queries" / "granny-smith.jpg")], limit=1))).cards[0]
    similar = await service.search(Query(similar_to=first.point_id, limit=5))
    assert similar.cards
    assert first.product_id not in [c.product_id for c in similar.cards]


async def test_more_like_this_of_unknown_point(service: SearchService) -> None:
    with pytest.raises(PointNotFoundError, match="not in the collection"):
        await service.search(Query(similar_to="00000000-0000-0000-0000-000000000000"))


async def test_album_is_one_query(service: SearchService) -> None:
    album = [photo(SAMPLE / "queries" / "banana.jpg"), photo(SAMPLE / "images" / "banana.jpg")]
    result = await service.search(Query(images=album, limit=3))
    assert result.cards[0].product_id == "banana"


async def test_pagination_does_not_repeat(service: SearchService) -> None:
    query = Query(images=[photo(SAMPLE / "queries" / "vine-tomato.jpg")], limit=3)
    first = await service.search(query)
    second = await service.search(query.model_copy(update={"offset": 3}))
    assert not {c.product_id for c in first.cards} & {c.product_id for c in second.cards}


async def test_cursor_pages_continue_where_the_first_page_ended(service: SearchService) -> None:
    query = Query(images=[photo(SAMPLE / "queries" / "vine-tomato.jpg")], limit=2)
    by_offset = await service.search(query.model_copy(update={"limit": 4}))
    first = await service.search(query)
    assert first.next_cursor
    second = await service.search(Query(cursor=first.next_cursor, limit=2))
    assert [c.product_id for c in first.cards + second.cards] == [c.product_id for c in by_offset.cards]
    again = await service.search(Query(cursor=first.next_cursor, limit=2))  # a button tapped twice
    assert [c.product_id for c in again.cards] == [c.product_id for c in second.cards]


async def test_last_page_has_no_cursor(service: SearchService) -> None:
    result = await service.search(Query(images=[photo(SAMPLE / "queries" / "banana.jpg")], limit=50))
    assert result.cards and result.next_cursor is None


async def test_unknown_cursor_says_search_again(service: SearchService) -> None:
    from visearch.core.search import CursorExpiredError

    with pytest.raises(CursorExpiredError, match="send the photo or the words again"):
        await service.search(Query(cursor="not-a-cursor"))


async def test_cursors_are_bounded(sample_catalog: Path, offline_encoder, tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, encoder="offline", max_cursors=3)
    store = open_store(settings)
    await index_catalog(sample_catalog / "catalog.csv", offline_encoder, store, settings)
    svc = SearchService(offline_encoder, store, settings)
    try:
        cursors = [
            (await svc.search(Query(text=word, limit=1))).next_cursor
            for word in ("apple", "milk", "juice", "tomato", "pepper")
        ]
        assert all(cursors)
        from visearch.core.search import CursorExpiredError

        with pytest.raises(CursorExpiredError):
            await svc.search(Query(cursor=cursors[0], limit=1))
        assert (await svc.search(Query(cursor=cursors[-1], limit=1))).cards
    finally:
        await svc.close()


async def test_cards_point_at_the_local_image_file(service: SearchService, sample_catalog: Path) -> None:
    result = await service.search(Query(text="banana", limit=1))
    card = result.cards[0]
    assert card.image_file and Path(card.image_file).is_file()
    assert Path(card.image_file).parent.parent == sample_catalog.resolve()


async def test_facets_count_products_not_images(service: SearchService, sample_catalog: Path) -> None:
    facets = await service.facets()
    rows = list(csv.DictReader((sample_catalog / "catalog.csv").open(encoding="utf-8")))
    assert facets.products == len(rows)
    assert sum(facets.categories.values()) == sum(1 for r in rows if r["category"])
    assert facets.categories["Banana"] == 1  # three photos, one product
    prices = [float(r["price"]) for r in rows if r["price"]]
    assert facets.price_min == min(prices) and facets.price_max == max(prices)
    assert facets.currencies == ["SEK"]


async def test_unrelated_photo_is_cut_off(service: SearchService, clothing_dir: Path) -> None:
    shoes = sorted((clothing_dir / "images").glob("*.jpg"))[:5]
    results = [await service.search(Query(images=[photo(p)], limit=5)) for p in shoes]
    # a clothing photo is not a grocery product: most of them must come back as "no match"
    assert sum(r.no_match for r in results) >= 3, [r.cards[:1] for r in results]


async def test_broken_photo_is_a_clear_error(service: SearchService) -> None:
    with pytest.raises(ImageError):
        await service.search(Query(images=[b"\xff\xd8\xff\xe0 not really a jpeg"]))


async def test_missing_collection_names_the_fix(offline_encoder, tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, encoder="offline")
    svc = SearchService(offline_encoder, open_store(settings), settings)
    try:
        with pytest.raises(CollectionNotFoundError, match="visearch index"):
            await svc.search(Query(text="milk"))
    finally:
        await svc.close()


async def test_other_encoder_is_refused(service: SearchService, tiny_clip_encoder) -> None:
    other = SearchService(tiny_clip_encoder, service.store, service.settings)
    with pytest.raises(EncoderMismatchError) as err:
        await other.search(Query(text="milk"))
    assert service.encoder.model_id in str(err.value)
    assert tiny_clip_encoder.model_id in str(err.value)
