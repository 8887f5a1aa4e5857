"""What a run may delete, decided from what the store holds and what the catalog names.

Why here and not inside the writes: every deletion is planned before anything is written (a
refused sync or rebuild touches nothing), and carried out only after the replacements are stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from visearch.core.catalog import Catalog
from visearch.core.domain import point_id_for
from visearch.core.errors import MassDeleteError, StoreError
from visearch.core.store.base import VectorStore

#: how many products a note lists before "..."
NOTE_IDS = 10


@dataclass(frozen=True, slots=True)
class ExistingPoint:
    """What the collection holds for one point (payload fields only)."""

    product_id: str | None
    sha256: str | None
    product_hash: str | None
    has_ocr: bool = False


async def scan_existing(store: VectorStore, product_ids: Sequence[str] | None = None) -> dict[str, ExistingPoint]:
    """What the collection holds now (of these products, when given): the basis for skipping
    unchanged images and for deletions."""
    found: dict[str, ExistingPoint] = {}
    async for point in store.scroll(batch_size=1024, product_ids=product_ids):
        payload = point.payload
        pid = payload.get("product_id")
        found[point.point_id] = ExistingPoint(
            None if pid is None else str(pid),
            payload.get("image_sha256"),
            payload.get("product_hash"),
            "ocr_text" in payload,
        )
    return found


async def stored_product_ids(store: VectorStore) -> set[str]:
    """The products the collection holds now; none when it does not exist or cannot be read
    (a rebuild is how a broken collection is repaired)."""
    try:
        return {str(p.payload.get("product_id")) async for p in store.scroll(batch_size=1024)}
    except StoreError:
        return set()


def refuse_mass_delete(gone: set[str], stored: set[str], allow_mass_delete: bool, command: str) -> None:
    """Raise `MassDeleteError` when more than half of the stored products would go and the caller
    did not allow it: a truncated or half-exported catalog must not empty the shop."""
    if len(gone) * 2 > len(stored) and not allow_mass_delete:
        raise MassDeleteError(len(gone), len(stored), command)


def guard_rebuild(catalog: Catalog, before: set[str], allow_mass_delete: bool) -> None:
    """A rebuild keeps only what the catalog names: the same guard as `sync`, before anything is written."""
    refuse_mass_delete(before - catalog.named_ids(), before, allow_mass_delete, "index --recreate")


@dataclass(frozen=True)
class SyncPlan:
    """What `sync` will delete once every listed product was written, decided before anything is."""

    gone: list[str]
    stored: int
    notes: list[str] = field(default_factory=list)


def plan_sync(catalog: Catalog, existing: dict[str, ExistingPoint], *, allow_mass_delete: bool) -> SyncPlan:
    """Products the catalog no longer lists - never one whose row failed, nor one whose id appears
    on any line of the file, and none at all when the file had a structural error.

    Raises `MassDeleteError` when more than half of the stored products would go and the caller
    did not allow it: a truncated or half-exported catalog must not empty the shop.
    """
    listed = {row.product.id for row in catalog.rows}
    named = catalog.named_ids()
    anonymous = sorted(err.line or 0 for err in catalog.errors if not err.product_id)
    structural = sorted({err.line or 0 for err in catalog.errors if err.structural} | set(catalog.suspect_lines))
    stored = {old.product_id for old in existing.values() if old.product_id is not None}
    kept = sorted((stored - listed) & named)
    gone = sorted(stored - named)
    notes = []
    if kept:
        notes.append(f"sync kept {len(kept)} product(s) whose catalog row has an error: {ids_text(kept)}")
    if gone and structural:
        notes.append(
            f"sync deleted nothing: the catalog has {len(structural)} row(s) whose quotes or field count "
            f"look broken (line "
            f"{lines_text(structural)}) that may hide any of the {len(gone)} stored product(s) missing "
            "from it; fix those rows and sync again"
        )
        return SyncPlan([], len(stored), notes)
    if gone and anonymous:
        notes.append(
            f"sync deleted nothing: {len(anonymous)} row(s) without a readable id (line {lines_text(anonymous)}) "
            f"might be any of the {len(gone)} stored product(s) missing from the catalog; fix those rows and sync "
            "again"
        )
        return SyncPlan([], len(stored), notes)
    refuse_mass_delete(set(gone), stored, allow_mass_delete, "sync")
    if gone:
        notes.append(f"sync removed {len(gone)} product(s) no longer in the catalog: {ids_text(gone)}")
    return SyncPlan(gone, len(stored), notes)


@dataclass(frozen=True)
class Replaced:
    """Points of listed products whose image the product no longer lists, and products whose points all stay."""

    stale: list[str]
    kept: list[str]


def replaced_images(catalog: Catalog, existing: dict[str, ExistingPoint], stored_products: set[str]) -> Replaced:
    """Points a listed product no longer lists - only for products that have at least one listed
    image stored now, so a replacement exists before the old is gone.

    A product none of whose new images could be used keeps every point it had (named in `kept`);
    a row without images is left alone (it was reported as skipped).
    """
    listed: dict[str, set[str]] = {
        row.product.id: {point_id_for(row.product.id, ref) for ref in row.product.images}
        for row in catalog.rows
        if row.product.images
    }
    stale_by_product: dict[str, list[str]] = {}
    for pid, old in existing.items():
        if old.product_id in listed and pid not in listed[old.product_id]:
            stale_by_product.setdefault(old.product_id, []).append(pid)
    stale = [pid for product_id, points in stale_by_product.items() if product_id in stored_products for pid in points]
    had_points = {old.product_id for old in existing.values()}
    kept = sorted(pid for pid in listed if pid not in stored_products and pid in had_points)
    return Replaced(stale, kept)


def lines_text(lines: Sequence[int]) -> str:
    return ", ".join(map(str, lines[:NOTE_IDS])) + (", ..." if len(lines) > NOTE_IDS else "")


def ids_text(ids: Sequence[str]) -> str:
    return ", ".join(ids[:NOTE_IDS]) + (f", ... ({len(ids) - NOTE_IDS} more)" if len(ids) > NOTE_IDS else "")
