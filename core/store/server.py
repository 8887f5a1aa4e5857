"""The Qdrant server / cluster store, on qdrant-client's `AsyncQdrantClient`.

`url` (+ `api_key`) reaches a real server; `location=":memory:"` runs qdrant-client's local
mode, used as the test double. Same semantics as the embedded store:

* Collection metadata (encoder id, dimension, created_at, schema version) lives in the
  collection's own metadata (`create_collection(metadata={"visearch": ...})`), which both a
  server (Qdrant >= 1.16) and local mode support: no reserved point pollutes searches or counts.
* Writes use `wait=True`, so they are applied (and in the server's WAL) when the call returns.
* Filtered searches ask for exact search (`SearchParams(exact=True)`, quantization ignored);
  unfiltered ones send `hnsw_ef` and, with int8 quantization, rescoring + oversampling. Local
  mode is always exact and warns about search params, so none are sent there.
* A new collection gets `hnsw_config` (m, ef_construct, payload_m: `IndexSettings.payload_links`) and, with `quantization=int8`, scalar
  int8 quantization from `IndexSettings`; `build_index()` (`visearch optimize`) pushes the
  current settings to an existing collection with `update_collection` and the server rebuilds
  in the background (local mode accepts and ignores them).
* Payload indexes are created on the server; local mode ignores them (its warning is silenced).
* A new collection gets `shard_number` / `replication_factor` / `write_consistency_factor` when
  they are set (a cluster); unset, none is sent and the server's defaults apply.
* Errors name the URL and the fix; the API key never appears in a message.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from qdrant_client import AsyncQdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from visearch.core.domain import CollectionInfo, Filters, Hit, PointRecord, StoredPoint
from visearch.core.errors import StoreError, VisearchError
from visearch.core.store.base import IndexReport, IndexSettings, VectorName
from visearch.core.store.conditions import (
    AnyOf,
    Condition,
    ConditionTree,
    Equals,
    filter_conditions,
    products_condition,
)
from visearch.core.store.features import (
    FEATURES_COLLECTION_SUFFIX,
    decode_blob,
    encode_blob,
    feature_point_id,
)
from visearch.core.store.schema import (
    PAYLOAD_INDEXES,
    PayloadKind,
    check_dims,
    check_metadata,
    collection_not_found,
    new_metadata,
    parse_point_id,
    point_vectors,
    require_point_id,
    search_vector_name,
    stored_point,
    text_vector_dim,
    vector_sizes,
    verify_encoder,
)

#: key under the collection's metadata that holds what visearch wrote (leaves room for others' keys)
META_KEY = "visearch"

_KIND_TYPES: dict[PayloadKind, models.PayloadSchemaType] = {
    "keyword": models.PayloadSchemaType.KEYWORD,
    "float": models.PayloadSchemaType.FLOAT,
    "bool": models.PayloadSchemaType.BOOL,
}
_INDEX_TYPES: dict[str, models.PayloadSchemaType] = {name: _KIND_TYPES[kind] for name, kind in PAYLOAD_INDEXES.items()}


def server_condition(condition: Condition) -> models.FieldCondition:
    """One neutral condition as a qdrant-client condition."""
    if isinstance(condition, AnyOf):
        return models.FieldCondition(key=condition.field, match=models.MatchAny(any=list(condition.values)))
    if isinstance(condition, Equals):
        return models.FieldCondition(key=condition.field, match=models.MatchValue(value=condition.value))
    return models.FieldCondition(key=condition.field, range=models.Range(gte=condition.gte, lte=condition.lte))


def server_tree(tree: ConditionTree) -> models.Filter:
    """A neutral condition tree as a qdrant-client filter."""
    must: list[models.Condition] = [server_condition(c) for c in tree.must]
    must_not: list[models.Condition] = [server_condition(c) for c in tree.must_not]
    return models.Filter(must=must or None, must_not=must_not or None)


def server_filter(filters: Filters | None) -> models.Filter | None:
    """Translate `Filters` into a qdrant-client filter; None when there is nothing to filter on."""
    tree = filter_conditions(filters)
    return None if tree is None else server_tree(tree)


def hnsw_config(index: IndexSettings) -> models.HnswConfigDiff:
    """The HNSW build settings a collection is created / updated with."""
    return models.HnswConfigDiff(m=index.hnsw_m, ef_construct=index.hnsw_ef_construct, payload_m=index.payload_links())


def quantization_config(index: IndexSettings) -> models.ScalarQuantization | None:
    """int8 scalar quantization (kept in RAM: it is the search copy), or None for none."""
    if index.quantization != "int8":
        return None
    return models.ScalarQuantization(
        scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8, quantile=0.99, always_ram=True)
    )


def server_search_params(filtered: bool, index: IndexSettings) -> models.SearchParams:
    """Exact on float vectors when filtered (unless `filtered="index"`: the server plans, HNSW with
    ACORN for broad filters); HNSW with `hnsw_ef` (+ int8 rescoring) otherwise."""
    if filtered and index.filtered == "exact":
        return models.SearchParams(exact=True, quantization=models.QuantizationSearchParams(ignore=True))
    quantization = None
    if index.quantization == "int8":
        quantization = models.QuantizationSearchParams(
            rescore=index.quantization_rescore, oversampling=index.quantization_oversampling
        )
    acorn = models.AcornSearchParams(enable=True) if filtered else None
    return models.SearchParams(hnsw_ef=index.hnsw_ef, quantization=quantization, acorn=acorn)


def _safe_url(url: str) -> str:
    """The URL without any user:password part, for messages."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)


