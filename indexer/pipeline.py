"""Catalog in, collection out: fetch, hash, skip what is unchanged, embed in batches, write.

Shape of a run:

1. read the catalog (a `CatalogError` stops everything before the store is touched);
2. check the collection belongs to this encoder, read what it holds (id -> image hash, product hash);
3. fetch workers (`fetch_concurrency` of them) download/read images and hash them, feeding a
   bounded queue, so fetching goes on while a batch is decoded and embedded in a worker thread;
4. each fetched image is sorted: *unchanged* (same image hash and product hash: no work),
   *updated* (same image, new metadata: the stored vector is written back with the new payload,
   never re-embedded), *copied* (an identical image is already stored under another point,
   e.g. the URL changed: its vector is reused), or *to embed*;
5. writes go to the store one batch at a time and each batch is durable when written, so an
   interrupted run (Ctrl-C, kill) keeps its work and the next run finds those images unchanged;
6. only after every image was handled: points of images a product no longer lists are deleted,
   and with `sync`, products no longer in the catalog (never those whose row failed to parse).

Every point also carries the product's words (title, brand, category, tags, OCR text of that
photo when `VISEARCH_OCR` is on, description) as a second "text" vector when the encoder reads
words; a metadata update re-embeds those words (cheap) and keeps the image vector.

The collection is tied to one encoder (`ensure_collection` raises `EncoderMismatchError`), so
"same image hash + same product hash" in it means "same vector and same payload".
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from visearch.core.colour import dominant_colours
from visearch.core.config import Settings
from visearch.core.domain import CollectionInfo, PointRecord, Product, point_id_for
from visearch.core.encoders.base import Encoder, WordsEncoder, words_dim
from visearch.core.errors import ImageError, MassDeleteError, RebuildIncompleteError, StoreError
from visearch.core.images import decode_image
from visearch.core.ocr import TextReader
from visearch.core.store.base import VectorStore
from visearch.indexer.catalog import CatalogReadResult, read_catalog
from visearch.indexer.fetch import FetchError, ImageFetcher
from visearch.indexer.netguard import AddressPolicy

#: decode at about this size (JPEG DCT scaling): plenty for 224-px encoders, far cheaper than 12 MP.
#: The same hint as the search path (core.search), so catalog and query photos are treated alike.
DECODE_SIZE_HINT = 448
#: hash big downloads off the event loop (hashlib releases the GIL)
HASH_IN_THREAD_BYTES = 256 * 1024
#: how many products a note lists before "..."
NOTE_IDS = 10


@dataclass(frozen=True)
class Problem:
    """One thing that went wrong: catalog line, product, image, reason."""

    line: int | None
    product_id: str | None
    image: str | None
    reason: str

    def __str__(self) -> str:
        parts = [f"line {self.line}" if self.line else "catalog"]
        if self.product_id:
            parts.append(f"product {self.product_id}")
        if self.image:
            parts.append(f"image {self.image}")
        return f"{', '.join(parts)}: {self.reason}"


@dataclass
class IndexSummary:
    """What a run did. Counts are of images (points) except `products` and `skipped` (rows).

    - products:  catalog rows that parsed into a product
    - images:    images those products list
    - indexed:   images written with a new vector (embedded, or copied from an identical stored image)
    - embedded:  of `indexed`, images that went through the encoder
    - unchanged: images skipped because image, metadata and encoder are as stored
    - updated:   images whose product metadata changed: payload rewritten, vector kept
    - skipped:   catalog rows not indexed at all (parse errors, no image)
    - failed:    images that could not be fetched or decoded (the product's other images still count)
    - deleted:   points removed (images a product dropped; with sync, products gone from the catalog)

    `ok` is False when any row was skipped or any image failed (the CLI exits non-zero).
    """

    products: int = 0
    images: int = 0
    indexed: int = 0
    embedded: int = 0
    unchanged: int = 0
    updated: int = 0
    skipped: int = 0
    failed: int = 0
    deleted: int = 0
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: products none of whose listed images could be used: whatever they had stored is kept as it was
    kept: list[str] = field(default_factory=list)
    #: products with at least one listed image stored by the end of the run (written or unchanged)
    stored_products: set[str] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return not (self.skipped or self.failed)

    def counts(self) -> dict[str, int]:
        return {"products": self.products, "images": self.images, "indexed": self.indexed,
                "embedded": self.embedded, "unchanged": self.unchanged, "updated": self.updated,
                "skipped": self.skipped, "failed": self.failed, "deleted": self.deleted}

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "counts": self.counts(), "problems": [str(p) for p in self.problems],
                "notes": list(self.notes)}

    def describe(self) -> str:
        """One summary line (plus notes) for people."""
        line = (f"{self.products} products: {self.indexed} images indexed, {self.unchanged} unchanged, "
                f"{self.updated} updated (metadata only), {self.deleted} deleted; "
                f"{self.skipped} rows skipped, {self.failed} images failed")
        return "\n".join([line, *self.notes])


def product_hash(product: Product, image_root: str = "") -> str:
    """Hash of the product's metadata (everything but per-image fields): a change means rewriting payloads.

    The catalog's folder is part of it: a moved catalog rewrites the recorded image root."""
    data = product.model_dump(mode="json")
    data["__image_root"] = image_root
    blob = json.dumps(data, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


async def index_catalog(
    catalog_path: Path | str,
    encoder: Encoder,
    store: VectorStore,
    settings: Settings,
    *,
    sync: bool = False,
    recreate: bool = False,
    progress: bool = True,
    allow_mass_delete: bool = False,
) -> IndexSummary:
    """Index every product of the catalog; with `sync`, also delete products no longer listed.

    Raises `CatalogError` (file unreadable: nothing touched), `EncoderMismatchError` (the collection
    belongs to another encoder: nothing touched), `StoreError`; a bad row or image is only reported.
    """
    catalog_path = Path(catalog_path)
    catalog = await asyncio.to_thread(read_catalog, catalog_path)
    return await index_rows(catalog, catalog_path.parent, encoder, store, settings, sync=sync, recreate=recreate,
                            progress=progress, allow_mass_delete=allow_mass_delete)


async def index_rows(
    catalog: CatalogReadResult,
    base_dir: Path,
    encoder: Encoder,
    store: VectorStore,
    settings: Settings,
    *,
    sync: bool = False,
    recreate: bool = False,
    progress: bool = False,
    only_listed: bool = False,
    allow_mass_delete: bool = False,
    address_policy: AddressPolicy | None = None,
) -> IndexSummary:
    """Index parsed catalog rows whose local image refs resolve against `base_dir`.

    `only_listed` (the HTTP API's upserts): read back and touch only the listed products' points,
    not the whole collection; a product's images that it no longer lists are still deleted.
    """
    if sync and only_listed:
        raise ValueError("sync deletes unlisted products: it cannot be combined with only_listed")
    summary = IndexSummary(products=len(catalog.rows))
    summary.notes.extend(catalog.warnings)
    for err in catalog.errors:
        summary.skipped += 1
        summary.problems.append(Problem(err.line, err.product_id, None, err.reason))

    rebuild = recreate and store.safe_rebuild
    before = await _stored_product_ids(store) if rebuild else set()
    if rebuild:
        _guard_rebuild(catalog, before, allow_mass_delete)
    info = await store.ensure_collection(encoder.model_id, encoder.dim, recreate=recreate, text_dim=words_dim(encoder))
    try:
        await _write_rows(catalog, base_dir, encoder, store, settings, summary, info, sync=sync, progress=progress,
                          only_listed=only_listed, allow_mass_delete=allow_mass_delete, address_policy=address_policy)
    except BaseException:
        if recreate:
            await store.finish_rebuild(commit=False)
        raise
    if recreate:
        lost = sorted((before & _named_ids(catalog)) - summary.stored_products)
        if lost:
            await store.finish_rebuild(commit=False)
            raise RebuildIncompleteError(lost, [str(p) for p in summary.problems if p.product_id in set(lost)])
        await store.finish_rebuild(commit=True)
        dropped = before - _named_ids(catalog)
        if dropped:
            summary.notes.append(f"the rebuilt collection leaves out {len(dropped)} product(s) the catalog does not "
                                 f"list: {_ids(sorted(dropped))}")
    summary.problems.sort(key=lambda p: p.line or 0)
    return summary


async def _write_rows(
    catalog: CatalogReadResult,
    base_dir: Path,
    encoder: Encoder,
    store: VectorStore,
    settings: Settings,
    summary: IndexSummary,
    info: CollectionInfo,
    *,
    sync: bool,
    progress: bool,
    only_listed: bool,
    allow_mass_delete: bool,
    address_policy: AddressPolicy | None,
) -> None:
    """Fetch, embed and write every listed image, then delete what was replaced (and, with `sync`,
    what the catalog no longer lists)."""
    words = isinstance(encoder, WordsEncoder) and info.text_dim == encoder.words_dim
    if isinstance(encoder, WordsEncoder) and not words:
        summary.notes.append(
            f"collection {info.name!r} was built before text signals: text queries match the photos only. "
            "Rebuild it with `visearch index CATALOG --recreate` so they also match titles, tags and OCR text.")
    existing = await _scan(store, [row.product.id for row in catalog.rows] if only_listed else None)
    plan = plan_sync(catalog, existing, allow_mass_delete=allow_mass_delete) if sync else None

    image_root = str(Path(base_dir).resolve())
    jobs: list[_Job] = []
    for row in catalog.rows:
        if not row.product.images:
            summary.skipped += 1
            kept = sum(1 for old in existing.values() if old.product_id == row.product.id)
            reason = "no image: a product needs at least one photo"
            summary.problems.append(Problem(row.line, row.product.id, None,
                                            reason + (f" (its {kept} stored image(s) are kept)" if kept else "")))
            continue
        phash = product_hash(row.product, image_root)
        for index, ref in enumerate(row.product.images):
            jobs.append(_Job(row.line, row.product, ref, index, point_id_for(row.product.id, ref), phash, image_root))
    summary.images = len(jobs)

    bar = tqdm(total=len(jobs), unit="img", desc="indexing", file=sys.stderr, disable=not progress,
               dynamic_ncols=True, smoothing=0.1)
    try:
        async with ImageFetcher(settings, address_policy=address_policy) as fetcher:
            run = _Run(encoder, store, settings, summary, existing, bar, words)
            await run.process(fetcher, jobs, Path(base_dir))
    finally:
        bar.close()

    summary.deleted += await _delete_replaced_images(store, catalog, existing, summary)
    if plan is not None:
        summary.deleted += await _carry_out(store, plan, summary)


async def _stored_product_ids(store: VectorStore) -> set[str]:
    """The products the collection holds now; none when it does not exist or cannot be read
    (a rebuild is how a broken collection is repaired)."""
    try:
        return {str(p.payload.get("product_id")) async for p in store.scroll(batch_size=1024)}
    except StoreError:
        return set()


def _named_ids(catalog: CatalogReadResult) -> set[str]:
    """Every product id the catalog names: good rows, broken rows with a readable id, any line."""
    return ({row.product.id for row in catalog.rows} | {e.product_id for e in catalog.errors if e.product_id}
            | catalog.mentioned_ids)


def _guard_rebuild(catalog: CatalogReadResult, before: set[str], allow_mass_delete: bool) -> None:
    """A rebuild keeps only what the catalog names: the same guard as `sync`, before anything is written."""
    refuse_mass_delete(before - _named_ids(catalog), before, allow_mass_delete, "index --recreate")


def refuse_mass_delete(gone: set[str], stored: set[str], allow_mass_delete: bool, command: str) -> None:
    """Raise `MassDeleteError` when more than half of the stored products would go and the caller
    did not allow it: a truncated or half-exported catalog must not empty the shop."""
    if len(gone) * 2 > len(stored) and not allow_mass_delete:
        raise MassDeleteError(len(gone), len(stored), command)


# --- internals ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Job:
    """One image of one product, from fetch to write."""

    line: int
    product: Product
    ref: str
    index: int
    point_id: str
    product_hash: str
    image_root: str
    data: bytes | None = None
    sha256: str = ""

    def payload(self) -> dict[str, Any]:
        payload = self.product.payload(self.ref, self.sha256, self.index)
        payload["product_hash"] = self.product_hash
        payload["image_root"] = self.image_root  # local refs resolve against it when a bot uploads them
        return payload


@dataclass(frozen=True, slots=True)
class _Existing:
    """What the collection holds for one point (payload fields only)."""

    product_id: str | None
    sha256: str | None
    product_hash: str | None
    has_ocr: bool = False


@dataclass(frozen=True, slots=True)
class _Copy:
    """Write `job` with the vector stored under `source` (itself for a metadata update)."""

    job: _Job
    source: str


class _Done:
    """End of the fetch stream."""


@dataclass(frozen=True)
class _ProducerFailed:
    error: BaseException


_Fetched = tuple[_Job, str | None]  # the job (bytes and hash filled in) or a failure reason


async def _scan(store: VectorStore, product_ids: Sequence[str] | None = None) -> dict[str, _Existing]:
    """What the collection holds now (of these products, when given): the basis for skipping
    unchanged images and for deletions."""
    found: dict[str, _Existing] = {}
    async for point in store.scroll(batch_size=1024, product_ids=product_ids):
        payload = point.payload
        pid = payload.get("product_id")
        found[point.point_id] = _Existing(None if pid is None else str(pid), payload.get("image_sha256"),
                                          payload.get("product_hash"), "ocr_text" in payload)
    return found


class _Run:
    """The state of one run: what the store holds, what waits to be written, the counts."""

    def __init__(self, encoder: Encoder, store: VectorStore, settings: Settings, summary: IndexSummary,
                 existing: dict[str, _Existing], bar: tqdm, words: bool = False) -> None:
        self.encoder, self.store, self.settings, self.summary, self.existing, self.bar = (
            encoder, store, settings, summary, existing, bar)
        #: the collection holds text vectors: every written point gets the product's words embedded
        self.words = words
        self.reader = TextReader() if settings.ocr else None
        self.batch_size = settings.batch_size
        # a stored point for each image hash: identical bytes under a new id reuse its vector
        self.by_sha: dict[str, str] = {}
        for pid, old in existing.items():
            if old.sha256:
                self.by_sha.setdefault(old.sha256, pid)
        self.to_embed: list[_Job] = []
        self.to_copy: list[_Copy] = []

    async def process(self, fetcher: ImageFetcher, jobs: Sequence[_Job], base_dir: Path) -> None:
        """Fetch concurrently (producer) while sorting, embedding and writing batches (here)."""
        if not jobs:
            return
        queue: asyncio.Queue[_Fetched | _Done | _ProducerFailed] = asyncio.Queue(maxsize=2 * self.batch_size)
        producer = asyncio.create_task(self._produce(fetcher, jobs, base_dir, queue), name="visearch-fetch")
        try:
            while True:
                item = await queue.get()
                if isinstance(item, _Done):
                    break
                if isinstance(item, _ProducerFailed):
                    raise item.error
                job, error = item
                if error is not None:
                    self._fail(job, error)
                    continue
                self._sort(job)
                if len(self.to_copy) >= self.batch_size:
                    await self._flush_copies()
                if len(self.to_embed) >= self.batch_size:
                    await self._flush_embed()
            await self._flush_copies()  # may hand images back to embed
            while self.to_embed:
                await self._flush_embed()
        finally:
            if not producer.done():
                producer.cancel()
            await asyncio.gather(producer, return_exceptions=True)

    async def _produce(self, fetcher: ImageFetcher, jobs: Sequence[_Job], base_dir: Path,
                       queue: asyncio.Queue[_Fetched | _Done | _ProducerFailed]) -> None:
        pending = iter(jobs)

        async def worker() -> None:
            for job in pending:  # shared iterator: each job goes to exactly one worker
                await queue.put(await _fetch_and_hash(fetcher, job, base_dir))

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(self.settings.fetch_concurrency, len(jobs))):
                    group.create_task(worker())
        except Exception as exc:  # a bug, not a bad image: stop the run with it
            await queue.put(_ProducerFailed(exc))
            return
        await queue.put(_Done())

    def _sort(self, job: _Job) -> None:
        """Unchanged, metadata update, copy of an identical image, or embed."""
        old = self.existing.get(job.point_id)
        if old is not None and old.sha256 == job.sha256:
            if self.reader is not None and not old.has_ocr:
                self.to_embed.append(job)  # OCR was turned on since: read this photo once
            elif old.product_hash == job.product_hash:
                job.data = None
                self.summary.unchanged += 1
                self.summary.stored_products.add(job.product.id)
                self._advance(1)
            else:
                self.to_copy.append(_Copy(job, job.point_id))
            return
        donor = self.by_sha.get(job.sha256)
        if donor is not None and donor != job.point_id:
            self.to_copy.append(_Copy(job, donor))
        else:
            self.to_embed.append(job)

    async def _flush_copies(self) -> None:
        """Write stored vectors with new payloads: one retrieve and one upsert per batch.

        (A batch upsert instead of `set_payload` per point: same result - the vector is the stored
        one - at one durable write per batch instead of one per point.) Anything whose source is
        gone or holds other bytes by now goes to the embed queue instead.
        """
        copies, self.to_copy = self.to_copy, []
        if not copies:
            return
        sources = list(dict.fromkeys(c.source for c in copies))
        stored = {p.point_id: p for p in await self.store.retrieve(sources, with_vectors=True)}
        records: list[PointRecord] = []
        updated = copied = 0
        for copy in copies:
            job, source = copy.job, stored.get(copy.source)
            if (source is None or source.vector is None or source.payload.get("image_sha256") != job.sha256
                    or (self.reader is not None and "ocr_text" not in source.payload)):
                self.to_embed.append(job)
                continue
            payload = {**job.payload(), "colours": source.payload.get("colours") or []}  # same bytes, same colours
            if "ocr_text" in source.payload:
                payload["ocr_text"] = source.payload["ocr_text"]
            records.append(PointRecord(id=job.point_id, vector=source.vector, payload=payload))
            job.data = None
            if copy.source == job.point_id:
                updated += 1
            else:
                copied += 1
        if records:
            await self.store.upsert(await self._with_words(records))
        self.summary.stored_products.update(r.payload["product_id"] for r in records)
        self.summary.updated += updated
        self.summary.indexed += copied
        self._advance(len(records))

    async def _flush_embed(self) -> None:
        """Decode and embed one batch in a worker thread, then write it (durable before returning)."""
        jobs, self.to_embed = self.to_embed[: self.batch_size], self.to_embed[self.batch_size :]
        if not jobs:
            return
        vectors, errors, embedded, colours, texts = await asyncio.to_thread(
            _decode_and_embed, jobs, self.encoder, self.settings.max_image_pixels, self.reader)
        records: list[PointRecord] = []
        for job, vector, error, names, text in zip(jobs, vectors, errors, colours, texts, strict=True):
            if error is not None:
                self._fail(job, error, advance=False)
            else:
                assert vector is not None
                payload = {**job.payload(), "colours": names}
                if text is not None:
                    payload["ocr_text"] = text
                records.append(PointRecord(id=job.point_id, vector=vector, payload=payload))
            job.data = None
        if records:
            await self.store.upsert(await self._with_words(records))
        for record in records:  # now durable: later identical images may copy these vectors
            self.by_sha.setdefault(record.payload["image_sha256"], record.id)
            self.summary.stored_products.add(record.payload["product_id"])
        self.summary.indexed += len(records)
        self.summary.embedded += embedded
        self._advance(len(jobs))

    async def _with_words(self, records: list[PointRecord]) -> list[PointRecord]:
        """Attach each point's text vector: its product's words plus the OCR text of its photo."""
        if not self.words:
            return records
        assert isinstance(self.encoder, WordsEncoder)
        texts = [Product.from_payload(r.payload).words(str(r.payload.get("ocr_text") or "")) for r in records]
        vectors = await asyncio.to_thread(self.encoder.embed_words, texts)
        return [r.model_copy(update={"text_vector": [float(x) for x in v]}) for r, v in zip(records, vectors, strict=True)]

    def _fail(self, job: _Job, reason: str, *, advance: bool = True) -> None:
        job.data = None
        self.summary.failed += 1
        self.summary.problems.append(Problem(job.line, job.product.id, job.ref, reason))
        if advance:
            self._advance(1)

    def _advance(self, n: int) -> None:
        if n and not self.bar.disable:
            s = self.summary
            self.bar.set_postfix(new=s.indexed, same=s.unchanged, upd=s.updated, failed=s.failed, refresh=False)
            self.bar.update(n)


async def _fetch_and_hash(fetcher: ImageFetcher, job: _Job, base_dir: Path) -> _Fetched:
    """Bytes and sha256 of one image, or a reason; never raises (but for cancellation)."""
    try:
        data = await fetcher.fetch(job.ref, base_dir)
        if len(data) > HASH_IN_THREAD_BYTES:
            digest = await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())
        else:
            digest = hashlib.sha256(data).hexdigest()
    except FetchError as exc:
        return job, str(exc)
    except Exception as exc:  # one odd image must not stop a catalog of thousands
        return job, f"unexpected error while fetching: {type(exc).__name__}: {exc}"
    job.data, job.sha256 = data, digest
    return job, None


