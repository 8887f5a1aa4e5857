"""Catalog writes for the HTTP API: products in, points out, through the ingest service `visearch index` uses.

Why the same service: an upsert over HTTP must behave exactly like a catalog row in `visearch index`
(same fetch limits, same unchanged/updated/copied rules, same words and OCR), and only touch the
products it names. Uploaded photos are kept under `<data_dir>/uploads/`, named by their content
hash, so uploading the same file twice is the same image (idempotent) and `/media` can serve it.
Writes of one product run one at a time (a lock per product id): two upserts of one product never
interleave, while a slow image host named by one product does not hold up writes of the others.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from visearch.bots.api.models import ImageOut, ProductOut, UpsertResult
from visearch.bots.media import public_photo_url
from visearch.core.catalog import Catalog, CatalogRow
from visearch.core.domain import Product, StoredPoint
from visearch.core.errors import ImageError, VisearchError
from visearch.core.images import open_image
from visearch.core.ingest import IngestService, Problem
from visearch.core.media import locate_photo, product_folder
from visearch.core.netguard import AddressPolicy
from visearch.core.search import SearchService

#: what Pillow calls the formats a browser shows, and the file extension they are stored under
_EXTENSIONS = MappingProxyType({"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp"})


class UploadError(VisearchError):
    """An uploaded file that cannot be a product photo; `field` names it (images[2])."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True, slots=True)
class Upload:
    """One uploaded photo: the form's file name (for messages) and its bytes."""

    filename: str
    data: bytes


