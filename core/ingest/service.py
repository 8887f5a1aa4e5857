"""The one ingest service: products from any reader in, a collection that holds them out.

Shape of a run:

1. the caller hands a `Catalog` (any reader's stream, collected; a `CatalogError` while reading
   stops everything before the store is touched);
2. the collection is checked to belong to this encoder, and what it holds is read (id -> image
   hash, product hash); a sync or rebuild that would remove more than half the shop is refused;
3. every listed image is fetched, sorted and written in batches (`writing.ImageWriter`), each
   batch durable when written, progress reported through a `Progress`;
4. only after every image was handled: points of images a product no longer lists are deleted
   (never before a replacement is stored), and with `sync`, products no longer in the catalog
   (never those whose row failed to parse); a rebuild is swapped in only when complete.

Every point also carries the product's words (title, brand, category, tags, OCR text of that
photo when `VISEARCH_OCR` is on, description) as a second "text" vector when the encoder reads
words; a metadata update re-embeds those words (cheap) and keeps the image vector.

The collection is tied to one encoder (`ensure_collection` raises `EncoderMismatchError`), so
"same image hash + same product hash" in it means "same vector and same payload".
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from visearch.core.catalog import Catalog, read_catalog
from visearch.core.config import Settings
from visearch.core.domain import CollectionInfo, point_id_for
from visearch.core.encoders.base import Encoder, WordsEncoder, words_dim
from visearch.core.errors import RebuildIncompleteError
from visearch.core.fetch import ImageFetcher
from visearch.core.ingest.planning import (
    ExistingPoint,
    SyncPlan,
    guard_rebuild,
    ids_text,
    plan_sync,
    replaced_images,
    scan_existing,
    stored_product_ids,
)
from visearch.core.ingest.progress import Progress, SilentProgress
from visearch.core.ingest.summary import IndexSummary, Problem
from visearch.core.ingest.writing import ImageJob, ImageWriter, product_hash
from visearch.core.netguard import AddressPolicy
from visearch.core.store.base import VectorStore


def _opening_summary(catalog: Catalog) -> IndexSummary:
    """The summary before anything is written: the catalog's products, warnings and rows skipped as unreadable."""
    summary = IndexSummary(products=len(catalog.rows))
    summary.notes.extend(catalog.warnings)
    for err in catalog.errors:
        summary.skipped += 1
        summary.problems.append(Problem(err.line, err.product_id, None, err.reason))
    return summary