def _decode_and_embed(
    jobs: Sequence[_Job], encoder: Encoder, max_pixels: int, reader: TextReader | None = None
) -> tuple[list[list[float] | None], list[str | None], int, list[list[str]], list[str | None]]:
    """Decode each distinct image once (a bad one is reported, the rest go on), embed the good ones
    in one call. Returns per-job vectors and errors, how many images the encoder saw, the dominant
    colour names per job (for the colour filter) and, with a `reader`, the text read off each photo."""
    images = []
    slot_of: dict[str, int] = {}  # image hash -> position in `images`
    errors_by_sha: dict[str, str] = {}
    for job in jobs:
        if job.sha256 in slot_of or job.sha256 in errors_by_sha:
            continue
        try:
            assert job.data is not None
            images.append(decode_image(job.data, max_pixels, target_size=DECODE_SIZE_HINT))
            slot_of[job.sha256] = len(images) - 1
        except ImageError as exc:
            errors_by_sha[job.sha256] = str(exc)
        except Exception as exc:  # Pillow raises odd things on odd files; report, do not stop
            errors_by_sha[job.sha256] = f"cannot decode image: {type(exc).__name__}: {exc}"
    rows: list[list[float]] = []
    if images:
        embedded = encoder.embed_images(images)
        if len(embedded) != len(images):
            raise RuntimeError(f"encoder returned {len(embedded)} vectors for {len(images)} images")
        rows = [[float(x) for x in vector] for vector in embedded]
    names = [dominant_colours(img) for img in images]
    read = [reader.read(img) for img in images] if reader is not None else [None] * len(images)
    vectors = [rows[slot_of[j.sha256]] if j.sha256 in slot_of else None for j in jobs]
    errors = [errors_by_sha.get(j.sha256) for j in jobs]
    colours = [names[slot_of[j.sha256]] if j.sha256 in slot_of else [] for j in jobs]
    texts = [read[slot_of[j.sha256]] if j.sha256 in slot_of else None for j in jobs]
    return vectors, errors, len(images), colours, texts


