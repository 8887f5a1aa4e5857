"""Background work for webhooks: a bounded queue with workers, and a memory of delivery ids.

Webhooks must answer quickly (platforms retry slow or failed deliveries), so each delivery is
acknowledged at once and its search runs here. The queue is bounded: when it is full the caller
gets False and sends the user a short "busy" reply instead of dropping the message silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

log = logging.getLogger("visearch.server")

Job = Callable[[], Awaitable[object]]


class WorkQueue:
    """`workers` tasks take jobs from a queue of at most `size` waiting jobs."""

    def __init__(self, size: int, workers: int, on_depth: Callable[[int], None] | None = None) -> None:
        self.size = size
        self.workers = workers
        self._queue: asyncio.Queue[tuple[str, Job]] = asyncio.Queue(maxsize=size)
        self._tasks: list[asyncio.Task[None]] = []
        self._on_depth = on_depth or (lambda depth: None)
        self.busy = 0

    @property
    def depth(self) -> int:
        """Jobs waiting plus jobs running."""
        return self._queue.qsize() + self.busy

    def start(self) -> None:
        """Start the workers (inside the running loop)."""
        self._tasks = [asyncio.create_task(self._work(), name=f"visearch-worker-{i}") for i in range(self.workers)]

    async def stop(self) -> None:
        """Let queued jobs finish for a moment, then cancel the workers."""
        try:
            await asyncio.wait_for(self._queue.join(), timeout=5)
        except TimeoutError:
            log.warning("stopping with %d jobs still queued", self._queue.qsize())
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def try_submit(self, name: str, job: Job) -> bool:
        """Queue a job; False when the queue is full (the caller tells the user it is busy)."""
        try:
            self._queue.put_nowait((name, job))
        except asyncio.QueueFull:
            return False
        self._on_depth(self.depth)
        return True

    async def _work(self) -> None:
        while True:
            name, job = await self._queue.get()
            self.busy += 1
            try:
                await job()
            except Exception:  # one failed job must not stop the worker
                log.exception("background job %s failed", name)
            finally:
                self.busy -= 1
                self._queue.task_done()
                self._on_depth(self.depth)


class SeenIds:
    """Delivery ids seen in the last `ttl` seconds (at most `max_items`): retried deliveries are
    acknowledged without searching twice.

    `first_time` remembers an id when its delivery is accepted (a retry arriving while it is queued
    or running is a duplicate); `finished` marks it answered (what `PersistentSeenIds` keeps across
    a restart); `forget` drops an id whose job failed in a way a retry may fix.
    """

    def __init__(
        self, ttl: float = 3600.0, max_items: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.max_items = max_items
        self._clock = clock
        self._seen: OrderedDict[Hashable, float] = OrderedDict()

    def first_time(self, key: Hashable) -> bool:
        """True the first time a key is seen (and remembers it); False for a repeat within the TTL."""
        key = self._normal(key)
        now = self._clock()
        while self._seen and next(iter(self._seen.values())) <= now - self.ttl:
            self._seen.popitem(last=False)
        if key in self._seen:
            return False
        while len(self._seen) >= self.max_items:  # only a new key makes room (a repeat evicts nothing)
            self._seen.popitem(last=False)
        self._seen[key] = now
        return True

    def finished(self, key: Hashable) -> None:
        """The delivery's job is over (answered, or failed for good): a retry is never answered."""

    def forget(self, key: Hashable) -> None:
        """The delivery's job failed in a way a retry may fix: a retry of it is answered."""
        self._seen.pop(self._normal(key), None)

    def _normal(self, key: Hashable) -> Hashable:
        """The key as remembered."""
        return key

    def __len__(self) -> int:
        return len(self._seen)


#: file under the data directory where `visearch serve` keeps recent delivery ids
DELIVERIES_FILE = "deliveries.sqlite3"
#: expired and surplus rows are deleted after this many new ids (and at start)
COMPACT_EVERY = 1000


