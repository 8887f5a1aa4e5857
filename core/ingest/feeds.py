"""Syncing a collection with a shop's feed (a file path or an http(s) URL), on demand or on a schedule.

One sync is two steps, so the CLI can refuse a broken feed before it loads a model:

1. `FeedSync.prepare`: download the whole feed (conditional GET with the validators of the last
   good sync), then parse it off the event loop. A 304, or the same bytes as last time, is
   `Unchanged`: no parse, no model, no write. A failed download or a feed that cannot be parsed
   raises `CatalogError` before anything is touched.
2. `FeedSync.apply`: the ingest service writes it with `sync=True` (products gone from the feed are
   deleted only after everything else was written, never when that would remove more than half
   of the collection: `MassDeleteError`), and image URLs a product already has stored are not
   downloaded again. The feed's validators are kept in `<data_dir>/feeds.json` only after a run
   with no failed image, so a photo that failed to download is tried again next time.

`FeedSync.status` keeps per-source figures (last success, items, failures, duration) for the
server's /metrics and stats. Runs of one `FeedSync` never overlap (`lock`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import httpx

from visearch.core.catalog import Catalog, read_catalog
from visearch.core.catalog.files import CatalogFormat
from visearch.core.catalog.remote import (
    DownloadedFeed,
    FeedDownloader,
    NotModified,
    Validators,
    absolute_image_refs,
    is_feed_url,
    public_url,
)
from visearch.core.config import Settings
from visearch.core.encoders.base import Encoder
from visearch.core.errors import VisearchError
from visearch.core.ingest.progress import Progress
from visearch.core.ingest.service import IngestService
from visearch.core.ingest.summary import IndexSummary
from visearch.core.store.base import VectorStore

#: where the validators of each feed's last good sync are kept, in the data directory
STATE_FILE = "feeds.json"

Outcome = Literal["synced", "unchanged", "failed"]


@dataclass(frozen=True)
class FeedRecord:
    """What the last good sync of one source read: how to ask whether it changed, and its size."""

    etag: str | None = None
    last_modified: str | None = None
    digest: str = ""
    items: int = 0
    synced_at: float = 0.0


class FeedStates:
    """`<data_dir>/feeds.json`: one `FeedRecord` per collection and source, written atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> dict[str, dict[str, object]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):  # absent or damaged: every feed is read afresh, nothing lost
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, key: str) -> FeedRecord | None:
        raw = self._load().get(key)
        if not isinstance(raw, dict):
            return None
        try:
            return FeedRecord(**raw)  # type: ignore[arg-type]
        except TypeError:
            return None

    def put(self, key: str, record: FeedRecord) -> None:
        data = self._load()
        data[key] = asdict(record)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.path)

    def forget(self, key: str) -> None:
        data = self._load()
        if data.pop(key, None) is not None:
            tmp = self.path.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
            os.replace(tmp, self.path)


@dataclass(frozen=True)
class Unchanged:
    """The feed is what the last good sync read (HTTP 304, or the same bytes): nothing to do."""

    source: str
    requests: int
    how: str  # "304 Not Modified" / "same content"


@dataclass
class PreparedFeed:
    """A feed downloaded and parsed, ready for `FeedSync.apply`."""

    source: str  # as shown: a URL without query or credentials
    key: str  # where its record is kept (`FeedSync.key`)
    catalog: Catalog
    base_dir: Path
    record: FeedRecord
    requests: int


@dataclass
class FeedRun:
    """What one sync of one source did."""

    source: str
    outcome: Outcome
    seconds: float
    requests: int = 0
    items: int = 0
    summary: IndexSummary | None = None
    error: str | None = None


@dataclass
class FeedStatus:
    """Per-source figures since the process started (for /metrics and stats)."""

    source: str
    runs: int = 0
    failures: int = 0
    unchanged: int = 0
    last_outcome: Outcome | None = None
    last_success: float | None = None  # unix time of the last run that did not fail
    last_duration: float | None = None
    items: int = 0
    last_error: str | None = None
    counts: dict[str, int] = field(default_factory=dict)