async def _delete_replaced_images(store: VectorStore, catalog: CatalogReadResult,
                                  existing: dict[str, _Existing], summary: IndexSummary) -> int:
    """Points of listed products whose image the product's row no longer lists - only for products
    that have at least one listed image stored now, so a replacement exists before the old is gone.

    A product none of whose new images could be used keeps every point it had (and is named in
    `summary.kept`); a row without images is left alone (it was reported as skipped).
    """
    listed: dict[str, set[str]] = {
        row.product.id: {point_id_for(row.product.id, ref) for ref in row.product.images}
        for row in catalog.rows if row.product.images
    }
    stale_by_product: dict[str, list[str]] = {}
    for pid, old in existing.items():
        if old.product_id in listed and pid not in listed[old.product_id]:
            stale_by_product.setdefault(old.product_id, []).append(pid)
    stale: list[str] = []
    for product_id, points in stale_by_product.items():
        if product_id in summary.stored_products:
            stale.extend(points)
    had_points = {old.product_id for old in existing.values()}
    kept = sorted(pid for pid in listed if pid not in summary.stored_products and pid in had_points)
    if kept:
        summary.kept.extend(kept)
        summary.notes.append(f"kept the stored photos of {len(kept)} product(s) none of whose new photos could be "
                             f"used: {_ids(kept)}")
    if stale:
        await store.delete_points(stale)
    return len(stale)