class PersistentSeenIds(SeenIds):
    """`SeenIds` that survives a restart: a platform retrying a delivery the old process already
    answered (it restarted before the acknowledgement arrived) gets no second answer, and one the
    old process never finished (killed with the job queued, or before the reply went out) is
    answered by the new one.

    Decisions are made in memory, on the event loop, as before; an id is written to a SQLite file
    (WAL, one small append per id) only when its job has finished (`finished`), by one background
    thread, so the loop never waits on the disk. Ids are stamped with the wall clock (a monotonic clock restarts with the process).
    At start the unexpired ids (newest `max_items`) are read back; an unreadable file is put aside
    and the server starts with an empty memory and a warning, and if no file can be written at
    all it keeps the ids in memory only. Use `await PersistentSeenIds.open(...)` and `await close()`.
    """

    def __init__(
        self, path: Path, ttl: float = 3600.0, max_items: int = 100_000, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(ttl, max_items, clock)
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._writes = 0
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="visearch-deliveries")

    @classmethod
    async def open(
        cls, path: Path, ttl: float = 3600.0, max_items: int = 100_000, clock: Callable[[], float] = time.time
    ) -> PersistentSeenIds:
        """The memory with the file's unexpired ids loaded (in the writer thread)."""
        seen = cls(path, ttl, max_items, clock)
        await seen.load()
        return seen

    async def load(self) -> None:
        """Read the file's unexpired ids into the memory (in the writer thread, so the loop never waits on the disk)."""
        await asyncio.get_running_loop().run_in_executor(self._writer, self._load)

    def finished(self, key: Hashable) -> None:
        """Queue the id for the file, stamped when it was first seen (the TTL counts from there)."""
        text = self._normal(key)
        at = self._seen.get(text)
        with contextlib.suppress(RuntimeError):  # closed (shutting down): the id is still remembered in memory
            self._writer.submit(self._record, text, self._clock() if at is None else at)

    def _normal(self, key: Hashable) -> str:
        return _key_text(key)

    async def close(self) -> None:
        """Write what is queued, then close the file."""
        await asyncio.get_running_loop().run_in_executor(self._writer, self._close_db)
        self._writer.shutdown(wait=True)

    # -- the writer thread ---------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # WAL: a commit survives the process dying
            db.execute("CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY, at REAL NOT NULL)")
            db.execute("CREATE INDEX IF NOT EXISTS seen_at ON seen (at)")
            db.execute("PRAGMA quick_check").fetchall()
        except BaseException:
            db.close()
            raise
        return db

    def _load(self) -> None:
        try:
            self._db = self._connect()
        except sqlite3.DatabaseError as exc:  # not a database, corrupted pages
            aside = self.path.with_name(self.path.name + ".unreadable")
            log.warning(
                "delivery ids: %s is unreadable (%s); starting with none remembered, the old file is kept as %s",
                self.path,
                type(exc).__name__,
                aside.name,
            )
            try:
                for suffix in ("", "-wal", "-shm"):
                    old = self.path.with_name(self.path.name + suffix)
                    if old.exists():
                        old.replace(aside.with_name(aside.name + suffix))
                self._db = self._connect()
            except (OSError, sqlite3.Error) as again:
                self._memory_only(again)
                return
        except (OSError, sqlite3.Error) as exc:  # unwritable directory, locked file
            self._memory_only(exc)
            return
        try:
            self._compact()
            rows = self._db.execute("SELECT key, at FROM seen ORDER BY at DESC LIMIT ?", (self.max_items,)).fetchall()
        except sqlite3.Error as exc:
            self._memory_only(exc)
            return
        for key, at in reversed(rows):
            self._seen[key] = at

    def _record(self, key: str, at: float) -> None:
        if self._db is None:
            return
        try:
            self._db.execute("INSERT OR REPLACE INTO seen (key, at) VALUES (?, ?)", (key, at))
            self._writes += 1
            if self._writes % COMPACT_EVERY == 0:
                self._compact()
        except sqlite3.Error as exc:  # disk full, file removed: go on without the file
            self._memory_only(exc)

    def _compact(self) -> None:
        assert self._db is not None
        self._db.execute("DELETE FROM seen WHERE at <= ?", (self._clock() - self.ttl,))
        self._db.execute(
            "DELETE FROM seen WHERE key NOT IN (SELECT key FROM seen ORDER BY at DESC LIMIT ?)", (self.max_items,)
        )

    def _memory_only(self, exc: BaseException) -> None:
        log.warning(
            "delivery ids: cannot use %s (%s); they are remembered in memory only until a restart",
            self.path,
            type(exc).__name__,
        )
        self._close_db()

    def _close_db(self) -> None:
        if self._db is not None:
            try:
                self._db.close()
            finally:
                self._db = None


def _key_text(key: Hashable) -> str:
    """A delivery key as stored: ('viber', '5') -> '["viber","5"]' (the same text in every process)."""
    return json.dumps(key, separators=(",", ":"), default=str)
