"""The embedded store: the real Qdrant engine in-process (`qdrant-edge-py`), one shard per collection.

Layout of `data_dir`:

    .visearch.lock             flock held by the one process that owns the directory
    .visearch.owner            what that process is, when it says (a server names its URL)
    <collection>/              the EdgeShard (segments, WAL, edge_config.json)
    <collection>.visearch.json who built it: encoder id, dimension, created_at, schema version

Design decisions (and why):

* One process per data directory (the lock covers every collection in it). The engine itself is single-process (its WAL lock fails with
  an opaque "WouldBlock"); we take a non-blocking `flock` first so a second process gets a
  `StoreLockedError` that says what to do, and nothing is ever opened twice.
* Every engine call runs on one worker thread owned by the store: the shard is touched by one
  thread at a time and calls are serialised in order. Caveat measured on 0.9.0: the binding
  does NOT release the GIL during a call, so the event loop still pauses for the length of
  each call (milliseconds for filtered exact search); the thread keeps ordering and
  cancellation sane, it cannot make the engine concurrent with Python.
* Durability: the WAL (on by default) already makes an update survive a process crash once
  `update()` returns (tested: writer killed with os._exit, data there on reopen); we also
  `flush()` after every write so segments are on disk too and a reopen does not replay a long
  WAL. Measured cost: 30-100 ms per 256-point batch, small next to encoding that batch.
* Filtered searches are exact (brute force over the points that pass the payload index, on
  the original float vectors, quantization ignored): always correct, fast when filters are
  selective (0.1-4 ms at 100k x 512-d). Unfiltered searches use the default plan: a plain scan
  until `build_index()` (`visearch optimize`) has built HNSW, then HNSW with `hnsw_ef` and,
  with int8 quantization, rescoring on the float vectors with oversampling.
* The index is built only on demand (`build_index`, a maintenance command): the engine never
  indexes on its own, and building holds the GIL for minutes at scale. Measured on 0.9.0:
  `EdgeShard.load(path, EdgeConfig(...))` replaces the persisted hnsw / quantization /
  optimizer config of an existing shard, and the next `optimize()` rebuilds the segments that
  do not match it (HNSW m / ef_construct changes and adding int8 both take effect). It cannot
  remove quantization (None means "keep"): with `quantization=none` searches ignore the
  quantized copy; `visearch index --recreate` drops it.
* Point ids are UUID strings; the engine returns `uuid.UUID` objects, turned back into
  canonical `str` everywhere.
* Bool filters pass `numpy.bool_`: in 0.9.0 `MatchValue(True)` is silently converted to the
  integer 1 and then matches nothing; `numpy.bool_` reaches the engine as a real bool.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import json
import logging
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar, cast
from uuid import UUID

import numpy as np
from qdrant_edge import (
    AcornSearchParams,
    CountRequest,
    Distance,
    EdgeConfig,
    EdgeOptimizersConfig,
    EdgeShard,
    EdgeVectorParams,
    FieldCondition,
    Filter,
    HnswIndexConfig,
    MatchAny,
    MatchValue,
    PayloadSchemaType,
    Point,
    QuantizationSearchParams,
    Query,
    RangeFloat,
    ScalarQuantizationConfig,
    ScalarType,
    ScrollRequest,
    SearchParams,
    SearchRequest,
    UpdateOperation,
)

from visearch.core.domain import CollectionInfo, Filters, Hit, PointRecord, StoredPoint
from visearch.core.errors import StoreError, StoreLockedError, VisearchError
from visearch.core.store.base import IndexReport, IndexSettings, VectorName
from visearch.core.store.conditions import (
    AnyOf,
    Condition,
    ConditionTree,
    Equals,
    filter_conditions,
    products_condition,
)
from visearch.core.store.features import SqliteFeatures
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

logger = logging.getLogger(__name__)
T = TypeVar("T")
#: what the binding accepts as a point id (we always pass canonical UUID strings)
EdgeId = int | UUID | str

LOCK_FILE = ".visearch.lock"
OWNER_FILE = ".visearch.owner"
META_SUFFIX = ".visearch.json"
#: the local features of the collection's photos (core.store.features), beside its shard
FEATURES_SUFFIX = ".features.sqlite"
#: suffix of a replacement being built beside a collection (`--recreate`), and of the one it
#: replaces while they swap: no collection name can hold a dot, so these never clash with one
REBUILD_SUFFIX = ".rebuild"
REPLACED_SUFFIX = ".replaced"
#: metadata key of a replacement's state: "building" until every write is in, then "complete"
REBUILD_STATE = "rebuild_state"

_KIND_TYPES: dict[PayloadKind, PayloadSchemaType] = {
    "keyword": PayloadSchemaType.Keyword,
    "float": PayloadSchemaType.Float,
    "bool": PayloadSchemaType.Bool,
}
_INDEX_TYPES: dict[str, PayloadSchemaType] = {name: _KIND_TYPES[kind] for name, kind in PAYLOAD_INDEXES.items()}


def engine_bool(value: bool) -> bool:
    """A bool the 0.9.0 binding keeps a bool: it turns a Python bool into the integer 1/0 (which then
    matches nothing), while `numpy.bool_` reaches the engine as a real bool. Typed as the bool it stands for."""
    return cast(bool, np.bool_(value))


def edge_condition(condition: Condition) -> FieldCondition:
    """One neutral condition as an engine condition."""
    if isinstance(condition, AnyOf):
        return FieldCondition(condition.field, match=MatchAny(list(condition.values)))
    if isinstance(condition, Equals):
        value = engine_bool(condition.value) if isinstance(condition.value, bool) else condition.value
        return FieldCondition(condition.field, match=MatchValue(value))
    return FieldCondition(condition.field, range=RangeFloat(gte=condition.gte, lte=condition.lte))


def edge_tree(tree: ConditionTree) -> Filter:
    """A neutral condition tree as an engine filter."""
    must: list[Any] = [edge_condition(c) for c in tree.must]
    must_not: list[Any] = [edge_condition(c) for c in tree.must_not]
    return Filter(must=must or None, must_not=must_not or None)


def edge_filter(filters: Filters | None) -> Filter | None:
    """Translate `Filters` into an engine filter; None when there is nothing to filter on."""
    tree = filter_conditions(filters)
    return None if tree is None else edge_tree(tree)


def _vector_config(meta: dict[str, Any], on_disk: bool = False) -> EdgeVectorParams | dict[str, EdgeVectorParams]:
    """Schema 1: one unnamed vector. Schema 2: named "image" (+ "text" when the encoder reads words).

    `on_disk`: float vectors in memory-mapped files (read through the page cache) instead of RAM."""
    sizes = vector_sizes(meta)
    if "" in sizes:  # schema 1
        return EdgeVectorParams(size=sizes[""], distance=Distance.Cosine, on_disk=on_disk)
    return {
        name: EdgeVectorParams(size=size, distance=Distance.Cosine, on_disk=on_disk) for name, size in sizes.items()
    }


def _edge_config(meta: dict[str, Any], index: IndexSettings) -> EdgeConfig:
    """The shard's full config: vectors from the metadata, index build settings from `index`.

    `indexing_threshold` only matters when `optimize()` runs (the engine never indexes by itself),
    so a low value means "index everything when asked", not "index while writing"."""
    quantization = (
        ScalarQuantizationConfig(type=ScalarType.Int8, quantile=0.99, always_ram=True)
        if index.quantization == "int8"
        else None
    )
    return EdgeConfig(
        vectors=_vector_config(meta, index.vectors_on_disk),
        hnsw_config=HnswIndexConfig(
            m=index.hnsw_m,
            ef_construct=index.hnsw_ef_construct,
            full_scan_threshold=10_000,
            payload_m=index.payload_links(),
        ),
        quantization_config=quantization,
        optimizers=EdgeOptimizersConfig(indexing_threshold=index.indexing_threshold_kb),
    )


def search_params(filtered: bool, index: IndexSettings) -> SearchParams:
    """Unfiltered: HNSW (+ int8 rescoring) once built. Filtered: exact on the float vectors (full
    recall whatever the filter), or with `filtered="index"` the engine's own plan: the payload index
    and an exact scan when the filter matches few points, HNSW with ACORN (2-hop neighbours, for
    recall under filters) when it matches many."""
    if filtered and index.filtered == "exact":
        return SearchParams(exact=True, quantization=QuantizationSearchParams(ignore=True))
    if index.quantization == "int8":
        quantization = QuantizationSearchParams(
            rescore=index.quantization_rescore, oversampling=index.quantization_oversampling
        )
    else:
        quantization = QuantizationSearchParams(ignore=True)  # a quantized copy left from before is not used
    acorn = AcornSearchParams(enable=True) if filtered else None
    return SearchParams(hnsw_ef=index.hnsw_ef, quantization=quantization, acorn=acorn)


def _persisted_payload_links(shard_path: Path) -> int | None:
    """The payload-aware links per node the shard's stored config builds (None = unknown)."""
    try:
        config = json.loads((shard_path / "edge_config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    value = (config.get("hnsw_config") or {}).get("payload_m")
    return value if isinstance(value, int) else None


def _persisted_quantization(shard_path: Path) -> bool:
    """Whether the shard's stored config has quantization (the engine's edge_config.json; absent = no)."""
    try:
        config = json.loads((shard_path / "edge_config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    if config.get("quantization_config"):
        return True
    return any(isinstance(v, dict) and v.get("quantization_config") for v in (config.get("vectors") or {}).values())


def _acquire_lock(data_dir: Path) -> int:
    """Take the data directory's exclusive lock (non-blocking) and write our pid into it."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StoreError(
            f"cannot use the data directory {data_dir}: {exc.strerror or exc}. "
            "Set VISEARCH_DATA_DIR (or --data-dir) to a writable directory."
        ) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        try:
            owner = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
        except OSError:
            owner = ""
        os.close(fd)
        pid = f" (pid {owner})" if owner.isdigit() else ""
        said = _owner_note(data_dir, owner)
        if said:
            raise StoreLockedError(
                f"the data directory {data_dir} is in use by {said}{pid}: the embedded engine allows one "
                "process per directory. Stop it, or send your changes and searches to its HTTP API "
                "(/api/v1, see the README), or run a Qdrant server (VISEARCH_QDRANT_URL) so several "
                "processes can share one collection."
            ) from None
        raise StoreLockedError(
            f"the data directory {data_dir} is in use by another visearch process{pid}: the embedded "
            "engine allows one process per directory. Stop that process, or send requests to it "
            "(its HTTP API / bot) instead, or run a Qdrant server (VISEARCH_QDRANT_URL) so several "
            "processes can share one collection."
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _owner_note(data_dir: Path, owner_pid: str) -> str:
    """What the process holding the lock said it is, if the note is its own (not a crashed one's)."""
    try:
        pid, _, note = (data_dir / OWNER_FILE).read_text(encoding="utf-8").partition("\n")
    except (OSError, UnicodeDecodeError):
        return ""
    return note.strip()[:300] if pid.strip() == owner_pid and owner_pid else ""


class EdgeStore:
    """`VectorStore` on the embedded Qdrant engine; owns `data_dir` exclusively while open."""

    backend = "edge"
    safe_rebuild = True

    def __init__(self, data_dir: Path | str, collection: str, index: IndexSettings | None = None) -> None:
        """`index`: HNSW / quantization settings, applied by `build_index()` and to unfiltered searches."""
        self.index = index or IndexSettings()
        self.data_dir = Path(data_dir).expanduser().absolute()
        self.collection = collection
        self.shard_path = self.data_dir / collection
        self.meta_path = self.data_dir / f"{collection}{META_SUFFIX}"
        self._lock_fd: int | None = _acquire_lock(self.data_dir)
        self._rebuilding = False
        try:
            self._recover_rebuild_sync()  # under the lock, before anything reads the collection
        except BaseException:
            os.close(self._lock_fd)
            raise
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"visearch-edge-{collection}")
        self._shard: EdgeShard | None = None
        self._meta: dict[str, Any] | None = None
        self._closed = False
        self._features = SqliteFeatures(self.data_dir / f"{collection}{FEATURES_SUFFIX}")

    def __repr__(self) -> str:
        return f"EdgeStore({str(self.data_dir)!r}, {self.collection!r})"

    def announce(self, note: str) -> None:
        """Say who owns the data directory ("visearch serve at http://..."): a second process that
        finds it locked quotes this in its error, so the user knows where to send requests."""
        path = self.data_dir / OWNER_FILE
        tmp = path.with_name(f"{OWNER_FILE}.{os.getpid()}.tmp")
        tmp.write_text(f"{os.getpid()}\n{note}\n", encoding="utf-8")
        tmp.replace(path)

    # --- plumbing ---------------------------------------------------------------------------

    def _guarded(self, fn: Callable[..., T], *args: Any) -> T:
        """Run on the worker thread; engine failures become a `StoreError` naming the shard."""
        try:
            return fn(*args)
        except VisearchError:
            raise
        except Exception as exc:  # the binding raises bare Exception for engine errors
            raise StoreError(f"embedded Qdrant engine error on {self.shard_path}: {exc}") from exc

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise StoreError(f"the store for {self.shard_path} is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(self._guarded, fn, *args))

    def _where(self) -> str:
        return f"the embedded engine's data directory {self.data_dir}"

    # --- metadata file (worker thread only) -------------------------------------------------

    def _read_meta(self) -> dict[str, Any] | None:
        try:
            raw = self.meta_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            meta = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise StoreError(
                f"{self.meta_path} is not valid JSON ({exc}); rebuild with `visearch index CATALOG --recreate`"
            ) from exc
        return check_metadata(self.collection, meta, self._where())

    def _write_meta(self, meta: dict[str, Any], path: Path | None = None) -> None:
        """Atomic: a crash leaves either the old file or the new one, never half of one."""
        path = path or self.meta_path
        tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(meta, fh, indent=2)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        self._sync_dir()

    def _sync_dir(self) -> None:
        """Make renames in the data directory durable."""
        dir_fd = os.open(self.data_dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    # --- rebuilds: a replacement is built beside the collection, then swapped in ---------------

    def _paths(self, replacement: bool) -> tuple[Path, Path]:
        """Shard folder and metadata file of the collection, or of its replacement being built."""
        name = f"{self.collection}{REBUILD_SUFFIX}" if replacement else self.collection
        return self.data_dir / name, self.data_dir / f"{name}{META_SUFFIX}"

    def _recover_rebuild_sync(self) -> None:
        """Finish what a process killed mid-rebuild left: a complete replacement is swapped in
        (the swap is idempotent), an unfinished one is thrown away (the collection was untouched)."""
        _, staged_meta = self._paths(replacement=True)
        try:
            state = json.loads(staged_meta.read_text(encoding="utf-8")).get(REBUILD_STATE)
        except FileNotFoundError:
            state = None
        except (OSError, ValueError, AttributeError):
            state = "unreadable"
        if state == "complete":
            self._swap_in_sync()
        else:
            self._discard_rebuild_sync()

    def _discard_rebuild_sync(self) -> None:
        staged_dir, staged_meta = self._paths(replacement=True)
        staged_meta.unlink(missing_ok=True)
        if staged_dir.exists():
            shutil.rmtree(staged_dir)

    def _swap_in_sync(self) -> None:
        """Put the complete replacement where the collection is; each step can be redone after a crash."""
        live_dir, live_meta = self._paths(replacement=False)
        staged_dir, staged_meta = self._paths(replacement=True)
        replaced = self.data_dir / f"{self.collection}{REPLACED_SUFFIX}"
        meta = json.loads(staged_meta.read_text(encoding="utf-8"))
        meta.pop(REBUILD_STATE, None)
        if staged_dir.exists():
            if live_dir.exists():
                if replaced.exists():
                    shutil.rmtree(replaced)
                live_dir.rename(replaced)
            staged_dir.rename(live_dir)
            self._sync_dir()
        self._write_meta(meta, live_meta)
        staged_meta.unlink()
        self._sync_dir()
        if replaced.exists():
            shutil.rmtree(replaced)

    def _begin_rebuild_sync(self, encoder_id: str, dim: int, text_dim: int | None) -> None:
        """From now on writes and reads go to a new, empty replacement; the collection is kept."""
        self._close_sync()
        self._discard_rebuild_sync()
        self.shard_path, self.meta_path = self._paths(replacement=True)
        self._rebuilding = True
        self._write_meta({**new_metadata(encoder_id, dim, text_dim), REBUILD_STATE: "building"})

    def _finish_rebuild_sync(self, commit: bool) -> None:
        if not self._rebuilding:
            return
        if self._shard is not None:
            shard, self._shard = self._shard, None
            shard.flush()
            shard.close()
        if commit:
            meta = json.loads(self.meta_path.read_text(encoding="utf-8"))
            self._write_meta({**meta, REBUILD_STATE: "complete"})  # the commit point
            self._swap_in_sync()
        else:
            self._discard_rebuild_sync()
        self.shard_path, self.meta_path = self._paths(replacement=False)
        self._rebuilding, self._meta = False, None

    def _shard_has_data(self) -> bool:
        return (self.shard_path / "edge_config.json").exists() or (self.shard_path / "segments").exists()

    # --- shard lifecycle (worker thread only) -----------------------------------------------

    def _open_sync(self) -> EdgeShard | None:
        """The open shard, loading (or finishing the creation of) it; None when the collection does not exist.

        The metadata file is the source of truth for existence: it is written before the shard
        is created, so an interrupted creation is completed here, and a shard without metadata
        (deleted file, foreign data) is reported instead of guessed at.
        """
        if self._shard is not None:
            return self._shard
        meta = self._read_meta()
        if meta is None:
            if self._shard_has_data():
                raise StoreError(
                    f"{self.shard_path} holds vectors but its metadata file {self.meta_path.name} is missing, "
                    "so visearch cannot tell which encoder built it. Rebuild it with "
                    "`visearch index CATALOG --recreate` or pick another collection (VISEARCH_COLLECTION)."
                )
            return None
        if self._shard_has_data():
            shard = EdgeShard.load(str(self.shard_path))
            if self.index.filtered == "index" and _persisted_payload_links(self.shard_path) == 0:
                logger.warning(
                    "collection %s was indexed without payload-aware links, so filtered searches through "
                    "the graph (VISEARCH_FILTERED_SEARCH=index) lose recall at scale; run `visearch optimize` "
                    "with this setting to build them",
                    self.collection,
                )
        else:
            shard = EdgeShard.create(str(self.shard_path), _edge_config(meta, self.index))
        existing = set(shard.info().payload_schema)
        for field, schema in _INDEX_TYPES.items():
            if field not in existing:
                shard.update(UpdateOperation.create_field_index(field, schema))
        self._shard, self._meta = shard, meta
        return shard

    def _require_sync(self) -> EdgeShard:
        shard = self._open_sync()
        if shard is None:
            raise collection_not_found(self.collection, self._where())
        return shard

    def _info_sync(self) -> CollectionInfo | None:
        shard = self._open_sync()
        if shard is None or self._meta is None:
            return None
        return CollectionInfo(
            name=self.collection,
            encoder_id=self._meta["encoder_id"],
            dim=self._meta["dim"],
            points=shard.count(CountRequest(exact=True)),
            backend=self.backend,
            text_dim=text_vector_dim(self._meta),
        )

    def _ensure_sync(self, encoder_id: str, dim: int, recreate: bool, text_dim: int | None) -> CollectionInfo:
        if recreate:
            self._begin_rebuild_sync(encoder_id, dim, text_dim)
        if self._open_sync() is None:
            self._write_meta(new_metadata(encoder_id, dim, text_dim))
            self._require_sync()
        assert self._meta is not None
        verify_encoder(self.collection, self._meta, encoder_id, dim)
        info = self._info_sync()
        assert info is not None
        return info

    def _close_sync(self) -> None:
        if self._shard is not None:
            shard, self._shard = self._shard, None
            shard.flush()
            shard.close()
        if self._rebuilding:  # never finished: the collection stays as it was
            self._finish_rebuild_sync(commit=False)

    # --- operations (worker thread only) ----------------------------------------------------

    def _upsert_sync(self, points: Sequence[PointRecord]) -> None:
        shard = self._require_sync()
        assert self._meta is not None
        ids = [require_point_id(p.id) for p in points]
        check_dims(points, ids, self._meta, self.collection)
        batch = [Point(pid, point_vectors(self._meta, p), p.payload) for pid, p in zip(ids, points, strict=True)]
        shard.update(UpdateOperation.upsert_points(batch))
        shard.flush()

    def _set_payload_sync(self, point_id: str, payload: dict[str, Any]) -> None:
        shard = self._require_sync()
        pid = parse_point_id(point_id)
        if pid is None or not shard.retrieve([pid], False, False):
            raise StoreError(f"point {point_id!r} is not in collection {self.collection!r}")
        shard.update(UpdateOperation.overwrite_payload([pid], payload))
        shard.flush()

    def _retrieve_sync(self, point_ids: Sequence[str], with_vectors: bool) -> list[StoredPoint]:
        shard = self._require_sync()
        ids: list[EdgeId] = [pid for pid in (parse_point_id(p) for p in point_ids) if pid is not None]
        if not ids:
            return []
        records = {str(r.id): r for r in shard.retrieve(ids, True, with_vectors)}
        assert self._meta is not None
        return [
            stored_point(self._meta, pid, records[pid].payload, records[pid].vector)
            for pid in dict.fromkeys(str(i) for i in ids)
            if pid in records
        ]

    def _search_sync(
        self, vector: Sequence[float], filters: Filters | None, limit: int, using: VectorName
    ) -> list[Hit]:
        shard = self._require_sync()
        assert self._meta is not None
        name = search_vector_name(self._meta, using)
        if name is None:
            return []  # an image-only collection: the words signal has nothing to match
        flt = edge_filter(filters)
        request = SearchRequest(
            query=Query.Nearest([float(x) for x in vector], using=name or None),
            limit=limit,
            filter=flt,
            params=search_params(flt is not None, self.index),
            with_payload=True,
            with_vector=False,
        )
        return [Hit(point_id=str(p.id), score=float(p.score), payload=p.payload or {}) for p in shard.search(request)]

    def _delete_products_sync(self, product_ids: Sequence[str]) -> int:
        shard = self._require_sync()
        flt = edge_tree(products_condition(product_ids))
        removed = shard.count(CountRequest(exact=True, filter=flt))  # same thread: nothing writes in between
        if removed:
            shard.update(UpdateOperation.delete_points_by_filter(flt))
            shard.flush()
        return removed

    def _delete_points_sync(self, point_ids: Sequence[str]) -> None:
        shard = self._require_sync()
        ids: list[EdgeId] = [pid for pid in (parse_point_id(p) for p in point_ids) if pid is not None]
        if ids:
            shard.update(UpdateOperation.delete_points(ids))
            shard.flush()

    def _count_sync(self, filters: Filters | None) -> int:
        return self._require_sync().count(CountRequest(exact=True, filter=edge_filter(filters)))

    def _scroll_sync(
        self, offset: Any, limit: int, with_vectors: bool, product_ids: list[str] | None = None
    ) -> tuple[list[StoredPoint], Any]:
        shard = self._require_sync()
        only = None if product_ids is None else edge_tree(products_condition(product_ids))
        records, next_offset = shard.scroll(
            ScrollRequest(offset=offset, limit=limit, filter=only, with_payload=True, with_vector=with_vectors)
        )
        assert self._meta is not None
        return [stored_point(self._meta, str(r.id), r.payload, r.vector) for r in records], next_offset

    def _optimize_sync(self) -> bool:
        return self._require_sync().optimize()

    def _build_index_sync(self) -> IndexReport:
        """Reload the shard with the configured index settings, then let the engine rebuild what differs."""
        self._require_sync()
        assert self._shard is not None and self._meta is not None
        meta = self._meta
        self._shard.flush()
        self._shard.close()
        self._shard = None
        started = time.perf_counter()
        shard = EdgeShard.load(str(self.shard_path), _edge_config(meta, self.index))
        self._shard, self._meta = shard, meta
        changed = shard.optimize()
        shard.flush()
        seconds = time.perf_counter() - started
        info = shard.info()
        notes: list[str] = []
        if self.index.quantization == "none" and _persisted_quantization(self.shard_path):
            notes.append(
                "the shard keeps an int8 copy from an earlier optimize (the engine cannot drop it); "
                "searches ignore it. `visearch index CATALOG --recreate` frees it."
            )
        return IndexReport(
            backend=self.backend,
            collection=self.collection,
            changed=changed,
            segments=info.segments_count,
            points=info.points_count,
            indexed_vectors=info.indexed_vectors_count,
            seconds=seconds,
            settings=self.index,
            notes=tuple(notes),
        )

    # --- VectorStore ------------------------------------------------------------------------

    async def ensure_collection(
        self, encoder_id: str, dim: int, recreate: bool = False, text_dim: int | None = None
    ) -> CollectionInfo:
        """Create the collection (metadata, shard, payload indexes) or verify the encoder that built it."""
        return await self._run(self._ensure_sync, encoder_id, dim, recreate, text_dim)

    async def finish_rebuild(self, commit: bool) -> None:
        """Swap the replacement `ensure_collection(recreate=True)` started in place of the collection
        (commit), or throw it away; until then the collection itself was never touched."""
        await self._run(self._finish_rebuild_sync, commit)

    async def info(self) -> CollectionInfo | None:
        """Encoder, dimension and exact point count; None when the collection does not exist."""
        return await self._run(self._info_sync)

    async def upsert(self, points: Sequence[PointRecord]) -> None:
        """Insert or replace by id; flushed to disk before returning."""
        if points:
            await self._run(self._upsert_sync, list(points))

    async def set_payload(self, point_id: str, payload: dict[str, Any]) -> None:
        """Replace one point's payload (vector untouched); `StoreError` if the point does not exist."""
        await self._run(self._set_payload_sync, point_id, dict(payload))

    async def retrieve(self, point_ids: Sequence[str], with_vectors: bool = False) -> list[StoredPoint]:
        """Points by id in the order asked; missing or malformed ids are skipped."""
        return await self._run(self._retrieve_sync, list(point_ids), with_vectors)

    async def search(
        self, vector: Sequence[float], filters: Filters | None, limit: int, using: VectorName = "image"
    ) -> list[Hit]:
        """Cosine nearest points by the image or the text vector, best first; exact search whenever a filter applies."""
        return await self._run(self._search_sync, list(vector), filters, limit, using)

    async def delete_products(self, product_ids: Sequence[str]) -> int:
        """Delete every point of these products; returns how many points went."""
        if not product_ids:
            return 0
        return await self._run(self._delete_products_sync, list(product_ids))

    async def delete_points(self, point_ids: Sequence[str]) -> None:
        """Delete points by id (unknown ids are ignored)."""
        if point_ids:
            await self._run(self._delete_points_sync, list(point_ids))

    async def count(self, filters: Filters | None = None) -> int:
        """Exact number of points matching the filters."""
        return await self._run(self._count_sync, filters)

    async def scroll(
        self, batch_size: int = 256, with_vectors: bool = False, product_ids: Sequence[str] | None = None
    ) -> AsyncIterator[StoredPoint]:
        """Every point (or those of `product_ids`), `batch_size` at a time (other calls can run between batches)."""
        offset: Any = None
        only = None if product_ids is None else [str(p) for p in product_ids]
        if only is not None and not only:
            return
        while True:
            points, offset = await self._run(self._scroll_sync, offset, batch_size, with_vectors, only)
            for point in points:
                yield point
            if offset is None:
                return

    async def build_index(self) -> IndexReport:
        """Apply the HNSW / quantization settings and build the index (blocks the engine: maintenance only)."""
        return await self._run(self._build_index_sync)

    def optimize(self) -> bool:
        """Merge segments and build the HNSW index; blocks the caller and holds the GIL throughout.

        Maintenance only (after a bulk index, from the CLI): never call it from a serving
        event loop. Returns True when anything was optimized.
        """
        if self._closed:
            raise StoreError(f"the store for {self.shard_path} is closed")
        return self._executor.submit(self._guarded, self._optimize_sync).result()

    async def put_features(self, version: str, items: Mapping[str, bytes]) -> None:
        """Local features into `<collection>.features.sqlite` in the data directory (one transaction)."""
        await self._features.put(version, items)

    async def get_features(self, version: str, image_hashes: Sequence[str]) -> dict[str, bytes]:
        return await self._features.get(version, image_hashes)

    async def features_present(self, version: str, image_hashes: Sequence[str]) -> set[str]:
        return await self._features.present(version, image_hashes)

    async def close(self) -> None:
        """Flush and close the shard, stop the worker thread, release the directory lock. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._features.close()
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, functools.partial(self._guarded, self._close_sync))
        finally:
            self._executor.shutdown(wait=True)
            if self._lock_fd is not None:
                with contextlib.suppress(OSError):
                    (self.data_dir / OWNER_FILE).unlink(missing_ok=True)
                os.close(self._lock_fd)  # closing the descriptor releases the flock
                self._lock_fd = None