class IngestService:
    """Writes products into one collection with one encoder: the CLI's index/sync and the API's upserts."""

    def __init__(
        self, encoder: Encoder, store: VectorStore, settings: Settings, *, address_policy: AddressPolicy | None = None
    ) -> None:
        """`address_policy`: where image URLs may be fetched from (the API's callers name them); None: anywhere."""
        self.encoder, self.store, self.settings, self.address_policy = encoder, store, settings, address_policy

    async def write(
        self,
        catalog: Catalog,
        base_dir: Path,
        *,
        sync: bool = False,
        recreate: bool = False,
        only_listed: bool = False,
        allow_mass_delete: bool = False,
        progress: Progress | None = None,
        reuse_stored_urls: bool = False,
    ) -> IndexSummary:
        """Write every product of `catalog` (local image refs resolve against `base_dir`).

        `sync`: also delete products the catalog no longer names. `recreate`: build the collection
        anew (beside the current one where the store can), swapped in only when complete.
        `only_listed` (the API's upserts): read back and touch only the listed products' points, not
        the whole collection; a product's images that it no longer lists are still deleted.
        `reuse_stored_urls` (feed syncs): an image URL a product already has stored is not downloaded again.
        Raises `EncoderMismatchError`, `MassDeleteError`, `RebuildIncompleteError`, `StoreError`;
        a bad row or image is only reported in the summary.
        """
        if sync and only_listed:
            raise ValueError("sync deletes unlisted products: it cannot be combined with only_listed")
        if progress is None:
            progress = SilentProgress()
        summary = _opening_summary(catalog)
        rebuild = recreate and self.store.safe_rebuild
        before = await stored_product_ids(self.store) if rebuild else set()
        if rebuild:
            guard_rebuild(catalog, before, allow_mass_delete)
        info = await self.store.ensure_collection(
            self.encoder.model_id, self.encoder.dim, recreate=recreate, text_dim=words_dim(self.encoder)
        )
        try:
            await self._write_rows(
                catalog,
                base_dir,
                summary,
                info,
                sync=sync,
                only_listed=only_listed,
                allow_mass_delete=allow_mass_delete,
                progress=progress,
                reuse_stored_urls=reuse_stored_urls and not recreate,
            )
        except BaseException:
            if recreate:
                await self.store.finish_rebuild(commit=False)
            raise
        if recreate:
            await self._finish_rebuild(catalog, before, summary, progress)
        summary.problems.sort(key=lambda p: p.line or 0)
        return summary

    async def _write_rows(
        self,
        catalog: Catalog,
        base_dir: Path,
        summary: IndexSummary,
        info: CollectionInfo,
        *,
        sync: bool,
        only_listed: bool,
        allow_mass_delete: bool,
        progress: Progress,
        reuse_stored_urls: bool = False,
    ) -> None:
        """Fetch, embed and write every listed image, then delete what was replaced (and, with `sync`,
        what the catalog no longer lists)."""
        words = isinstance(self.encoder, WordsEncoder) and info.text_dim == self.encoder.words_dim
        if isinstance(self.encoder, WordsEncoder) and not words:
            summary.notes.append(
                f"collection {info.name!r} was built before text signals: text queries match the photos only. "
                "Rebuild it with `visearch index CATALOG --recreate` so they also match titles, tags and OCR text."
            )
        existing = await scan_existing(self.store, [row.product.id for row in catalog.rows] if only_listed else None)
        plan = plan_sync(catalog, existing, allow_mass_delete=allow_mass_delete) if sync else None

        jobs = _image_jobs(catalog, base_dir, existing, summary)
        summary.images = len(jobs)
        progress.total(len(jobs))
        async with ImageFetcher(self.settings, address_policy=self.address_policy) as fetcher:
            writer = ImageWriter(
                self.encoder, self.store, self.settings, summary, existing, progress, words, reuse_stored_urls
            )
            await writer.process(fetcher, jobs, Path(base_dir))

        summary.deleted += await self._delete_replaced_images(catalog, existing, summary, progress)
        if plan is not None:
            summary.deleted += await self._carry_out(plan, summary, progress)

    async def _delete_replaced_images(
        self, catalog: Catalog, existing: dict[str, ExistingPoint], summary: IndexSummary, progress: Progress
    ) -> int:
        """Points of listed products whose image the product no longer lists, once a replacement is stored."""
        replaced = replaced_images(catalog, existing, summary.stored_products)
        if replaced.kept:
            summary.kept.extend(replaced.kept)
            summary.notes.append(
                f"kept the stored photos of {len(replaced.kept)} product(s) none of whose new "
                f"photos could be used: {ids_text(replaced.kept)}"
            )
        if replaced.stale:
            progress.message(f"deleting {len(replaced.stale)} photo(s) the products no longer list")
            await self.store.delete_points(replaced.stale)
        return len(replaced.stale)

    async def _carry_out(self, plan: SyncPlan, summary: IndexSummary, progress: Progress) -> int:
        summary.notes.extend(plan.notes)
        if not plan.gone:
            return 0
        progress.message(f"deleting {len(plan.gone)} product(s) no longer in the catalog")
        return await self.store.delete_products(plan.gone)

    async def _finish_rebuild(
        self, catalog: Catalog, before: set[str], summary: IndexSummary, progress: Progress
    ) -> None:
        """Swap the rebuilt collection in when every product it had that the catalog names is stored;
        otherwise throw it away (`RebuildIncompleteError`) and the old one stays."""
        named = catalog.named_ids()
        lost = sorted((before & named) - summary.stored_products)
        if lost:
            await self.store.finish_rebuild(commit=False)
            raise RebuildIncompleteError(lost, [str(p) for p in summary.problems if p.product_id in set(lost)])
        progress.message("swapping in the rebuilt collection")
        await self.store.finish_rebuild(commit=True)
        dropped = before - named
        if dropped:
            summary.notes.append(
                f"the rebuilt collection leaves out {len(dropped)} product(s) the catalog does not "
                f"list: {ids_text(sorted(dropped))}"
            )


def _image_jobs(
    catalog: Catalog, base_dir: Path, existing: dict[str, ExistingPoint], summary: IndexSummary
) -> list[ImageJob]:
    """One job per listed image; a product without images is reported as skipped (its stored points stay)."""
    image_root = str(Path(base_dir).resolve())
    jobs: list[ImageJob] = []
    for row in catalog.rows:
        if not row.product.images:
            summary.skipped += 1
            kept = sum(1 for old in existing.values() if old.product_id == row.product.id)
            reason = "no image: a product needs at least one photo"
            summary.problems.append(
                Problem(
                    row.line, row.product.id, None, reason + (f" (its {kept} stored image(s) are kept)" if kept else "")
                )
            )
            continue
        phash = product_hash(row.product, image_root)
        for index, ref in enumerate(row.product.images):
            jobs.append(
                ImageJob(row.line, row.product, ref, index, point_id_for(row.product.id, ref), phash, image_root)
            )
    return jobs


async def index_catalog(
    catalog_path: Path | str,
    encoder: Encoder,
    store: VectorStore,
    settings: Settings,
    *,
    sync: bool = False,
    recreate: bool = False,
    allow_mass_delete: bool = False,
    progress: Progress | None = None,
) -> IndexSummary:
    """Read a catalog file and write every product of it; with `sync`, also delete products no longer listed.

    Raises `CatalogError` (file unreadable: nothing touched), `EncoderMismatchError` (the collection
    belongs to another encoder: nothing touched), `StoreError`; a bad row or image is only reported.
    """
    catalog_path = Path(catalog_path)
    catalog = await asyncio.to_thread(read_catalog, catalog_path)
    return await IngestService(encoder, store, settings).write(
        catalog,
        catalog_path.parent,
        sync=sync,
        recreate=recreate,
        allow_mass_delete=allow_mass_delete,
        progress=progress,
    )
