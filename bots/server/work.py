"""Background work for webhooks: a bounded queue with workers, and a memory of delivery ids.

Webhooks must answer quickly (platforms retry slow or failed deliveries), so each delivery is
acknowledged at once and its search runs here. The queue is bounded: when it is full the caller
gets False and sends the user a short "busy" reply instead of dropping the message silently.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable

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
    acknowledged without searching twice."""

    def __init__(self, ttl: float = 3600.0, max_items: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_items = max_items
        self._clock = clock
        self._seen: OrderedDict[Hashable, float] = OrderedDict()

    def first_time(self, key: Hashable) -> bool:
        """True the first time a key is seen (and remembers it); False for a repeat within the TTL."""
        now = self._clock()
        while self._seen and (len(self._seen) >= self.max_items or next(iter(self._seen.values())) <= now - self.ttl):
            self._seen.popitem(last=False)
        if key in self._seen:
            return False
        self._seen[key] = now
        return True

    def __len__(self) -> int:
        return len(self._seen)