class ProductLocks:
    """One lock per product id, forgotten once nobody holds or waits for it (bounded by the writes
    in flight, not by the catalog)."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, product_id: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(product_id, (asyncio.Lock(), 0))
        self._locks[product_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[product_id]
            if users == 1:
                del self._locks[product_id]
            else:
                self._locks[product_id] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


class CatalogWriter:
    """Upserts and deletes products for the API; reads products back from their points."""

    def __init__(self, service: SearchService, uploads: Path, address_policy: AddressPolicy | None = None) -> None:
        """`address_policy`: where image URLs named by API callers may be fetched from (None: anywhere)."""
        self.service = service
        self.uploads = uploads
        self.address_policy = address_policy
        self._locks = ProductLocks()

    async def upsert(self, product: Product, uploads: list[Upload], max_bytes: int) -> UpsertResult:
        """Create or replace one product; its photos are its URLs plus the uploaded files.

        Uploads are checked first (nothing is written for a bad one), then saved, written and their
        unreferenced files dropped under one lock: a concurrent upsert of the same id never sees
        its files deleted by another, and a file goes only once no stored point names it.
        """
        named = await asyncio.to_thread(self._check_uploads, product.id, uploads, max_bytes, len(product.images))
        async with self._locks.hold(product.id):
            refs = await asyncio.to_thread(self._save_uploads, named)
            product = product.model_copy(update={"images": [*product.images, *refs]})
            catalog = Catalog(source="API request", rows=[CatalogRow(line=None, product=product)])
            summary = await self._ingest().write(catalog, self.uploads, only_listed=True)
            await self._drop_unreferenced_uploads(product.id)
        self.service.catalog_changed()
        labels = {ref: f"images[{len(product.images) - len(refs) + i}]" for i, ref in enumerate(refs)}
        return UpsertResult(
            id=product.id,
            ok=summary.ok,
            indexed=summary.indexed,
            unchanged=summary.unchanged,
            updated=summary.updated,
            failed=summary.failed,
            deleted=summary.deleted,
            kept=product.id in summary.kept,
            problems=[self._problem_text(p, labels) for p in summary.problems],
        )

    def _ingest(self) -> IngestService:
        """The ingest service over the search service's current encoder and store, fetching as the policy allows."""
        service = self.service
        return IngestService(service.encoder, service.store, service.settings, address_policy=self.address_policy)

    async def delete(self, product_id: str) -> int:
        """Delete every point of the product and its uploaded photos; returns the points removed."""
        async with self._locks.hold(product_id):
            removed = await self.service.store.delete_products([product_id])
            await asyncio.to_thread(shutil.rmtree, self.uploads / product_folder(product_id), True)
        self.service.catalog_changed()
        return removed

    async def points(self, product_id: str) -> list[StoredPoint]:
        """The product's points, its first photo first."""
        found = [p async for p in self.service.store.scroll(batch_size=64, product_ids=[product_id])]
        return sorted(found, key=lambda p: (int(p.payload.get("image_index") or 0), p.point_id))

    async def product(self, product_id: str, base_url: str) -> ProductOut | None:
        """The stored product (from its first photo's payload) and all its photos; None when absent."""
        points = await self.points(product_id)
        if not points:
            return None
        product = Product.from_payload(points[0].payload)
        images = await asyncio.to_thread(self._images_out, points, base_url)
        return ProductOut(**product.model_dump(exclude={"images"}), images=images)

    def _images_out(self, points: list[StoredPoint], base_url: str) -> list[ImageOut]:
        """Each photo's public URL (a worker thread: a local photo's path is resolved on disk)."""
        image_root = self.service.settings.image_root
        return [
            ImageOut(
                point_id=p.point_id,
                image_url=public_photo_url(p.point_id, locate_photo(p.payload, image_root, self.uploads), base_url),
            )
            for p in points
        ]

    # -- uploads (worker thread) ---------------------------------------------------------------

    def _check_uploads(
        self, product_id: str, uploads: list[Upload], max_bytes: int, first_index: int
    ) -> list[tuple[str, bytes]]:
        """Check every upload is an image (nothing is written otherwise); name each by its content."""
        named: list[tuple[str, bytes]] = []
        for offset, upload in enumerate(uploads):
            field = f"images[{first_index + offset}]"
            label = f" ({upload.filename})" if upload.filename else ""
            if not upload.data:
                raise UploadError(field, f"the file{label} is empty")
            if len(upload.data) > max_bytes:
                raise UploadError(field, f"the file{label} is larger than VISEARCH_MAX_IMAGE_BYTES={max_bytes}")
            try:  # the header checks a search makes (format, pixels, sides); nothing is decoded here
                with open_image(upload.data, self.service.settings.max_image_pixels) as image:
                    kind = image.format or ""
            except ImageError as exc:
                raise UploadError(field, f"the file{label} is not an image that can be used: {exc}") from None
            digest = hashlib.sha256(upload.data).hexdigest()[:32]
            named.append((f"{product_folder(product_id)}/{digest}.{_EXTENSIONS.get(kind, 'img')}", upload.data))
        return named

    def _save_uploads(self, named: list[tuple[str, bytes]]) -> list[str]:
        """Write each checked upload once (same bytes, same name), atomically."""
        for ref, data in named:
            path = self.uploads / ref
            if not path.is_file():
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(path.suffix + ".tmp")
                tmp.write_bytes(data)
                tmp.replace(path)
        return [ref for ref, _ in named]

    async def _drop_unreferenced_uploads(self, product_id: str) -> None:
        """Uploaded files of the product that none of its stored points names any more."""
        root = str(self.uploads.resolve())
        kept = {
            str(p.payload.get("image") or "")
            for p in await self.points(product_id)
            if str(p.payload.get("image_root") or "") == root
        }
        await asyncio.to_thread(self._drop_files_except, self.uploads / product_folder(product_id), kept)

    def _drop_files_except(self, folder: Path, kept: set[str]) -> None:
        if not folder.is_dir():
            return
        for path in folder.iterdir():
            if f"{folder.name}/{path.name}" not in kept:
                path.unlink(missing_ok=True)
        if not any(folder.iterdir()):
            folder.rmdir()

    async def drop_orphan_uploads(self) -> int:
        """At start: upload files no stored point names (left by a killed server mid-write), and
        half-written temporary files. Returns how many files went."""
        if not self.uploads.is_dir():
            return 0
        root = str(self.uploads.resolve())
        named = {
            str(p.payload.get("image") or "")
            async for p in self.service.store.scroll(batch_size=1024)
            if str(p.payload.get("image_root") or "") == root
        }
        return await asyncio.to_thread(self._drop_orphans, named)

    def _drop_orphans(self, named: set[str]) -> int:
        dropped = 0
        for folder in [f for f in self.uploads.iterdir() if f.is_dir()]:
            for path in folder.iterdir():
                if f"{folder.name}/{path.name}" not in named:
                    path.unlink(missing_ok=True)
                    dropped += 1
            if not any(folder.iterdir()):
                folder.rmdir()
        return dropped

    def _problem_text(self, problem: Problem, labels: dict[str, str]) -> str:
        """An ingest problem as an API caller can read it: the photo as they sent it (its URL, or
        images[i] for an upload), never a path on this server."""
        reason = problem.reason.replace(str(self.uploads.resolve()), "uploads").replace(str(self.uploads), "uploads")
        if problem.image is None:
            return reason
        return f"{labels.get(problem.image, problem.image)}: {reason}"
