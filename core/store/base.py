"""The vector store interface shared by the embedded engine and the Qdrant server backend."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from visearch.core.domain import CollectionInfo, Filters, Hit, PointRecord, StoredPoint

#: which vector a search compares with: the photo's, or the product's words (title, tags, OCR...)
VectorName = Literal["image", "text"]


@dataclass(frozen=True)
class IndexSettings:
    """How the vector index is built and searched (both backends); from `Settings` via `index_settings`.

    The embedded engine applies the build part when `visearch optimize` runs (it never indexes on
    its own); a Qdrant server gets it when visearch creates the collection and again on optimize.
    Search-time knobs (`hnsw_ef`, rescoring, oversampling) apply to unfiltered searches, and to
    filtered ones only with `filtered="index"`: by default filtered searches are exact, so they
    keep full recall whatever the filter. `vectors_on_disk` memory-maps the float vectors (the
    int8 copy, when there is one, stays in RAM).

    Defaults from the 1M x 512 build (`benchmarks/bench_build.py`): m 32 reaches recall@10 0.998
    at ef 256 where m 16 stops at 0.983, for 5% more build time; see `payload_links` for why the
    payload-aware links are off by default.
    """

    hnsw_m: int = 32
    hnsw_ef_construct: int = 100
    hnsw_ef: int = 256
    quantization: Literal["none", "int8"] = "none"
    quantization_rescore: bool = True
    quantization_oversampling: float = 2.0
    indexing_threshold_kb: int = 1
    vectors_on_disk: bool = False
    filtered: Literal["exact", "index"] = "exact"
    hnsw_payload_m: int | None = None

    def payload_links(self) -> int:
        """Payload-aware HNSW links per node the build adds (0 = none).

        They only serve filtered searches that walk the graph (`filtered="index"`); exact filtered
        searches never read them, and building them cost 3.4x the whole build at 100k points
        (one extra graph per indexed value, the 85% `in_stock=true` one almost a second full graph).
        So unset means `hnsw_m` with `filtered="index"` and none with exact filtered searches."""
        if self.hnsw_payload_m is not None:
            return self.hnsw_payload_m
        return self.hnsw_m if self.filtered == "index" else 0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "payload_links": self.payload_links()}


@dataclass(frozen=True)
class IndexReport:
    """What `optimize` did, for the CLI to print: enough to tell whether search now uses the index."""

    backend: str
    collection: str
    changed: bool
    segments: int | None
    points: int
    indexed_vectors: int | None
    seconds: float
    settings: IndexSettings
    status: str = "ok"
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "settings": self.settings.as_dict()}


@runtime_checkable
class IndexMaintenance(Protocol):
    """A store whose vector index can be (re)built on demand: `visearch optimize`, never the serving loop."""

    async def build_index(self) -> IndexReport:
        """Apply the configured HNSW / quantization settings and build the index; slow (minutes at scale)."""
        ...


@runtime_checkable
class VectorStore(Protocol):
    """Async interface; cosine distance; one collection per store object.

    The collection remembers the encoder id and dimension that built it:
    `ensure_collection` creates it, or checks them and raises `EncoderMismatchError`.
    Other methods raise `CollectionNotFoundError` before the collection exists.
    """

    backend: str
    #: True when `ensure_collection(recreate=True)` builds the replacement beside the collection
    #: and swaps it in at `finish_rebuild(commit=True)`; False when it drops the collection first
    safe_rebuild: bool

    async def ensure_collection(
        self, encoder_id: str, dim: int, recreate: bool = False, text_dim: int | None = None
    ) -> CollectionInfo:
        """Create the collection (with payload indexes) or verify it matches the encoder.

        `text_dim` adds a second named vector for the catalog's words when the collection is created;
        an existing collection keeps its layout (`CollectionInfo.text_dim` says which it has)."""
        ...

    async def info(self) -> CollectionInfo | None:
        """The collection's encoder, dimension and point count; None when it does not exist."""
        ...

    async def upsert(self, points: Sequence[PointRecord]) -> None:
        """Insert or replace points by id; durable when this returns."""
        ...

    async def set_payload(self, point_id: str, payload: dict[str, Any]) -> None:
        """Replace one point's payload without touching its vector."""
        ...

    async def retrieve(self, point_ids: Sequence[str], with_vectors: bool = False) -> list[StoredPoint]:
        """Points by id (missing ids are skipped)."""
        ...

    async def search(
        self, vector: Sequence[float], filters: Filters | None, limit: int, using: VectorName = "image"
    ) -> list[Hit]:
        """Nearest points by cosine of the `using` vector, best first, filtered by payload; exact when filtered.

        Searching "text" in a collection without text vectors returns no hits."""
        ...

    async def delete_products(self, product_ids: Sequence[str]) -> int:
        """Delete every point of these products; returns how many points were removed."""
        ...

    async def delete_points(self, point_ids: Sequence[str]) -> None:
        """Delete points by id."""
        ...

    async def count(self, filters: Filters | None = None) -> int:
        """Number of points (not products) matching the filters."""
        ...

    def scroll(
        self, batch_size: int = 256, with_vectors: bool = False, product_ids: Sequence[str] | None = None
    ) -> AsyncIterator[StoredPoint]:
        """Every point of the collection (or of these products only), in batches under the hood."""
        ...

    async def put_features(self, version: str, items: Mapping[str, bytes]) -> None:
        """Store catalog photos' local features (image sha256 -> blob, core.local_features); durable on return.

        Content-addressed and kept apart from the points (core.store.features): searches never read them."""
        ...

    async def get_features(self, version: str, image_hashes: Sequence[str]) -> dict[str, bytes]:
        """The stored local features of these images (those that have them)."""
        ...

    async def features_present(self, version: str, image_hashes: Sequence[str]) -> set[str]:
        """Which of these images have local features of this version (reads no blobs)."""
        ...

    async def finish_rebuild(self, commit: bool) -> None:
        """End what `ensure_collection(recreate=True)` began: put the rebuilt collection in place
        (commit) or throw it away. Where the backend builds the replacement beside the collection
        (`safe_rebuild`), the collection itself is untouched until the commit."""
        ...

    async def close(self) -> None:
        """Flush and release files, locks and connections."""
        ...