@dataclass(frozen=True)
class SyncPlan:
    """What `sync` will delete once every listed product was written, decided before anything is."""

    gone: list[str]
    stored: int
    notes: list[str] = field(default_factory=list)


def plan_sync(catalog: CatalogReadResult, existing: dict[str, _Existing], *, allow_mass_delete: bool) -> SyncPlan:
    """Products the catalog no longer lists - never one whose row failed, nor one whose id appears
    on any line of the file, and none at all when the file had a structural error.

    Raises `MassDeleteError` when more than half of the stored products would go and the caller
    did not allow it: a truncated or half-exported catalog must not empty the shop.
    """
    listed = {row.product.id for row in catalog.rows}
    anonymous = sorted(err.line for err in catalog.errors if not err.product_id)
    structural = sorted({err.line for err in catalog.errors if err.structural} | set(catalog.suspect_lines))
    stored = {old.product_id for old in existing.values() if old.product_id is not None}
    kept = sorted((stored - listed) & _named_ids(catalog))
    gone = sorted(stored - _named_ids(catalog))
    notes = []
    if kept:
        notes.append(f"sync kept {len(kept)} product(s) whose catalog row has an error: {_ids(kept)}")
    if gone and structural:
        notes.append(f"sync deleted nothing: the catalog has {len(structural)} row(s) whose quotes or field count "
                     f"look broken (line "
                     f"{_lines(structural)}) that may hide any of the {len(gone)} stored product(s) missing from it; "
                     "fix those rows and sync again")
        return SyncPlan([], len(stored), notes)
    if gone and anonymous:
        notes.append(
            f"sync deleted nothing: {len(anonymous)} row(s) without a readable id (line {_lines(anonymous)}) might be "
            f"any of the {len(gone)} stored product(s) missing from the catalog; fix those rows and sync again")
        return SyncPlan([], len(stored), notes)
    refuse_mass_delete(set(gone), stored, allow_mass_delete, "sync")
    if gone:
        notes.append(f"sync removed {len(gone)} product(s) no longer in the catalog: {_ids(gone)}")
    return SyncPlan(gone, len(stored), notes)


async def _carry_out(store: VectorStore, plan: SyncPlan, summary: IndexSummary) -> int:
    summary.notes.extend(plan.notes)
    if not plan.gone:
        return 0
    return await store.delete_products(plan.gone)


def _lines(lines: Sequence[int]) -> str:
    return ", ".join(map(str, lines[:NOTE_IDS])) + (", ..." if len(lines) > NOTE_IDS else "")


def _ids(ids: Sequence[str]) -> str:
    return ", ".join(ids[:NOTE_IDS]) + (f", ... ({len(ids) - NOTE_IDS} more)" if len(ids) > NOTE_IDS else "")
