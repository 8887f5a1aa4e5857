"""The ingest service in core: fed by any reader, progress through a callback, no terminal code in core."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from visearch.core.catalog import CatalogRow, CatalogWarning, MentionedIds, RowError, SuspectRow, collect
from visearch.core.config import Settings, load_settings
from visearch.core.domain import Product
from visearch.core.errors import CatalogError
from visearch.core.ingest import IngestService, SilentProgress
from visearch.core.store.base import VectorStore
from visearch.core.store.factory import open_store

REPO = Path(__file__).resolve().parents[2]


class RecordingProgress:
    """Keeps every call the service makes, in order."""

    def __init__(self) -> None:
        self.totals: list[int] = []
        self.advances: list[int] = []
        self.last_counts: dict[str, int] = {}
        self.messages: list[str] = []

    def total(self, images: int) -> None:
        self.totals.append(images)

    def advance(self, images: int, counts: Mapping[str, int]) -> None:
        assert self.totals, "advance before total"
        self.advances.append(images)
        self.last_counts = dict(counts)

    def message(self, text: str) -> None:
        self.messages.append(text)


@pytest.fixture
def photo_dir(tmp_path: Path, grocery_dir: Path) -> Path:
    root = tmp_path / "photos"
    root.mkdir()
    for i, photo in enumerate(sorted((grocery_dir / "train").rglob("*_001.jpg"))[:4]):
        shutil.copyfile(photo, root / f"p{i}.jpg")
    return root


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(data_dir=tmp_path / "data", encoder="offline", batch_size=2, fetch_retries=0)


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[VectorStore]:
    opened = open_store(settings)
    try:
        yield opened
    finally:
        await opened.close()


def product(pid: str, *images: str) -> Product:
    return Product(id=pid, title=f"Product {pid}", images=list(images))


async def test_progress_reports_every_image_written(
    photo_dir: Path, settings: Settings, store: VectorStore, offline_encoder: Any
) -> None:
    """One total, advances that add up to it, and the last counts are the summary's; no file reader involved."""
    rows = [
        CatalogRow(None, product("a", "p0.jpg", "p1.jpg")),
        CatalogRow(None, product("b", "p2.jpg")),
        CatalogRow(None, product("c", "missing.jpg")),
        CatalogRow(None, product("d")),
    ]
    service = IngestService(offline_encoder, store, settings)
    progress = RecordingProgress()
    summary = await service.write(collect("test", rows), photo_dir, progress=progress)

    assert (summary.indexed, summary.failed, summary.skipped, summary.images) == (3, 1, 1, 4)
    assert progress.totals == [4] and sum(progress.advances) == 4
    assert all(n > 0 for n in progress.advances)
    assert progress.last_counts == summary.counts()
    assert await store.count() == 3

    again = RecordingProgress()
    second = await service.write(collect("test", rows[:2]), photo_dir, progress=again)
    assert (second.unchanged, second.indexed) == (3, 0)
    assert again.totals == [3] and sum(again.advances) == 3 and again.last_counts["unchanged"] == 3


async def test_deletions_are_told_as_messages(
    photo_dir: Path, settings: Settings, store: VectorStore, offline_encoder: Any
) -> None:
    service = IngestService(offline_encoder, store, settings)
    await service.write(collect("test", [CatalogRow(1, product(p, f"{p}.jpg")) for p in ("p0", "p1", "p2")]), photo_dir)
    progress = RecordingProgress()
    kept = [CatalogRow(1, product("p0", "p3.jpg")), CatalogRow(2, product("p1", "p1.jpg"))]
    summary = await service.write(collect("test", kept), photo_dir, sync=True, progress=progress)
    assert summary.deleted == 2 and summary.ok
    assert progress.messages == [
        "deleting 1 photo(s) the products no longer list",
        "deleting 1 product(s) no longer in the catalog",
    ]
    assert progress.totals == [2] and sum(progress.advances) == 2


async def test_silent_progress_is_the_default(
    photo_dir: Path, settings: Settings, store: VectorStore, offline_encoder: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    service = IngestService(offline_encoder, store, settings)
    rows = collect("test", [CatalogRow(None, product("a", "p0.jpg"))])
    assert (await service.write(rows, photo_dir)).indexed == 1
    assert (await service.write(rows, photo_dir, progress=SilentProgress())).unchanged == 1
    assert capsys.readouterr() == ("", "")


def test_collect_folds_any_reader_stream() -> None:
    """A reader is a stream of items; duplicates and source facts are sorted out in one place."""
    stream = [
        CatalogWarning("column 'x' is ignored"),
        MentionedIds(frozenset({"gone"})),
        CatalogRow(2, product("a", "a.jpg")),
        RowError(3, "b", "title: missing", structural=True),
        CatalogRow(4, product("a", "other.jpg")),
        SuspectRow(5),
    ]
    catalog = collect("feed.xml", stream)
    assert [row.line for row in catalog.rows] == [2]
    assert [(e.line, e.product_id, e.reason) for e in catalog.errors] == [
        (3, "b", "title: missing"),
        (4, "a", "duplicate id, first seen on line 2"),
    ]
    assert catalog.warnings == ["column 'x' is ignored"] and catalog.suspect_lines == [5]
    assert catalog.named_ids() == {"a", "b", "gone"} and not catalog.structurally_sound
    with pytest.raises(CatalogError, match=r"feed\.xml: the catalog has no product rows"):
        collect("feed.xml", [CatalogWarning("nothing else")])


def test_core_ingest_imports_no_terminal_or_cli_code() -> None:
    """The server imports core.ingest: no tqdm, no CLI package, come with it."""
    code = (
        "import json, sys; import visearch.core.ingest, visearch.core.catalog, visearch.core.fetch, "
        "visearch.bots.api.catalog; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'tqdm' "
        "or m.startswith('visearch.indexer'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == []


def test_bots_never_import_the_cli_package() -> None:
    found = []
    for path in sorted((REPO / "bots").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            found.extend(f"{path.relative_to(REPO)}: {name}" for name in names if name.startswith("visearch.indexer"))
    assert found == []
