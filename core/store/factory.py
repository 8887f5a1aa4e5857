"""Pick the configured vector store, plus the small rules both backends share.

The backends are imported lazily so the embedded path never pays for importing
qdrant-client (and the server path never loads the edge engine).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from visearch.core.config import Settings
from visearch.core.domain import PointRecord, StoredPoint
from visearch.core.errors import CollectionNotFoundError, EncoderMismatchError, StoreError
from visearch.core.store.base import IndexSettings, VectorStore

#: version of what visearch writes into a collection (payload layout + metadata); bump on breaking changes.
#: 1: one unnamed image vector. 2: named vectors, "image" plus "text" (the catalog's words) when the
#: encoder has a text signal. Schema-1 collections still open and search (image side only).
SCHEMA_VERSION = 2
#: names of the two dense vectors of a schema-2 point
IMAGE_VECTOR = "image"
TEXT_VECTOR = "text"


def index_settings(settings: Settings) -> IndexSettings:
    """The vector-index part of the settings (`VISEARCH_HNSW_*`, `VISEARCH_QUANTIZATION*`)."""
    return IndexSettings(
        hnsw_m=settings.hnsw_m,
        hnsw_ef_construct=settings.hnsw_ef_construct,
        hnsw_ef=settings.hnsw_ef,
        quantization=settings.quantization,
        quantization_rescore=settings.quantization_rescore,
        quantization_oversampling=settings.quantization_oversampling,
        indexing_threshold_kb=settings.indexing_threshold_kb,
        vectors_on_disk=settings.vectors_on_disk,
        filtered=settings.filtered_search,
    )


def open_store(settings: Settings) -> VectorStore:
    """The Qdrant server store when `VISEARCH_QDRANT_URL` is set, else the embedded engine in `data_dir`.

    Opening the embedded store takes its data-directory lock right away, so a second
    process fails here with `StoreLockedError` instead of later, half-way through a job.
    """
    if settings.qdrant_url:
        from visearch.core.store.server import ServerStore

        api_key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        return ServerStore(
            settings.collection,
            url=settings.qdrant_url,
            api_key=api_key,
            timeout=settings.qdrant_timeout,
            shard_number=settings.qdrant_shard_number,
            replication_factor=settings.qdrant_replication_factor,
            write_consistency_factor=settings.qdrant_write_consistency_factor,
            index=index_settings(settings),
        )
    from visearch.core.store.edge import EdgeStore

    return EdgeStore(settings.data_dir, settings.collection, index=index_settings(settings))


# --- shared by both backends -------------------------------------------------------------


def new_metadata(encoder_id: str, dim: int, text_dim: int | None = None) -> dict[str, Any]:
    """What a collection remembers about who built it (JSON file for edge, collection metadata for server)."""
    if dim < 1 or (text_dim is not None and text_dim < 1):
        raise ValueError(f"vector dimensions must be positive, got {dim} and {text_dim}")
    return {
        "visearch_schema": SCHEMA_VERSION,
        "encoder_id": encoder_id,
        "dim": int(dim),
        "text_dim": None if text_dim is None else int(text_dim),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def image_vector_name(meta: Mapping[str, Any]) -> str:
    """The image vector's name in this collection: "" (the unnamed default) for schema-1 collections."""
    return IMAGE_VECTOR if int(meta.get("visearch_schema", 0)) >= 2 else ""


def text_vector_dim(meta: Mapping[str, Any]) -> int | None:
    """Dimension of the collection's text vector; None when it has none (schema 1, or an encoder without words)."""
    if int(meta.get("visearch_schema", 0)) < 2 or not isinstance(meta.get("text_dim"), int):
        return None
    return int(meta["text_dim"])


