"""No write loses a product: failed updates keep what was stored, concurrent uploads of one id
never delete each other's files, a broken catalog makes `sync` delete nothing, a sync that would
empty half the shop stops, and files left by a killed server are cleaned at start.

Real parts throughout: the offline encoder, the embedded store, `visearch serve`'s app under
uvicorn on 127.0.0.1, the CLI through typer's runner.
"""

from __future__ import annotations

import asyncio
import csv
import io
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from tests.bots.test_api import WRITE, run_api
from tests.conftest import copy_collection, free_port
from visearch.core.catalog import read_catalog
from visearch.core.config import Settings, load_settings
from visearch.core.errors import CatalogError, MassDeleteError, RebuildIncompleteError
from visearch.core.ingest import ExistingPoint, index_catalog, plan_sync
from visearch.core.store.factory import open_store
from visearch.indexer.cli import app as cli_app

#: a customer's photo of a Granny Smith apple from the bundled sample (no dataset needed)
GRANNY_SMITH = (
    Path(__file__).resolve().parents[1] / "indexer" / "demo_data" / "grocery" / "queries" / "granny-smith.jpg"
).read_bytes()

# --- helpers ----------------------------------------------------------------------------------------


def jpeg(colour: tuple[int, int, int], size: int = 64) -> bytes:
    buf = io.BytesIO()
    image = Image.new("RGB", (size, size), colour)
    for x in range(0, size, 8):  # a pattern, so photos differ in more than their mean colour
        image.paste((255 - colour[0], colour[1], 255 - colour[2]), (x, x, x + 4, x + 4))
    image.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def write_rows(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["id", "title", "image", "price"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def rows(n: int) -> list[dict[str, str]]:
    return [{"id": f"SKU-{i}", "title": f"Product {i}", "image": "p.jpg", "price": f"{i}.50"} for i in range(n)]


@pytest.fixture
def pipeline_settings(tmp_path: Path) -> Settings:
    return load_settings(data_dir=tmp_path / "data", encoder="offline", fetch_retries=0, fetch_concurrency=4)


@pytest.fixture
def catalog_dir(tmp_path: Path) -> Path:
    root = tmp_path / "catalog"
    root.mkdir()
    (root / "p.jpg").write_bytes(jpeg((200, 60, 30)))
    (root / "q.jpg").write_bytes(jpeg((30, 60, 200)))
    return root


@pytest.fixture
async def six(catalog_dir: Path, pipeline_settings: Settings, offline_encoder: Any) -> Any:
    """Six products indexed from `c.csv` (all with p.jpg): the catalog path and the open store."""
    catalog = write_rows(catalog_dir / "c.csv", rows(6))
    store = open_store(pipeline_settings)
    try:
        await index_catalog(catalog, offline_encoder, store, pipeline_settings)
        yield catalog, store
    finally:
        await store.close()


async def product_ids(store: Any) -> set[str]:
    return {str(p.payload["product_id"]) async for p in store.scroll()}


# --- 1. a failed update keeps what was stored ----------------------------------------------------------


async def test_index_keeps_a_product_whose_new_photo_is_missing(
    catalog_dir: Path, pipeline_settings: Settings, offline_encoder: Any
) -> None:
    catalog = write_rows(catalog_dir / "c.csv", rows(3))
    store = open_store(pipeline_settings)
    try:
        first = await index_catalog(catalog, offline_encoder, store, pipeline_settings)
        assert first.ok and await store.count() == 3
        changed = rows(3)
        changed[1]["image"] = "moved-away.jpg"  # the new path does not exist
        changed[2]["image"] = "q.jpg"  # a real new photo: the old one may go once this is written
        second = await index_catalog(write_rows(catalog, changed), offline_encoder, store, pipeline_settings)
        assert second.failed == 1 and second.deleted == 1  # only SKU-2's replaced photo
        assert second.kept == ["SKU-1"]
        assert any("kept the stored photos of 1 product(s)" in note and "SKU-1" in note for note in second.notes)
        points = {p.payload["product_id"]: p.payload async for p in store.scroll()}
        assert points["SKU-1"]["image"] == "p.jpg"  # still searchable with its old photo
        assert points["SKU-2"]["image"] == "q.jpg"
        assert await store.count() == 3
    finally:
        await store.close()


@pytest.fixture
def api_data(tmp_path: Path, sample_collection: Settings) -> Settings:
    copied = copy_collection(sample_collection, tmp_path / "api-data")
    return copied.model_copy(update={"fetch_retries": 0})  # an unreachable photo fails at once


async def test_api_update_with_an_unreachable_photo_keeps_the_product(api_data: Settings, offline_encoder: Any) -> None:
    closed = f"http://127.0.0.1:{free_port()}/photo.jpg"  # nothing listens there
    async with run_api(api_data, offline_encoder) as api:
        photo = GRANNY_SMITH
        made = await api.http.post(
            "/api/v1/products",
            headers=WRITE,
            data={"product": '{"id": "KEEP-1", "title": "Green apple", "price": 9.5, "images": []}'},
            files={"images": ("a.jpg", photo, "image/jpeg")},
        )
        assert made.status_code == 200, made.text
        before = (await api.product("KEEP-1")).json()

        failed = await api.http.post(
            "/api/v1/products",
            headers=WRITE,
            json={"id": "KEEP-1", "title": "Renamed apple", "price": 1.0, "images": [closed]},
        )
        assert failed.status_code == 422
        body = failed.json()
        assert body["field"] == "images" and "the stored product is kept unchanged" in body["error"]
        assert str(api_data.data_dir) not in body["error"]
        after = await api.product("KEEP-1")
        assert after.status_code == 200 and after.json() == before  # title, price and photo as they were
        similar = await api.http.get("/api/v1/products/KEEP-1/similar")
        assert similar.status_code == 200

        batch = await api.http.post(
            "/api/v1/products:batch",
            headers=WRITE,
            json={"products": [{"id": "KEEP-1", "title": "Batch rename", "images": [closed]}]},
        )
        assert batch.status_code == 200
        [item] = batch.json()["items"]
        assert not item["ok"] and "kept unchanged" in item["error"]
        assert (await api.product("KEEP-1")).json() == before

        new = await api.http.post(
            "/api/v1/products", headers=WRITE, json={"id": "NEVER-1", "title": "Nothing usable", "images": [closed]}
        )
        assert new.status_code == 422 and "was not created" in new.json()["error"]
        assert (await api.product("NEVER-1")).status_code == 404


# --- 2. concurrent uploads of one id ------------------------------------------------------------------


async def test_concurrent_uploads_of_one_id_never_lose_it(api_data: Settings, offline_encoder: Any) -> None:
    photos = [jpeg((10 * i, 255 - 10 * i, 40 + 5 * i)) for i in range(20)]
    async with run_api(api_data, offline_encoder) as api:

        async def upload(i: int) -> Any:
            return await api.http.post(
                "/api/v1/products",
                headers=WRITE,
                data={"product": f'{{"id": "RACE-1", "title": "Racer {i}", "images": []}}'},
                files={"images": (f"{i}.jpg", photos[i], "image/jpeg")},
            )

        answers = await asyncio.gather(*(upload(i) for i in range(20)))
        assert [a.status_code for a in answers] == [200] * 20, [a.text for a in answers if a.status_code != 200]
        assert not any("uploads" in a.text and "/" in a.json().get("error", "") for a in answers)
        stored = await api.product("RACE-1")
        assert stored.status_code == 200
        [image] = stored.json()["images"]
        served = await api.http.get(image["image_url"].removeprefix(api.url))
        assert served.status_code == 200 and served.content in photos
    folders = list((api_data.data_dir / "uploads").iterdir())
    files = [f for folder in folders for f in folder.iterdir()]
    assert len(files) == 1 and files[0].read_bytes() in photos  # the others were dropped, this one kept


async def test_a_slow_image_host_holds_up_only_its_own_product(api_data: Settings, offline_encoder: Any) -> None:
    """Writes lock per product: one upsert waiting 3 s on its photo's host does not make an
    unrelated upsert (or a delete) wait with it; a second write of the same id does wait."""
    from tests.fakes.http_server import Reply, scripted_server

    photo = GRANNY_SMITH
    with scripted_server() as images:
        slow = images.route("/slow.jpg", Reply(200, photo, delay_s=3.0))
        async with run_api(api_data, offline_encoder) as api:
            started = asyncio.get_running_loop().time()
            waiting = asyncio.create_task(
                api.http.post(
                    "/api/v1/products", headers=WRITE, json={"id": "SLOW-1", "title": "Slow host", "images": [slow]}
                )
            )
            await asyncio.sleep(0.3)
            other = await api.http.post(
                "/api/v1/products",
                headers=WRITE,
                data={"product": '{"id": "FAST-1", "title": "Fast", "images": []}'},
                files={"images": ("f.jpg", jpeg((90, 200, 90)), "image/jpeg")},
            )
            assert other.status_code == 200
            assert asyncio.get_running_loop().time() - started < 2.5  # not behind the slow host
            assert (await api.http.delete("/api/v1/products/FAST-1", headers=WRITE)).status_code == 200
            same = await api.http.post(
                "/api/v1/products",
                headers=WRITE,
                data={"product": '{"id": "SLOW-1", "title": "Second write", "images": []}'},
                files={"images": ("s.jpg", jpeg((200, 90, 90)), "image/jpeg")},
            )
            assert (await waiting).status_code == 200 and same.status_code == 200
            assert (await api.product("SLOW-1")).json()["title"] == "Second write"  # ran after the first


# --- 3. a broken catalog makes sync delete nothing --------------------------------------------------


async def test_unclosed_quote_stops_sync_before_anything_is_touched(
    six: Any, pipeline_settings: Settings, offline_encoder: Any
) -> None:
    catalog, store = six
    text = catalog.read_text().replace("SKU-3,Product 3,", 'SKU-3,"Never closed quote,', 1)
    catalog.write_text(text)
    with pytest.raises(CatalogError, match=r":5: a quoted field in the row starting on line 5 is never closed"):
        await index_catalog(catalog, offline_encoder, store, pipeline_settings, sync=True)
    assert await product_ids(store) == {f"SKU-{i}" for i in range(6)}


async def test_rows_swallowed_by_a_quote_are_not_deleted(
    six: Any, pipeline_settings: Settings, offline_encoder: Any
) -> None:
    catalog, store = six
    lines = catalog.read_text().splitlines()
    # SKU-1's title opens a quote that SKU-4's closes: SKU-2 and SKU-3 vanish into one field
    lines[2] = 'SKU-1,"Opened here,p.jpg,1.50'
    lines[5] = 'SKU-4,Closed here",p.jpg,4.50'
    catalog.write_text("\n".join(lines) + "\n")
    summary = await index_catalog(catalog, offline_encoder, store, pipeline_settings, sync=True)
    assert summary.deleted == 0
    assert await product_ids(store) == {f"SKU-{i}" for i in range(6)}
    assert any(p.line == 3 and "quote" in p.reason for p in summary.problems)


async def test_sync_that_would_delete_most_products_stops_and_asks(
    six: Any, pipeline_settings: Settings, offline_encoder: Any
) -> None:
    catalog, store = six
    truncated = [*rows(6)[:2], {"id": "NEW-1", "title": "New", "image": "q.jpg", "price": "1"}]
    write_rows(catalog, truncated)
    with pytest.raises(MassDeleteError, match=r"would delete 4 of the 6 products.*--allow-mass-delete"):
        await index_catalog(catalog, offline_encoder, store, pipeline_settings, sync=True)
    assert await product_ids(store) == {f"SKU-{i}" for i in range(6)}  # NEW-1 not written either
    half = rows(6)[:3]
    summary = await index_catalog(write_rows(catalog, half), offline_encoder, store, pipeline_settings, sync=True)
    assert summary.deleted == 3  # exactly half is not "more than half"


def test_cli_sync_asks_for_allow_mass_delete(
    catalog_dir: Path, pipeline_settings: Settings, offline_encoder: Any
) -> None:
    catalog = write_rows(catalog_dir / "c.csv", rows(3))

    async def build_then_count(expected: int | None = None) -> int:
        store = open_store(pipeline_settings)
        try:
            if expected is None:
                await index_catalog(catalog, offline_encoder, store, pipeline_settings)
            return len(await product_ids(store))
        finally:
            await store.close()

    asyncio.run(build_then_count())
    write_rows(catalog, rows(1))
    env = {"VISEARCH_DATA_DIR": str(pipeline_settings.data_dir), "VISEARCH_ENCODER": "offline"}
    refused = CliRunner().invoke(cli_app, ["sync", str(catalog), "--quiet"], env=env)
    assert refused.exit_code == 2
    assert "sync would delete 2 of the 3 products" in refused.output and "--allow-mass-delete" in refused.output
    assert asyncio.run(build_then_count(3)) == 3


# --- property: whatever the catalog text, a product in a well-formed row survives sync ----------------

SAFE_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12)


@st.composite
def catalog_texts(draw: st.DrawFn) -> tuple[str, set[str], bool]:
    """CSV text mixing well-formed rows with damaged ones; returns the text, the ids of its
    well-formed rows, and whether a damage was structural (shape, quotes)."""
    ids = [f"ID-{i}" for i in range(12)]
    lines = ["id,title,image,price"]
    good: set[str] = set()
    structural = False
    for product_id in draw(st.lists(st.sampled_from(ids), min_size=1, max_size=10)):
        damage = draw(st.sampled_from(["none", "none", "none", "unclosed", "extra", "price", "stray", "noid", "blank"]))
        title = draw(SAFE_TEXT).replace('"', '""')
        if damage == "none":
            lines.append(f'{product_id},"{title}",p.jpg,{draw(st.integers(0, 99))}')
            good.add(product_id)
        elif damage == "unclosed":
            lines.append(f'{product_id},"{title},p.jpg,1')
            structural = True
        elif damage == "extra":
            lines.append(f"{product_id},a,b,c,d,e")
            structural = True
        elif damage == "price":
            lines.append(f'{product_id},"{title}",p.jpg,cheap')
        elif damage == "stray":
            lines.append(f'{product_id},"{title}"x,p.jpg,1')
            structural = True
        elif damage == "noid":
            lines.append(f',"{title}",p.jpg,1')
        else:
            lines.append("")
    return "\n".join(lines) + draw(st.sampled_from(["\n", "", "\r\n"])), good, structural


def stored_state(ids: set[str]) -> dict[str, ExistingPoint]:
    return {f"pt-{pid}": ExistingPoint(pid, "sha", "hash") for pid in ids}


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(catalog_texts(), st.sets(st.sampled_from([f"ID-{i}" for i in range(12)])))
def test_sync_never_plans_to_delete_a_well_formed_row(
    tmp_path: Path, case: tuple[str, set[str], bool], stored_ids: set[str]
) -> None:
    text, good, structural = case
    path = tmp_path / "c.csv"
    path.write_text(text, encoding="utf-8")
    try:
        catalog = read_catalog(path)
    except CatalogError:
        return  # the file is refused whole: sync touches nothing (asserted end to end below)
    try:
        plan = plan_sync(catalog, stored_state(stored_ids), allow_mass_delete=True)
    except MassDeleteError:
        raise AssertionError("allowed mass delete raised") from None
    assert not set(plan.gone) & good
    if structural:
        assert plan.gone == []


@hsettings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(catalog_texts())
def test_sync_end_to_end_keeps_every_well_formed_row(
    tmp_path_factory: pytest.TempPathFactory, offline_encoder: Any, case: tuple[str, set[str], bool]
) -> None:
    """The real pipeline and store: 12 products indexed, then synced against a generated catalog."""
    text, good, structural = case
    root = tmp_path_factory.mktemp("prop")
    shutil.copyfile(
        Path(__file__).resolve().parents[1] / "indexer" / "demo_data" / "grocery" / "queries" / "banana.jpg",
        root / "p.jpg",
    )
    settings = load_settings(data_dir=root / "data", encoder="offline", fetch_retries=0)
    everything = [{"id": f"ID-{i}", "title": f"T{i}", "image": "p.jpg", "price": "1"} for i in range(12)]

    async def scenario() -> None:
        store = open_store(settings)
        try:
            await index_catalog(write_rows(root / "all.csv", everything), offline_encoder, store, settings)
            (root / "c.csv").write_text(text, encoding="utf-8")
            try:
                await index_catalog(root / "c.csv", offline_encoder, store, settings, sync=True, allow_mass_delete=True)
            except CatalogError:
                assert await store.count() == 12  # refused whole: nothing changed
                return
            left = await product_ids(store)
            assert good <= left
            if structural:
                assert left == {f"ID-{i}" for i in range(12)}
        finally:
            await store.close()

    asyncio.run(scenario())


# --- 4. orphan uploads of a killed server are cleaned at start ------------------------------------------


async def test_orphan_uploads_are_dropped_at_start_and_used_ones_kept(api_data: Settings, offline_encoder: Any) -> None:
    async with run_api(api_data, offline_encoder) as api:
        made = await api.http.post(
            "/api/v1/products",
            headers=WRITE,
            data={"product": '{"id": "KEPT-1", "title": "Kept", "images": []}'},
            files={"images": ("a.jpg", GRANNY_SMITH, "image/jpeg")},
        )
        assert made.status_code == 200
    uploads = api_data.data_dir / "uploads"
    [used] = [f for folder in uploads.iterdir() for f in folder.iterdir()]
    # what `kill -9` mid-write leaves: a saved photo no point names, a half-written temporary file
    orphan_dir = uploads / "0123456789abcdef01234567"
    orphan_dir.mkdir()
    (orphan_dir / "deadbeef.jpg").write_bytes(b"x")
    (used.parent / (used.name + ".tmp")).write_bytes(b"half")
    async with run_api(api_data, offline_encoder) as api:
        assert (await api.product("KEPT-1")).status_code == 200
        assert not orphan_dir.exists()
        assert [f.name for f in used.parent.iterdir()] == [used.name]
        served = await api.http.get(
            (await api.product("KEPT-1")).json()["images"][0]["image_url"].removeprefix(api.url)
        )
        assert served.status_code == 200 and served.content == used.read_bytes()


# --- 5. `index --recreate` builds beside the collection and swaps only a complete rebuild --------------


async def test_a_rebuild_that_cannot_store_a_product_leaves_the_collection_as_it_was(
    six: Any, pipeline_settings: Settings, offline_encoder: Any
) -> None:
    catalog, store = six
    before = {p.point_id: p.payload async for p in store.scroll()}
    broken = rows(6)
    broken[4]["image"] = "gone.jpg"
    write_rows(catalog, broken)
    with pytest.raises(RebuildIncompleteError, match=r"could not store 1 product\(s\).*SKU-4.*collection is unchanged"):
        await index_catalog(catalog, offline_encoder, store, pipeline_settings, recreate=True)
    assert {p.point_id: p.payload async for p in store.scroll()} == before
    leftovers = [p.name for p in pipeline_settings.data_dir.iterdir() if ".rebuild" in p.name or ".replaced" in p.name]
    assert leftovers == []

    truncated = rows(6)[:2]
    with pytest.raises(MassDeleteError, match="index --recreate would delete 4 of the 6 products"):
        await index_catalog(write_rows(catalog, truncated), offline_encoder, store, pipeline_settings, recreate=True)
    assert await product_ids(store) == {f"SKU-{i}" for i in range(6)}

    renamed = rows(6)
    renamed[0]["title"] = "Rebuilt"
    summary = await index_catalog(
        write_rows(catalog, renamed), offline_encoder, store, pipeline_settings, recreate=True
    )
    assert summary.ok and summary.indexed == 6
    points = {p.payload["product_id"]: p.payload async for p in store.scroll()}
    assert set(points) == {f"SKU-{i}" for i in range(6)} and points["SKU-0"]["title"] == "Rebuilt"
    # the collection, its metadata, and its local-features store (kept across rebuilds: it is keyed by
    # photo hash, so the rebuilt points find their features without a second extraction; SQLite's
    # -wal/-shm files exist while the store is open)
    features = pipeline_settings.collection + ".features.sqlite"
    names = {p.name for p in pipeline_settings.data_dir.iterdir() if not p.name.startswith(".")}
    assert names - {features + "-wal", features + "-shm"} == {
        pipeline_settings.collection,
        pipeline_settings.collection + ".visearch.json",
        features,
    }
    assert summary.features == summary.embedded  # only the photos new to the store were extracted


# a process that begins a rebuild, writes a batch, then dies at a chosen step (kill -9 stand-in)
DIES_MID_REBUILD = """
import asyncio, json, os, sys
from visearch.core.config import load_settings
from visearch.core.domain import PointRecord
from visearch.core.store.factory import open_store

async def main(data_dir, step):
    settings = load_settings(data_dir=data_dir, encoder="offline")
    store = open_store(settings)
    info = await store.info()
    await store.ensure_collection(info.encoder_id, info.dim, recreate=True, text_dim=info.text_dim)
    vector = [1.0] + [0.0] * (info.dim - 1)
    text = [1.0] + [0.0] * ((info.text_dim or 1) - 1)
    await store.upsert([PointRecord(id="00000000-0000-4000-8000-000000000001", vector=vector,
                                    text_vector=text if info.text_dim else None,
                                    payload={"product_id": "REBUILT-1", "title": "Rebuilt"})])
    if step == "building":
        os._exit(9)
    def commit_then_die():
        shard, store._shard = store._shard, None
        shard.flush(); shard.close()
        meta = json.loads(store.meta_path.read_text())
        store._write_meta({**meta, "rebuild_state": "complete"})
        live = store.data_dir / store.collection
        live.rename(store.data_dir / (store.collection + ".replaced"))  # the swap's first step, then death
        os._exit(9)
    await store._run(commit_then_die)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


@pytest.mark.parametrize("step, survivor", [("building", "SKU-0"), ("swapping", "REBUILT-1")])
async def test_a_rebuild_killed_midway_is_rolled_back_or_forward(
    catalog_dir: Path, pipeline_settings: Settings, offline_encoder: Any, step: str, survivor: str
) -> None:
    """Killed while building: the old collection is whole. Killed after the commit point, half-way
    through the swap: the next open finishes the swap. Never a collection with neither."""
    import os
    import subprocess
    import sys

    catalog = write_rows(catalog_dir / "c.csv", rows(3))
    store = open_store(pipeline_settings)
    try:
        await index_catalog(catalog, offline_encoder, store, pipeline_settings)
    finally:
        await store.close()
    repo = Path(__file__).resolve().parents[1]
    proc = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", DIES_MID_REBUILD, str(pipeline_settings.data_dir), step],
        env={**os.environ, "PYTHONPATH": str(repo)},
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 9, proc.stderr[-2000:]
    store = open_store(pipeline_settings)
    try:
        ids = await product_ids(store)
        assert survivor in ids
        assert ids == ({"REBUILT-1"} if step == "swapping" else {"SKU-0", "SKU-1", "SKU-2"})
        leftovers = [
            p.name for p in pipeline_settings.data_dir.iterdir() if ".rebuild" in p.name or ".replaced" in p.name
        ]
        assert leftovers == []
    finally:
        await store.close()


# --- 3b. rows swallowed by two quotes pairing up are reported even when rows leave trailing fields out --

#: legal CSV: SKU-1's description opens a quote that SKU-3's closes, and the rows omit their trailing
#: empty fields, so no inner line has a whole row's commas
PAIRED_QUOTES = (
    "id,title,image,description,price,currency,category,brand,tags,url,in_stock\n"
    "SKU-0,Product 0,p.jpg,ok\n"  # 2
    'SKU-1,Product 1,p.jpg,"never closed\n'  # 3: the quote opens here
    "SKU-2,New title 2,p.jpg\n"  # 4: swallowed
    'SKU-3,New title 3,https://shop.example/3.jpg?w=1,ends with quote"\n'  # 5: swallowed, closes the quote
    "SKU-4,Product 4,p.jpg,fine\n"  # 6
)


async def test_rows_swallowed_by_paired_quotes_in_short_rows_are_reported(
    six: Any, pipeline_settings: Settings, offline_encoder: Any
) -> None:
    catalog, store = six
    catalog.write_text(PAIRED_QUOTES)
    summary = await index_catalog(catalog, offline_encoder, store, pipeline_settings)
    assert not summary.ok and summary.skipped == 3  # the CLI exits 1
    reasons = {(p.line, p.product_id): p.reason for p in summary.problems}
    assert "a quoted field spans 3 lines and holds what looks like other rows" in reasons[(3, "SKU-1")]
    for line, product_id in ((4, "SKU-2"), (5, "SKU-3")):
        assert reasons[(line, product_id)] == "this row was swallowed by the quote opened on line 3: close that quote"
    synced = await index_catalog(catalog, offline_encoder, store, pipeline_settings, sync=True)
    assert synced.deleted == 0 and not synced.ok
    assert await product_ids(store) == {f"SKU-{i}" for i in range(6)}  # SKU-5, not in the file, is kept too


def test_a_multi_line_description_of_prose_is_still_one_field(tmp_path: Path) -> None:
    text = (
        "id,title,image,description,price\n"
        'P1,Apple,a.jpg,"Crisp, sweet, juicy.\nKeep cool, dry and out of the sun.\n'
        'Photos: front.jpg, side.jpg\n\nGreat with cheese, nuts or honey"\n'
        "P2,Pear,b.jpg,plain,2\n"
    )
    (tmp_path / "c.csv").write_text(text, encoding="utf-8")
    result = read_catalog(tmp_path / "c.csv")
    assert result.errors == [] and result.structurally_sound
    assert [(row.line, row.product.id) for row in result.rows] == [(2, "P1"), (7, "P2")]
    assert result.rows[0].product.description.endswith("Great with cheese, nuts or honey")
