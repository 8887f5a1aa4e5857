"""Catalog in, collection out: fetch, hash, skip what is unchanged, embed in batches, upsert.

Writes go to the store one batch at a time and each batch is durable when written, so an
interrupted run keeps its work and the next run resumes: an image whose content hash,
product metadata and encoder are unchanged is never embedded again.
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

from core.config import Settings
from core.domain import PointRecord, Product, point_id_for
from core.encoders.base import Encoder
from core.errors import ImageError
from core.images import decode_image
from core.store.base import VectorStore
from indexer.catalog import CatalogRow, read_catalog
from indexer.fetch import FetchError, ImageFetcher

#: decode at about this size (JPEG draft): enough for 224-px encoders, far cheaper than 12 MP
DECODE_SIZE_HINT = 448


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
    """What a run did. `ok` is False when any row was skipped or any image failed."""

    products: int = 0
    indexed: int = 0
    unchanged: int = 0
    updated: int = 0
    skipped: int = 0
    failed: int = 0
    deleted: int = 0
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.skipped or self.failed)

    def counts(self) -> dict[str, int]:
        return {"products": self.products, "indexed": self.indexed, "unchanged": self.unchanged,
                "updated": self.updated, "skipped": self.skipped, "failed": self.failed, "deleted": self.deleted}

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "counts": self.counts(), "problems": [str(p) for p in self.problems], "notes": self.notes}

    def describe(self) -> str:
        """One summary line (plus notes) for people."""
        line = (f"{self.products} products: {self.indexed} images indexed, {self.unchanged} unchanged, "
                f"{self.updated} updated (metadata only), {self.deleted} deleted; "
                f"{self.skipped} rows skipped, {self.failed} images failed")
        return "\n".join([line, *self.notes])


@dataclass
class _ImageJob:
    row: CatalogRow
    ref: str
    index: int
    point_id: str
    product_hash: str
    data: bytes | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class _Existing:
    product_id: str
    sha256: str | None
    product_hash: str | None


def product_hash(product: Product) -> str:
    """Hash of everything in the payload except per-image fields: a change means re-writing payloads."""
    blob = json.dumps(product.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


async def index_catalog(
    catalog_path: Path,
    encoder: Encoder,
    store: VectorStore,
    settings: Settings,
    *,
    sync: bool = False,
    recreate: bool = False,
    progress: bool = True,
) -> IndexSummary:
    """Index every product of the catalog; with `sync`, also delete products no longer listed."""
    catalog = read_catalog(catalog_path)
    summary = IndexSummary(products=len(catalog.rows))
    for err in catalog.errors:
        summary.skipped += 1
        summary.problems.append(Problem(err.line, err.product_id, None, err.reason))
    await store.ensure_collection(encoder.model_id, encoder.dim, recreate=recreate)
    existing = await _existing_points(store)

    jobs: list[_ImageJob] = []
    for row in catalog.rows:
        if not row.product.images:
            summary.skipped += 1
            summary.problems.append(Problem(row.line, row.product.id, None, "no image: a product needs at least one photo"))
            continue
        phash = product_hash(row.product)
        for index, ref in enumerate(row.product.images):
            jobs.append(_ImageJob(row, ref, index, point_id_for(row.product.id, ref), phash))

    summary.deleted += await _delete_dropped_images(store, catalog.rows, existing)
    base_dir = catalog_path.parent
    bar = tqdm(total=len(jobs), unit="img", desc="indexing", file=sys.stderr, disable=not progress, dynamic_ncols=True)
    try:
        async with ImageFetcher(settings) as fetcher:
            batches = [jobs[i : i + settings.batch_size] for i in range(0, len(jobs), settings.batch_size)]
            pending = asyncio.create_task(_fetch_all(fetcher, batches[0], base_dir)) if batches else None
            for i, batch in enumerate(batches):
                assert pending is not None
                fetched = await pending
                # fetch the next batch while this one is embedded
                pending = asyncio.create_task(_fetch_all(fetcher, batches[i + 1], base_dir)) if i + 1 < len(batches) else None
                await _process_batch(fetched, existing, encoder, store, settings, summary)
                bar.update(len(batch))
    finally:
        bar.close()

    if sync:
        summary.deleted += await _delete_missing_products(store, catalog, existing, summary)
    return summary


async def _existing_points(store: VectorStore) -> dict[str, _Existing]:
    """What the collection holds now (payload only): the basis for skipping unchanged images."""
    found: dict[str, _Existing] = {}
    async for point in store.scroll():
        payload = point.payload
        found[point.point_id] = _Existing(str(payload.get("product_id")), payload.get("image_sha256"), payload.get("product_hash"))
    return found


async def _fetch_all(fetcher: ImageFetcher, batch: Sequence[_ImageJob], base_dir: Path) -> list[tuple[_ImageJob, str | None]]:
    """Fetch a batch concurrently; each job gets its bytes or a failure reason."""

    async def one(job: _ImageJob) -> tuple[_ImageJob, str | None]:
        try:
            job.data = await fetcher.fetch(job.ref, base_dir)
        except FetchError as exc:
            return job, str(exc)
        job.sha256 = hashlib.sha256(job.data).hexdigest()
        return job, None

    return list(await asyncio.gather(*(one(job) for job in batch)))


async def _process_batch(
    fetched: list[tuple[_ImageJob, str | None]],
    existing: dict[str, _Existing],
    encoder: Encoder,
    store: VectorStore,
    settings: Settings,
    summary: IndexSummary,
) -> None:
    """Sort a fetched batch into unchanged / payload update / embed, then write it."""
    to_embed: list[_ImageJob] = []
    for job, error in fetched:
        if error is not None:
            _fail(summary, job, error)
            continue
        old = existing.get(job.point_id)
        if old is not None and old.sha256 == job.sha256:
            if old.product_hash == job.product_hash:
                summary.unchanged += 1
            else:
                await store.set_payload(job.point_id, _payload(job))
                summary.updated += 1
            job.data = None
            continue
        to_embed.append(job)
    if not to_embed:
        return
    vectors, errors = await asyncio.to_thread(_decode_and_embed, to_embed, encoder, settings.max_image_pixels)
    records = []
    for job, vector, error in zip(to_embed, vectors, errors, strict=True):
        job.data = None
        if error is not None:
            _fail(summary, job, error)
        else:
            records.append(PointRecord(id=job.point_id, vector=vector, payload=_payload(job)))
    if records:
        await store.upsert(records)
        summary.indexed += len(records)


def _decode_and_embed(jobs: Sequence[_ImageJob], encoder: Encoder, max_pixels: int) -> tuple[list[list[float] | None], list[str | None]]:
    """Decode each image (a bad one is reported, the rest go on) and embed the good ones in one call."""
    images, errors, good = [], [], []
    for i, job in enumerate(jobs):
        try:
            assert job.data is not None
            images.append(decode_image(job.data, max_pixels, target_size=DECODE_SIZE_HINT))
            good.append(i)
            errors.append(None)
        except ImageError as exc:
            errors.append(str(exc))
    vectors: list[list[float] | None] = [None] * len(jobs)
    if images:
        embedded = encoder.embed_images(images)
        for i, vector in zip(good, embedded, strict=True):
            vectors[i] = [float(x) for x in vector]
    return vectors, errors


def _payload(job: _ImageJob) -> dict[str, Any]:
    assert job.sha256 is not None
    payload = job.row.product.payload(job.ref, job.sha256, job.index)
    payload["product_hash"] = job.product_hash
    return payload


def _fail(summary: IndexSummary, job: _ImageJob, reason: str) -> None:
    summary.failed += 1
    summary.problems.append(Problem(job.row.line, job.row.product.id, job.ref, reason))


async def _delete_dropped_images(store: VectorStore, rows: Sequence[CatalogRow], existing: dict[str, _Existing]) -> int:
    """Points of listed products whose image is no longer in the product's row."""
    listed: dict[str, set[str]] = {
        row.product.id: {point_id_for(row.product.id, ref) for ref in row.product.images} for row in rows
    }
    stale = [pid for pid, old in existing.items() if old.product_id in listed and pid not in listed[old.product_id]]
    if stale:
        await store.delete_points(stale)
    return len(stale)


async def _delete_missing_products(store: VectorStore, catalog: Any, existing: dict[str, _Existing], summary: IndexSummary) -> int:
    """`sync`: delete products not in the catalog, but never those whose row failed to parse."""
    listed = {row.product.id for row in catalog.rows}
    unreadable = {err.product_id for err in catalog.errors if err.product_id}
    stored = {old.product_id for old in existing.values()}
    kept = sorted((stored - listed) & unreadable)
    if kept:
        summary.notes.append(f"kept {len(kept)} product(s) whose catalog row has an error: {', '.join(kept[:10])}")
    gone = sorted(stored - listed - unreadable)
    return await store.delete_products(gone) if gone else 0