def check_metadata(collection: str, meta: Mapping[str, Any] | None, where: str) -> dict[str, Any]:
    """Validate stored metadata; a collection visearch cannot vouch for is an error naming the fix."""
    if not meta or not isinstance(meta.get("encoder_id"), str) or not isinstance(meta.get("dim"), int):
        raise StoreError(
            f"collection {collection!r} in {where} has no visearch metadata (encoder id and dimension), "
            "so visearch cannot tell which encoder built it. Rebuild it with "
            "`visearch index CATALOG --recreate` or pick another collection (VISEARCH_COLLECTION)."
        )
    schema = meta.get("visearch_schema", 0)
    if not isinstance(schema, int) or schema > SCHEMA_VERSION:
        raise StoreError(
            f"collection {collection!r} in {where} was written by a newer visearch (schema {schema}, "
            f"this one knows {SCHEMA_VERSION}). Upgrade visearch or rebuild with `visearch index CATALOG --recreate`."
        )
    return dict(meta)


def verify_encoder(collection: str, meta: Mapping[str, Any], encoder_id: str, dim: int) -> None:
    """Raise `EncoderMismatchError` when the collection was built by another encoder or dimension."""
    if meta["encoder_id"] != encoder_id or meta["dim"] != dim:
        raise EncoderMismatchError(collection, meta["encoder_id"], meta["dim"], encoder_id, dim)


def collection_not_found(collection: str, where: str) -> CollectionNotFoundError:
    """The error for every operation that needs a collection which does not exist yet."""
    return CollectionNotFoundError(
        f"collection {collection!r} does not exist yet in {where}: "
        "index a catalog first with `visearch index CATALOG`"
    )


def parse_point_id(point_id: str) -> str | None:
    """Canonical UUID string, or None for an id that cannot be a visearch point id (e.g. a forged button)."""
    try:
        return str(uuid.UUID(str(point_id)))
    except ValueError:
        return None


def require_point_id(point_id: str) -> str:
    """Canonical UUID string of a point we are about to write; an invalid id is a caller bug."""
    parsed = parse_point_id(point_id)
    if parsed is None:
        raise StoreError(f"invalid point id {point_id!r}: visearch point ids are UUIDs (see core.domain.point_id_for)")
    return parsed


def check_dims(points: Sequence[PointRecord], ids: Sequence[str], meta: Mapping[str, Any], collection: str) -> None:
    """Refuse vectors of the wrong length with a message naming the point, before the engine does cryptically."""
    dim, text_dim = meta["dim"], text_vector_dim(meta)
    for point_id, point in zip(ids, points):
        if len(point.vector) != dim:
            raise StoreError(
                f"point {point_id} has a {len(point.vector)}-d vector but collection {collection!r} holds {dim}-d vectors"
            )
        if point.text_vector is not None and text_dim is not None and len(point.text_vector) != text_dim:
            raise StoreError(f"point {point_id} has a {len(point.text_vector)}-d text vector but collection "
                             f"{collection!r} holds {text_dim}-d text vectors")


def plain_vector(vector: Any, name: str = "") -> list[float] | None:
    """One dense vector of a record (`name`; "" is the unnamed default), whatever shape either client returns."""
    if vector is None:
        return None
    if isinstance(vector, dict):
        vector = vector.get(name)
        if vector is None:
            return None
    elif name:  # a single unnamed vector has no named ones
        return None
    return [float(x) for x in vector]


def point_vectors(meta: dict[str, Any], point: PointRecord) -> Any:
    """The vectors of one point in the collection's layout (a text vector it cannot hold is dropped)."""
    name = image_vector_name(meta)
    if not name:
        return [float(x) for x in point.vector]
    vectors = {name: [float(x) for x in point.vector]}
    if point.text_vector is not None and text_vector_dim(meta) is not None:
        vectors[TEXT_VECTOR] = [float(x) for x in point.text_vector]
    return vectors


def stored_point(meta: dict[str, Any], point_id: str, payload: dict[str, Any] | None, vector: Any) -> StoredPoint:
    """A point read back, its image and text vectors picked out of whatever layout the collection has."""
    return StoredPoint(point_id=point_id, payload=payload or {}, vector=plain_vector(vector, image_vector_name(meta)),
                       text_vector=plain_vector(vector, TEXT_VECTOR) if text_vector_dim(meta) else None)
