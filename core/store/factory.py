"""Pick the configured vector store, plus the small rules both backends share.

The backends are imported lazily so the embedded path never pays for importing
qdrant-client (and the server path never loads the edge engine).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from core.config import Settings
from core.errors import CollectionNotFoundError, EncoderMismatchError, StoreError
from core.store.base import VectorStore

#: version of what visearch writes into a collection (payload layout + metadata); bump on breaking changes
SCHEMA_VERSION = 1


def open_store(settings: Settings) -> VectorStore:
    """The Qdrant server store when `VISEARCH_QDRANT_URL` is set, else the embedded engine in `data_dir`.

    Opening the embedded store takes its data-directory lock right away, so a second
    process fails here with `StoreLockedError` instead of later, half-way through a job.
    """
    if settings.qdrant_url:
        from core.store.server import ServerStore

        api_key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        return ServerStore(
            settings.collection,
            url=settings.qdrant_url,
            api_key=api_key,
            timeout=settings.qdrant_timeout,
            shard_number=settings.qdrant_shard_number,
            replication_factor=settings.qdrant_replication_factor,
            write_consistency_factor=settings.qdrant_write_consistency_factor,
        )
    from core.store.edge import EdgeStore

    return EdgeStore(settings.data_dir, settings.collection)


# --- shared by both backends -------------------------------------------------------------


def new_metadata(encoder_id: str, dim: int) -> dict[str, Any]:
    """What a collection remembers about who built it (JSON file for edge, collection metadata for server)."""
    if dim < 1:
        raise ValueError(f"vector dimension must be positive, got {dim}")
    return {
        "visearch_schema": SCHEMA_VERSION,
        "encoder_id": encoder_id,
        "dim": int(dim),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


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


def check_dims(vectors: Sequence[Sequence[float]], ids: Sequence[str], dim: int, collection: str) -> None:
    """Refuse vectors of the wrong length with a message naming the point, before the engine does cryptically."""
    for point_id, vector in zip(ids, vectors):
        if len(vector) != dim:
            raise StoreError(
                f"point {point_id} has a {len(vector)}-d vector but collection {collection!r} holds {dim}-d vectors"
            )


def plain_vector(vector: Any) -> list[float] | None:
    """The default (unnamed) dense vector of a record, whatever shape either client returns."""
    if vector is None:
        return None
    if isinstance(vector, dict):
        vector = vector.get("")
        if vector is None:
            return None
    return [float(x) for x in vector]
