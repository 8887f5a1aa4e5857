"""Micro-batching of query encodings: many chats' queries, one encoder call.

Why: an encoder call has a fixed cost (Python and torch dispatch, thread hop, weights through the
cache) that a batch shares. When many chats send photos at once, embedding them one by one leaves
that cost on every query; gathering the queries that arrive within a few milliseconds into one
`encoder.embed_images(list)` call raises throughput under load, at the price of at most
`wait_ms` of added latency for a query that arrives alone.

How: each request (an image query: the bytes or decoded images of one photo or album; a text;
a words text) is put in the lane of its kind with a future. One collector task per batcher waits
for a free encoder worker, takes the lane whose oldest request has waited longest, waits until that
request is `wait_ms` old or the lane holds `max_batch` items, and runs the batch in ONE encoder
call on that worker. While all `workers` calls run, new requests pile up, so under load the next
batch leaves at once, full: the window only ever delays a request that found a worker idle, and
never by more than `wait_ms`. Several workers pay where one encoder call uses one core (ONNX
Runtime with one intra-op thread): two batches run at once on two cores.

Failures stay with their request: photos are decoded one by one on the encoder thread before the
batch is embedded, so a broken photo fails only its own query. A cancelled request is dropped (or
its result ignored) without touching the others. At most `max_pending` requests wait or run at
once; one more raises `EncoderBusyError`, which the adapters turn into their "busy" reply instead
of letting a backlog grow without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

import numpy as np
from PIL import Image

from visearch.core.encoders.base import Encoder, WordsEncoder, l2_normalise
from visearch.core.errors import EncoderBusyError, VisearchError

log = logging.getLogger("visearch.batching")

Kind = Literal["image", "views", "text", "words"]
#: one photo of a query: its raw bytes (decoded on the encoder thread) or an already decoded image
Photo = bytes | Image.Image
T = TypeVar("T")


class RunOnEncoder(Protocol):
    """Runs a blocking function on the encoder thread and awaits its result."""

    def __call__(self, fn: Callable[..., T], /, *args: Any) -> Awaitable[T]: ...


#: bytes -> RGB image; raises core.errors.ImageError for a photo that cannot be used
Decode = Callable[[bytes], Image.Image]
#: what a batch reports to an observer (tests, metrics): its kind and the size of each request
BatchObserver = Callable[[Kind, list[int]], None]


@dataclass(eq=False, slots=True)
class _Request:
    """One query waiting for its vector."""

    kind: Kind
    payload: Any  # Sequence[Photo] for images, str for texts and words
    future: asyncio.Future[np.ndarray]
    size: int  # encoder inputs it needs (photos of an album count one each)
    arrived: float = field(default_factory=time.monotonic)


class MicroBatcher:
    """Gathers concurrent query encodings into batches; one per SearchService (it owns no thread).

    `run` is the service's encoder-pool runner, so batches and the service's other encoder work
    (colour extraction) share the same threads; `workers` is the size of that pool, the number of
    batches allowed on it at once. `wait_ms == 0` turns batching off: each request is one encoder
    call, as before batching existed, and only the pending bound remains.
    """

    def __init__(
        self,
        encoder: Encoder,
        run: RunOnEncoder,
        decode: Decode,
        *,
        wait_ms: float = 5.0,
        max_batch: int = 16,
        max_pending: int = 256,
        workers: int = 1,
        observer: BatchObserver | None = None,
    ) -> None:
        if wait_ms < 0 or max_batch < 1 or max_pending < 1 or workers < 1:
            raise ValueError("wait_ms >= 0, max_batch >= 1, max_pending >= 1 and workers >= 1 are required")
        self.encoder = encoder
        self.wait = wait_ms / 1000.0
        self.max_batch = max_batch
        self.max_pending = max_pending
        self.workers = workers
        self._run = run
        self._decode = decode
        self.observer = observer
        self._pending = 0  # requests accepted and not yet answered (waiting or on the encoder)
        self._lanes: dict[Kind, deque[_Request]] = {
            "image": deque(),
            "views": deque(),
            "text": deque(),
            "words": deque(),
        }
        self._wakeup: asyncio.Event | None = None
        self._collector: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()  # batches on the encoder right now
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    @property
    def enabled(self) -> bool:
        """False when `wait_ms` is 0: every request is its own encoder call."""
        return self.wait > 0 and self.max_batch > 1

    @property
    def pending(self) -> int:
        """Requests waiting for a batch or being embedded right now."""
        return self._pending

    async def embed_images(self, photos: Sequence[Photo]) -> np.ndarray:
        """The query vector of one photo or album (the L2-normalised mean of its photos)."""
        if not photos:
            raise ValueError("an image query needs at least one photo")
        return await self._submit("image", list(photos), len(photos))

    async def embed_views(self, photos: Sequence[Photo]) -> np.ndarray:
        """Each photo's own vector, one row per photo (the framings of a query photo, scored apart)."""
        if not photos:
            raise ValueError("an image query needs at least one photo")
        return await self._submit("views", list(photos), len(photos))

    async def embed_text(self, text: str) -> np.ndarray:
        """The image-space vector of a text query."""
        return await self._submit("text", text, 1)

    async def embed_words(self, text: str) -> np.ndarray:
        """The words-space vector of a text query (encoders with a words signal only)."""
        if not isinstance(self.encoder, WordsEncoder):
            raise TypeError(f"encoder {self.encoder.model_id!r} has no words signal")
        return await self._submit("words", text, 1)

    async def close(self) -> None:
        """Stop the collector; requests still waiting fail with EncoderBusyError."""
        self._closed = True
        task, self._collector = self._collector, None
        for running in [task, *self._in_flight]:
            if running is not None and not running.done():
                running.cancel()
                with contextlib.suppress(asyncio.CancelledError, RuntimeError):  # RuntimeError: the task's loop is gone
                    await running
        self._fail_waiting(EncoderBusyError("the search service is shutting down: please try again"))

    # -- internals -------------------------------------------------------------------------------

    async def _submit(self, kind: Kind, payload: Any, size: int) -> np.ndarray:
        if self._closed:
            raise EncoderBusyError("the search service is shutting down: please try again")
        if self._pending >= self.max_pending:
            raise EncoderBusyError(
                f"the encoder has {self._pending} queries waiting (VISEARCH_MAX_PENDING={self.max_pending}): try again shortly"
            )
        self._pending += 1
        try:
            if not self.enabled:
                alone = await self._run(self._embed_batch, kind, [payload])
                return alone[0].unwrap()
            request = _Request(kind, payload, asyncio.get_running_loop().create_future(), size)
            self._lanes[kind].append(request)
            self._ensure_collector().set()
            return await request.future  # a cancelled caller cancels only its own future
        finally:
            self._pending -= 1

    def _ensure_collector(self) -> asyncio.Event:
        """The collector of the running loop, started on first use (and again if a new loop runs us)."""
        loop = asyncio.get_running_loop()
        if self._collector is None or self._collector.done() or self._loop is not loop or self._wakeup is None:
            if self._loop is not loop:  # requests of a finished loop can never be answered
                self._lanes = {k: deque(r for r in v if r.future.get_loop() is loop) for k, v in self._lanes.items()}
            self._loop = loop
            self._wakeup = asyncio.Event()
            self._in_flight = set()
            slots = asyncio.Semaphore(self.workers)  # free encoder workers
            self._collector = loop.create_task(self._collect(self._wakeup, slots), name="visearch-microbatcher")
        return self._wakeup

    async def _collect(self, wakeup: asyncio.Event, slots: asyncio.Semaphore) -> None:
        """Forever: wait for a free worker, let the oldest lane's window fill, start its batch."""
        while True:
            await slots.acquire()
            try:
                kind, batch = await self._next_batch(wakeup)
            except BaseException:
                slots.release()
                raise
            task = asyncio.get_running_loop().create_task(self._dispatch(kind, batch))
            self._in_flight.add(task)
            task.add_done_callback(self._batch_finished(slots))

    def _batch_finished(self, slots: asyncio.Semaphore) -> Callable[[asyncio.Task[None]], None]:
        """The done-callback of a batch's task: forget the task and free its encoder worker."""

        def finished(done: asyncio.Task[None]) -> None:
            self._in_flight.discard(done)
            slots.release()

        return finished

    async def _next_batch(self, wakeup: asyncio.Event) -> tuple[Kind, list[_Request]]:
        """The next batch: the lane with the oldest request, once its window is over or it is full."""
        while True:
            kind = self._oldest_lane()
            if kind is None:
                wakeup.clear()
                await wakeup.wait()
                continue
            lane = self._lanes[kind]
            delay = lane[0].arrived + self.wait - time.monotonic()
            if delay > 0 and sum(r.size for r in lane) < self.max_batch:
                wakeup.clear()
                # woken early by each new request, to leave as soon as the batch is full
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wakeup.wait(), delay)
                continue
            batch = self._take(lane)
            if batch:
                return kind, batch

    async def _dispatch(self, kind: Kind, batch: list[_Request]) -> None:
        """Run one batch on an encoder worker and answer each of its requests."""
        if self.observer is not None:
            try:
                self.observer(kind, [r.size for r in batch])
            except Exception:  # an observer's bug must not stop the batches
                log.exception("batch observer failed")
        try:
            outcomes = await self._run(self._embed_batch, kind, [r.payload for r in batch])
        except asyncio.CancelledError:  # shutting down with this batch on the encoder
            error = EncoderBusyError("the search service is shutting down: please try again")
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(error)
            raise
        except Exception as exc:
            outcomes = [_Outcome(error=exc)] * len(batch)
        if len(outcomes) != len(batch):  # not expected (an encoder returned too few or too many vectors): fail them all
            mismatch = VisearchError(
                f"the encoder returned {len(outcomes)} results for a batch of {len(batch)} queries"
            )
            outcomes = [_Outcome(error=mismatch)] * len(batch)
        for request, outcome in zip(batch, outcomes, strict=True):
            if not request.future.done():  # cancelled while on the encoder: nobody to answer
                if outcome.error is not None:
                    request.future.set_exception(outcome.error)
                elif outcome.vector is not None:
                    request.future.set_result(outcome.vector)
                else:  # not expected: _embed_batch gives every decoded request its vector
                    request.future.set_exception(VisearchError("the encoder returned no vector for this query"))

    def _oldest_lane(self) -> Kind | None:
        for lane in self._lanes.values():
            while lane and lane[0].future.done():  # cancelled while waiting: drop it
                lane.popleft()
        heads = [(lane[0].arrived, kind) for kind, lane in self._lanes.items() if lane]
        return min(heads)[1] if heads else None

    def _take(self, lane: deque[_Request]) -> list[_Request]:
        """Up to `max_batch` encoder inputs, oldest first (an album bigger than that goes alone)."""
        batch: list[_Request] = []
        total = 0
        while lane:
            request = lane[0]
            if request.future.done():
                lane.popleft()
                continue
            if batch and total + request.size > self.max_batch:
                break
            batch.append(lane.popleft())
            total += request.size
        return batch

    def _fail_waiting(self, error: Exception) -> None:
        for lane in self._lanes.values():
            while lane:
                request = lane.popleft()
                if not request.future.done() and not request.future.get_loop().is_closed():
                    request.future.set_exception(error)

    def _embed_batch(self, kind: Kind, payloads: list[Any]) -> list[_Outcome]:
        """On the encoder thread: one encoder call for the whole batch; one outcome per request."""
        if kind == "text":
            return [_Outcome(vector=v) for v in self.encoder.embed_texts(payloads)]
        if kind == "words":
            assert isinstance(self.encoder, WordsEncoder)
            return [_Outcome(vector=v) for v in self.encoder.embed_words(payloads)]
        outcomes: list[_Outcome] = []
        images: list[Image.Image] = []
        spans: list[tuple[int, int] | None] = []
        for photos in payloads:  # decode one by one: a broken photo fails its own query only
            try:
                decoded = [p if isinstance(p, Image.Image) else self._decode(p) for p in photos]
            except Exception as exc:
                outcomes.append(_Outcome(error=exc))
                spans.append(None)
                continue
            spans.append((len(images), len(images) + len(decoded)))
            images.extend(decoded)
            outcomes.append(_Outcome())
        if images:
            vectors = np.asarray(self.encoder.embed_images(images), dtype=np.float32)
            for outcome, span in zip(outcomes, spans, strict=True):
                if span is None:
                    continue
                if kind == "views":  # every photo's vector
                    outcome.vector = vectors[span[0] : span[1]].copy()
                else:  # an album's vector: the normalised mean of its photos
                    outcome.vector = l2_normalise(vectors[span[0] : span[1]].mean(axis=0, keepdims=True))[0]
        return outcomes


@dataclass(slots=True)
class _Outcome:
    """A request's vector, or the error that is its alone."""

    vector: np.ndarray | None = None
    error: BaseException | None = None

    def unwrap(self) -> np.ndarray:
        if self.error is not None:
            raise self.error
        assert self.vector is not None
        return self.vector
