"""Where the catalog photos' local features live: content-addressed, beside the vectors.

An entry is keyed by (extractor version, image sha256): the features are a function of the image
bytes, so a metadata update, a copy of an identical image or a `--recreate` rebuild needs no new
extraction, and a new extractor version simply does not see the old entries (`visearch index`
extracts those again, nothing else). They are *not* in the points' payloads: every search returns
payloads, and ~13 KB of features per hit would slow every text query and "more like this".

* Embedded engine: one SQLite file in the data directory (`<collection>.features.sqlite`), which
  the process that owns the directory reads and writes (WAL: a crash keeps every committed batch).
* Qdrant server: a companion collection `<collection>-local-features` without vectors, one point
  per entry, so every serving process on every host reads the same features.
"""

from __future__ import annotations

import asyncio
import base64
import sqlite3
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

#: namespace of the companion collection's point ids (uuid5 of version + sha256)
FEATURES_NAMESPACE = uuid.UUID("1f0b7a52-6f55-4a3e-9a8e-5b1ef6d0c0de")
#: the companion collection of a server-side collection
FEATURES_COLLECTION_SUFFIX = "-local-features"
#: SQLite variables per statement (SQLite's limit is 32,766; stay well under it)
_CHUNK = 500


def feature_point_id(version: str, sha256: str) -> str:
    """The companion collection's point id of one entry."""
    return str(uuid.uuid5(FEATURES_NAMESPACE, f"{version}\x00{sha256}"))


def encode_blob(blob: bytes) -> str:
    """A payload holds JSON: the features travel as base64."""
    return base64.b64encode(blob).decode("ascii")


def decode_blob(text: object) -> bytes | None:
    """The features of a payload value, or None when it is not ours."""
    if not isinstance(text, str):
        return None
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        return None


class SqliteFeatures:
    """The embedded engine's feature file. Calls run on a worker thread (`asyncio.to_thread`), one at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._connection: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # one statement at a time on the shared connection

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute(
                "CREATE TABLE IF NOT EXISTS features ("
                " version TEXT NOT NULL, sha256 TEXT NOT NULL, blob BLOB NOT NULL,"
                " PRIMARY KEY (version, sha256)) WITHOUT ROWID"
            )
            self._connection = connection
        return self._connection

    def _put_sync(self, version: str, items: Mapping[str, bytes]) -> None:
        connection = self._connect()
        with connection:  # one transaction per batch: all of it or none
            connection.execute("BEGIN")
            connection.executemany(
                "INSERT OR REPLACE INTO features (version, sha256, blob) VALUES (?, ?, ?)",
                [(version, sha, blob) for sha, blob in items.items()],
            )

    def _get_sync(self, version: str, keys: Sequence[str], blobs: bool) -> dict[str, bytes]:
        if not self.path.exists() and self._connection is None:
            return {}
        connection = self._connect()
        found: dict[str, bytes] = {}
        column = "blob" if blobs else "x''"
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), _CHUNK):
            chunk = unique[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = connection.execute(
                f"SELECT sha256, {column} FROM features WHERE version = ? AND sha256 IN ({marks})",
                [version, *chunk],
            )
            found.update((str(sha), bytes(blob)) for sha, blob in rows)
        return found

    def _locked(self, fn: Callable[..., T], *args: Any) -> T:
        with self._lock:
            return fn(*args)

    async def put(self, version: str, items: Mapping[str, bytes]) -> None:
        """Store entries (sha256 -> features); durable when this returns."""
        if items:
            await asyncio.to_thread(self._locked, self._put_sync, version, dict(items))

    async def get(self, version: str, keys: Sequence[str]) -> dict[str, bytes]:
        """The entries of these image hashes that exist."""
        if not keys:
            return {}
        return await asyncio.to_thread(self._locked, self._get_sync, version, list(keys), True)

    async def present(self, version: str, keys: Sequence[str]) -> set[str]:
        """Which of these image hashes have an entry (nothing but the keys is read)."""
        if not keys:
            return set()
        return set(await asyncio.to_thread(self._locked, self._get_sync, version, list(keys), False))

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