class FeedIntake:
    """Downloads (or opens) and parses feeds, and remembers what the last good sync of each read; needs no model."""

    def __init__(self, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        """`transport` is for tests and special set-ups (the feed's HTTP client otherwise uses the network)."""
        self.settings, self._transport = settings, transport
        self.states = FeedStates(settings.data_dir / STATE_FILE)

    def key(self, source: str) -> str:
        """The state key of a source in this collection (a file by its absolute path)."""
        where = source if is_feed_url(source) else str(Path(source).resolve())
        return f"{self.settings.collection}\x00{where}"

    async def prepare(
        self, source: str, *, fmt: CatalogFormat | None = None, force: bool = False
    ) -> PreparedFeed | Unchanged:
        """Download (or open) and parse the feed; `Unchanged` when it is what the last good sync read
        (unless `force`). Raises `CatalogError` (nothing touched) for a feed that cannot be had whole."""
        key = self.key(source)
        previous = None if force else self.states.get(key)
        if not is_feed_url(source):
            path = Path(source)
            digest = await asyncio.to_thread(_file_digest, path)
            if previous is not None and digest and previous.digest == digest:
                return Unchanged(source, 0, "same content")
            catalog = await asyncio.to_thread(self._read_file, path, fmt)
            record = FeedRecord(digest=digest, items=len(catalog.rows), synced_at=time.time())
            return PreparedFeed(source, key, catalog, path.parent, record, 0)
        validators = Validators(previous.etag, previous.last_modified) if previous else Validators()
        async with FeedDownloader(
            max_bytes=self.settings.feed_max_bytes, timeout_s=self.settings.feed_timeout, transport=self._transport
        ) as downloader:
            got = await downloader.download(source, fmt=fmt, validators=validators)
        shown = public_url(source)
        if isinstance(got, NotModified):
            return Unchanged(shown, got.requests, "304 Not Modified")
        with got:
            if previous is not None and previous.digest and previous.digest == got.digest:
                return Unchanged(shown, got.requests, "same content")
            catalog = await asyncio.to_thread(self._read_download, got)
        record = FeedRecord(
            got.validators.etag, got.validators.last_modified, got.digest, len(catalog.rows), time.time()
        )
        return PreparedFeed(shown, key, catalog, Path.cwd(), record, got.requests)

    def _read_file(self, path: Path, fmt: CatalogFormat | None) -> Catalog:
        return read_catalog(path, fmt=fmt, currency=self.settings.currency, max_bytes=self.settings.feed_max_bytes)

    def _read_download(self, feed: DownloadedFeed) -> Catalog:
        catalog = feed.read(currency=self.settings.currency, max_bytes=self.settings.feed_max_bytes)
        return absolute_image_refs(catalog, feed.url)


class FeedSync:
    """Syncs one collection with feeds through a `FeedIntake`; one run at a time."""

    def __init__(
        self, encoder: Encoder, store: VectorStore, settings: Settings, intake: FeedIntake | None = None
    ) -> None:
        self.encoder, self.store, self.settings = encoder, store, settings
        self.intake = intake or FeedIntake(settings)
        self.status: dict[str, FeedStatus] = {}
        self.lock = asyncio.Lock()

    async def apply(
        self,
        prepared: PreparedFeed,
        *,
        sync: bool = True,
        allow_mass_delete: bool = False,
        refetch_images: bool = False,
        progress: Progress | None = None,
    ) -> IndexSummary:
        """Write the prepared feed (`sync`: and delete what it no longer lists); with `sync`, its record is
        kept when no image failed, so the next sync of an unchanged feed does nothing.

        Raises `MassDeleteError` (nothing deleted), `EncoderMismatchError`, `StoreError`."""
        ingest = IngestService(self.encoder, self.store, self.settings)
        summary = await ingest.write(
            prepared.catalog,
            prepared.base_dir,
            sync=sync,
            allow_mass_delete=allow_mass_delete,
            progress=progress,
            reuse_stored_urls=not refetch_images,
        )
        if sync and summary.failed == 0 and prepared.record.digest:
            await asyncio.to_thread(self.intake.states.put, prepared.key, prepared.record)
        return summary

    async def run(self, source: str, *, fmt: CatalogFormat | None = None, force: bool = False) -> FeedRun:
        """One whole sync of `source` (the server's schedule and its trigger): never raises for a bad feed,
        the run's outcome and error say what happened; runs never overlap."""
        async with self.lock:
            started = time.monotonic()
            shown = public_url(source) if is_feed_url(source) else source
            status = self.status.setdefault(shown, FeedStatus(shown))
            try:
                prepared = await self.intake.prepare(source, fmt=fmt, force=force)
                if isinstance(prepared, Unchanged):
                    run = FeedRun(prepared.source, "unchanged", time.monotonic() - started, prepared.requests)
                else:
                    summary = await self.apply(prepared)
                    run = FeedRun(
                        prepared.source,
                        "synced",
                        time.monotonic() - started,
                        prepared.requests,
                        len(prepared.catalog.rows),
                        summary,
                    )
            except VisearchError as exc:
                run = FeedRun(status.source, "failed", time.monotonic() - started, error=str(exc))
            _record(status, run)
            return run


def _file_digest(path: Path) -> str:
    """sha256 of a feed file ("" when it cannot be read: the reader then says why)."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as stream:
            while chunk := stream.read(1024 * 1024):
                digest.update(chunk)
    except OSError:
        return ""
    return digest.hexdigest()


def _record(status: FeedStatus, run: FeedRun) -> None:
    """Fold one run into the source's figures."""
    status.runs += 1
    status.last_outcome = run.outcome
    status.last_duration = run.seconds
    if run.outcome == "failed":
        status.failures += 1
        status.last_error = run.error
        return
    status.last_success = time.time()
    status.last_error = None
    if run.outcome == "unchanged":
        status.unchanged += 1
        return
    status.items = run.items
    if run.summary is not None:
        status.counts = run.summary.counts()