class ServerStore:
    """`VectorStore` on a Qdrant server or cluster (or qdrant-client's in-memory local mode)."""

    backend = "server"
    #: a Qdrant server has no rename: `--recreate` drops the collection, then rebuilds it
    safe_rebuild = False

    def __init__(
        self,
        collection: str,
        *,
        url: str | None = None,
        api_key: str | None = None,
        timeout: float = 10.0,
        location: str | None = None,
        shard_number: int | None = None,
        replication_factor: int | None = None,
        write_consistency_factor: int | None = None,
        index: IndexSettings | None = None,
    ) -> None:
        """`shard_number`, `replication_factor`, `write_consistency_factor` apply only when this store
        creates the collection (a cluster spreads and copies it); None leaves the server's default.
        `index`: HNSW / quantization settings for a new collection, `build_index()` and unfiltered searches."""
        if (url is None) == (location is None):
            raise ValueError("give exactly one of url (a Qdrant server) or location (':memory:' for tests)")
        self.collection = collection
        self.url = _safe_url(url) if url else str(location)
        self._api_key = api_key
        self.index = index or IndexSettings()
        self._local = location is not None
        if url is not None:
            self._client = AsyncQdrantClient(
                url=url, api_key=api_key, timeout=max(1, math.ceil(timeout)), check_compatibility=False
            )
        else:
            self._client = AsyncQdrantClient(location=location)
        for name, value in (
            ("shard_number", shard_number),
            ("replication_factor", replication_factor),
            ("write_consistency_factor", write_consistency_factor),
        ):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        # None is what qdrant-client sends when they are not given: the request leaves them out
        self.shard_number = shard_number
        self.replication_factor = replication_factor
        self.write_consistency_factor = write_consistency_factor
        self._meta: dict[str, Any] | None = None
        self._closed = False
        self._features_ready = False  # the companion collection of local features exists

    def __repr__(self) -> str:
        return f"ServerStore({self.collection!r}, url={self.url!r})"

    # --- plumbing ---------------------------------------------------------------------------

    def _where(self) -> str:
        return "qdrant-client's in-memory mode" if self._local else f"the Qdrant server at {self.url}"

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Turn client/transport failures into `StoreError`s that name the URL and the fix."""
        if self._closed:
            raise StoreError(f"the store for {self._where()} is closed")
        try:
            yield
        except VisearchError:
            raise
        except UnexpectedResponse as exc:
            status = exc.status_code
            detail = self._redact(exc.content.decode("utf-8", "replace")[:300]) if exc.content else exc.reason_phrase
            if status in (401, 403):
                raise StoreError(
                    f"the Qdrant server at {self.url} refused access (HTTP {status}): check VISEARCH_QDRANT_API_KEY"
                ) from None
            if status == 404 and "ollection" in detail:
                self._meta = None
                raise collection_not_found(self.collection, self._where()) from None
            raise StoreError(f"the Qdrant server at {self.url} answered HTTP {status}: {detail}") from None
        except (ResponseHandlingException, httpx.TransportError, ConnectionError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "source", None) or exc
            raise StoreError(
                f"cannot reach the Qdrant server at {self.url} ({self._redact(str(reason)) or type(reason).__name__}). "
                "Check VISEARCH_QDRANT_URL and that the server is running, "
                "or unset VISEARCH_QDRANT_URL to use the embedded engine."
            ) from None

    async def _load_meta(self) -> dict[str, Any] | None:
        """The collection's visearch metadata (cached); None when the collection does not exist."""
        if self._meta is not None:
            return self._meta
        with self._errors():
            if not await self._client.collection_exists(self.collection):
                return None
            described = await self._client.get_collection(self.collection)
        stored = (described.config.metadata or {}).get(META_KEY)
        self._meta = check_metadata(self.collection, stored, self._where())
        return self._meta

    async def _require(self) -> dict[str, Any]:
        meta = await self._load_meta()
        if meta is None:
            raise collection_not_found(self.collection, self._where())
        return meta

    async def _create(self, encoder_id: str, dim: int, text_dim: int | None) -> None:
        meta = new_metadata(encoder_id, dim, text_dim)
        vectors = {
            name: models.VectorParams(size=size, distance=models.Distance.COSINE)
            for name, size in vector_sizes(meta).items()
        }
        with self._errors():
            try:
                await self._client.create_collection(
                    self.collection,
                    vectors_config=vectors,
                    metadata={META_KEY: meta},
                    shard_number=self.shard_number,
                    replication_factor=self.replication_factor,
                    write_consistency_factor=self.write_consistency_factor,
                    hnsw_config=hnsw_config(self.index),
                    quantization_config=quantization_config(self.index),
                )
            except UnexpectedResponse as exc:
                if exc.status_code != 409:  # 409: another process created it first; verified below
                    raise
            with warnings.catch_warnings():
                if self._local:
                    warnings.simplefilter("ignore", UserWarning)  # "payload indexes have no effect in local mode"
                for field, schema in _INDEX_TYPES.items():
                    await self._client.create_payload_index(self.collection, field, field_schema=schema, wait=True)
            described = await self._client.get_collection(self.collection)
        if not (described.config.metadata or {}).get(META_KEY):
            raise StoreError(
                f"{self._where()} did not keep the collection metadata visearch writes (encoder id, dimension): "
                "visearch needs Qdrant server 1.16 or newer. Upgrade the server, or unset VISEARCH_QDRANT_URL "
                "to use the embedded engine."
            )

    # --- VectorStore ------------------------------------------------------------------------

    async def ensure_collection(
        self, encoder_id: str, dim: int, recreate: bool = False, text_dim: int | None = None
    ) -> CollectionInfo:
        """Create the collection (with payload indexes and metadata) or verify the encoder that built it."""
        if recreate:
            with self._errors():
                await self._client.delete_collection(self.collection)
            self._meta = None
        meta = await self._load_meta()
        if meta is None:
            await self._create(encoder_id, dim, text_dim)
            meta = await self._require()
        verify_encoder(self.collection, meta, encoder_id, dim)
        info = await self.info()
        assert info is not None
        return info

    async def finish_rebuild(self, commit: bool) -> None:
        """Nothing to swap: on a server the collection was dropped and rebuilt in place."""

    async def info(self) -> CollectionInfo | None:
        """Encoder, dimension and exact point count; None when the collection does not exist."""
        meta = await self._load_meta()
        if meta is None:
            return None
        return CollectionInfo(
            name=self.collection,
            encoder_id=meta["encoder_id"],
            dim=meta["dim"],
            points=await self.count(),
            backend=self.backend,
            text_dim=text_vector_dim(meta),
        )

    async def upsert(self, points: Sequence[PointRecord]) -> None:
        """Insert or replace by id; applied by the server (`wait=True`) before returning."""
        if not points:
            return
        meta = await self._require()
        ids = [require_point_id(p.id) for p in points]
        check_dims(points, ids, meta, self.collection)
        batch = [
            models.PointStruct(id=pid, vector=point_vectors(meta, p), payload=p.payload)
            for pid, p in zip(ids, points, strict=True)
        ]
        with self._errors():
            await self._client.upsert(self.collection, points=batch, wait=True)

    async def set_payload(self, point_id: str, payload: dict[str, Any]) -> None:
        """Replace one point's payload (vector untouched); `StoreError` if the point does not exist."""
        if not await self.retrieve([point_id]):
            raise StoreError(f"point {point_id!r} is not in collection {self.collection!r}")
        with self._errors():
            await self._client.overwrite_payload(
                self.collection, payload=dict(payload), points=[require_point_id(point_id)], wait=True
            )

    async def retrieve(self, point_ids: Sequence[str], with_vectors: bool = False) -> list[StoredPoint]:
        """Points by id in the order asked; missing or malformed ids are skipped."""
        await self._require()
        ids = list(dict.fromkeys(pid for pid in (parse_point_id(p) for p in point_ids) if pid is not None))
        if not ids:
            return []
        with self._errors():
            records = await self._client.retrieve(self.collection, ids, with_payload=True, with_vectors=with_vectors)
        by_id = {str(r.id): r for r in records}
        meta = await self._require()
        return [stored_point(meta, pid, by_id[pid].payload, by_id[pid].vector) for pid in ids if pid in by_id]

    async def search(
        self, vector: Sequence[float], filters: Filters | None, limit: int, using: VectorName = "image"
    ) -> list[Hit]:
        """Cosine nearest points by the image or the text vector, best first; exact search whenever a filter applies."""
        meta = await self._require()
        name = search_vector_name(meta, using)
        if name is None:
            return []  # an image-only collection: the words signal has nothing to match
        flt = server_filter(filters)
        params = None if self._local else server_search_params(flt is not None, self.index)
        with self._errors():
            response = await self._client.query_points(
                self.collection,
                query=[float(x) for x in vector],
                using=name or None,
                query_filter=flt,
                search_params=params,
                limit=limit,
                with_payload=True,
                with_vectors=False,
            )
        return [Hit(point_id=str(p.id), score=float(p.score), payload=p.payload or {}) for p in response.points]

    async def delete_products(self, product_ids: Sequence[str]) -> int:
        """Delete every point of these products; returns how many points matched just before deleting."""
        if not product_ids:
            return 0
        await self._require()
        flt = server_tree(products_condition(product_ids))
        with self._errors():
            removed = (await self._client.count(self.collection, count_filter=flt, exact=True)).count
            if removed:
                await self._client.delete(self.collection, points_selector=models.FilterSelector(filter=flt), wait=True)
        return removed

    async def delete_points(self, point_ids: Sequence[str]) -> None:
        """Delete points by id (unknown or malformed ids are ignored)."""
        if not point_ids:
            return
        await self._require()
        ids: list[models.ExtendedPointId] = [pid for pid in (parse_point_id(p) for p in point_ids) if pid is not None]
        if not ids:
            return
        with self._errors():
            await self._client.delete(self.collection, points_selector=models.PointIdsList(points=ids), wait=True)

    async def count(self, filters: Filters | None = None) -> int:
        """Exact number of points matching the filters."""
        await self._require()
        with self._errors():
            result = await self._client.count(self.collection, count_filter=server_filter(filters), exact=True)
        return result.count

    async def scroll(
        self, batch_size: int = 256, with_vectors: bool = False, product_ids: Sequence[str] | None = None
    ) -> AsyncIterator[StoredPoint]:
        """Every point (or those of `product_ids`), fetched `batch_size` at a time."""
        meta = await self._require()
        if product_ids is not None and not product_ids:
            return
        only = None if product_ids is None else server_tree(products_condition(product_ids))
        offset: Any = None
        while True:
            with self._errors():
                records, offset = await self._client.scroll(
                    self.collection,
                    limit=batch_size,
                    offset=offset,
                    scroll_filter=only,
                    with_payload=True,
                    with_vectors=with_vectors,
                )
            for r in records:
                yield stored_point(meta, str(r.id), r.payload, r.vector)
            if offset is None:
                return

    async def build_index(self) -> IndexReport:
        """Push the HNSW / quantization settings to the collection; the server (re)builds in the background.

        Returns right after the server accepted the change: `status` is the collection's status
        then ("yellow" while optimizing); `visearch stats` or the server's dashboard shows progress."""
        await self._require()
        started = time.perf_counter()
        quantization: Any = quantization_config(self.index) or models.Disabled.DISABLED
        with self._errors(), warnings.catch_warnings():
            if self._local:
                warnings.simplefilter("ignore", UserWarning)
            changed = await self._client.update_collection(
                self.collection, hnsw_config=hnsw_config(self.index), quantization_config=quantization
            )
            described = await self._client.get_collection(self.collection)
        status = getattr(described.status, "value", described.status)
        notes = ("qdrant-client's local mode has no index: it keeps searching exactly",) if self._local else ()
        return IndexReport(
            backend=self.backend,
            collection=self.collection,
            changed=bool(changed),
            segments=described.segments_count,
            points=described.points_count or 0,
            indexed_vectors=described.indexed_vectors_count,
            seconds=time.perf_counter() - started,
            settings=self.index,
            status=str(status),
            notes=notes,
        )

    # --- local features: a companion collection without vectors (core.store.features) -------------

    @property
    def features_collection(self) -> str:
        return f"{self.collection}{FEATURES_COLLECTION_SUFFIX}"

    async def _ensure_features_collection(self) -> None:
        with self._errors():
            if not await self._client.collection_exists(self.features_collection):
                await self._client.create_collection(self.features_collection, vectors_config={})

    async def put_features(self, version: str, items: Mapping[str, bytes]) -> None:
        """One point per entry in `<collection>-local-features`, applied (`wait=True`) before returning."""
        if not items:
            return
        if not self._features_ready:
            await self._ensure_features_collection()
            self._features_ready = True
        batch = [
            models.PointStruct(
                id=feature_point_id(version, sha),
                vector={},
                payload={"version": version, "sha256": sha, "blob": encode_blob(blob)},
            )
            for sha, blob in items.items()
        ]
        with self._errors():
            await self._client.upsert(self.features_collection, points=batch, wait=True)

    async def _feature_records(self, version: str, image_hashes: Sequence[str], blobs: bool) -> dict[str, object]:
        ids = {feature_point_id(version, sha): sha for sha in dict.fromkeys(image_hashes)}
        if not ids:
            return {}
        with self._errors():
            if not self._features_ready:  # asked once: a photo query then costs one request here
                if not await self._client.collection_exists(self.features_collection):
                    return {}
                self._features_ready = True
            records = await self._client.retrieve(
                self.features_collection,
                list(ids),
                with_payload=True if blobs else ["sha256"],
                with_vectors=False,
            )
        return {ids[str(r.id)]: (r.payload or {}).get("blob") for r in records if str(r.id) in ids}

    async def get_features(self, version: str, image_hashes: Sequence[str]) -> dict[str, bytes]:
        found = await self._feature_records(version, image_hashes, blobs=True)
        return {sha: blob for sha, value in found.items() if (blob := decode_blob(value)) is not None}

    async def features_present(self, version: str, image_hashes: Sequence[str]) -> set[str]:
        return set(await self._feature_records(version, image_hashes, blobs=False))

    async def close(self) -> None:
        """Close the HTTP connections. Idempotent."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            await self._client.close()
