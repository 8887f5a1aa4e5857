"""What visearch writes into a collection, whichever backend holds it: the store's schema rules.

Both backends (`edge.py`, `server.py`) import these; `factory.py` only chooses a backend. Keeping the
rules here, beside neither backend, is what keeps the store package free of import cycles.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal

from visearch.core.domain import PointRecord, StoredPoint
from visearch.core.errors import CollectionNotFoundError, StoreError, encoder_mismatch

#: version of what visearch writes into a collection (payload layout + metadata); bump on breaking changes.
#: 1: one unnamed image vector. 2: named vectors, "image" plus "text" (the catalog's words) when the
#: encoder has a text signal. Schema-1 collections still open and search (image side only).
SCHEMA_VERSION = 2
#: names of the two dense vectors of a schema-2 point
IMAGE_VECTOR = "image"
TEXT_VECTOR = "text"

#: how a payload index is typed; each backend maps these to its own client's schema types
PayloadKind = Literal["keyword", "float", "bool"]
#: payload fields with an index (the filter fields); both backends create these
PAYLOAD_INDEXES: Mapping[str, PayloadKind] = MappingProxyType(
    {
        "product_id": "keyword",
        "f_category": "keyword",
        "f_brand": "keyword",
        "f_tags": "keyword",
        "colours": "keyword",
        "price": "float",
        "in_stock": "bool",
    }
)


def new_metadata(encoder_id: str, dim: int, text_dim: int | None = None) -> dict[str, Any]:
    """What a collection remembers about who built it (JSON file for edge, collection metadata for server)."""
    if dim < 1 or (text_dim is not None and text_dim < 1):
        raise ValueError(f"vector dimensions must be positive, got {dim} and {text_dim}")
    return {
        "visearch_schema": SCHEMA_VERSION,
        "encoder_id": encoder_id,
        "dim": int(dim),
        "text_dim": None if text_dim is None else int(text_dim),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def image_vector_name(meta: Mapping[str, Any]) -> str:
    """The image vector's name in this collection: "" (the unnamed default) for schema-1 collections."""
    return IMAGE_VECTOR if int(meta.get("visearch_schema", 0)) >= 2 else ""


def text_vector_dim(meta: Mapping[str, Any]) -> int | None:
    """Dimension of the collection's text vector; None when it has none (schema 1, or an encoder without words)."""
    if int(meta.get("visearch_schema", 0)) < 2 or not isinstance(meta.get("text_dim"), int):
        return None
    return int(meta["text_dim"])


def vector_sizes(meta: Mapping[str, Any]) -> dict[str, int]:
    """The collection's dense vectors, name -> dimension ("" is schema 1's one unnamed vector); cosine for all."""
    sizes = {image_vector_name(meta): int(meta["dim"])}
    text_dim = text_vector_dim(meta)
    if text_dim is not None:
        sizes[TEXT_VECTOR] = text_dim
    return sizes


def search_vector_name(meta: Mapping[str, Any], using: str) -> str | None:
    """The vector a search by `using` ("image" or "text") compares with; None when the collection has none.

    An image-only collection (schema 1, or an encoder without words) has nothing for the words signal."""
    if using == TEXT_VECTOR:
        return TEXT_VECTOR if text_vector_dim(meta) is not None else None
    return image_vector_name(meta)


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
    """Raise `EncoderMismatchError` when the collection was built by another encoder or dimension
    (`TextModelMismatchError` when only VISEARCH_CLIP_TEXT_MODEL differs)."""
    if meta["encoder_id"] != encoder_id or meta["dim"] != dim:
        raise encoder_mismatch(collection, meta["encoder_id"], meta["dim"], encoder_id, dim)


def collection_not_found(collection: str, where: str) -> CollectionNotFoundError:
    """The error for every operation that needs a collection which does not exist yet."""
    return CollectionNotFoundError(
        f"collection {collection!r} does not exist yet in {where}: index a catalog first with `visearch index CATALOG`"
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
    for point_id, point in zip(ids, points, strict=True):
        if len(point.vector) != dim:
            raise StoreError(
                f"point {point_id} has a {len(point.vector)}-d vector but collection {collection!r} holds {dim}-d vectors"
            )
        if point.text_vector is not None and text_dim is not None and len(point.text_vector) != text_dim:
            raise StoreError(
                f"point {point_id} has a {len(point.text_vector)}-d text vector but collection "
                f"{collection!r} holds {text_dim}-d text vectors"
            )


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


def point_vectors(meta: Mapping[str, Any], point: PointRecord) -> list[float] | dict[str, Any]:
    """The vectors of one point in the collection's layout (a text vector it cannot hold is dropped).

    Named vectors are `dict[str, Any]` so the dict fits either client's (invariant) vector-dict type."""
    name = image_vector_name(meta)
    if not name:
        return [float(x) for x in point.vector]
    vectors: dict[str, Any] = {name: [float(x) for x in point.vector]}
    if point.text_vector is not None and text_vector_dim(meta) is not None:
        vectors[TEXT_VECTOR] = [float(x) for x in point.text_vector]
    return vectors


def stored_point(meta: Mapping[str, Any], point_id: str, payload: dict[str, Any] | None, vector: Any) -> StoredPoint:
    """A point read back, its image and text vectors picked out of whatever layout the collection has."""
    return StoredPoint(
        point_id=point_id,
        payload=payload or {},
        vector=plain_vector(vector, image_vector_name(meta)),
        text_vector=plain_vector(vector, TEXT_VECTOR) if text_vector_dim(meta) else None,
    )
