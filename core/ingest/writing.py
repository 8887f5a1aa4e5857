"""Fetch, hash, sort and write one run's images in batches: the part of ingest that touches the encoder.

A pipeline with bounded stages, so every core works and memory stays flat whatever the catalog:

    fetch (`fetch_concurrency` tasks) -> queue (2 x batch_size) -> sort (here) -> batches
    -> embed (`encoder_workers` threads: decode once, image vector, colours, OCR, local features,
       words vector) -> write (each batch durable when its upsert returns)

Fetching goes on while batches are embedded; with ONNX Runtime (one core per call) one batch
embeds per core at once, and a batch is written as soon as it is embedded. At most
`encoder_workers` batches are in flight; the sorter waits for a free one, so the fetch queue fills
and the fetchers wait too: what one run holds is bounded by the batch size, not the catalog.
Each fetched image is *unchanged* (same image hash and product hash: no work), *updated* (same
image, new metadata: the stored vector is written back with the new payload, never re-embedded),
*copied* (an identical image is already stored under another point: its vector is reused), or
*to embed*. Each batch is durable when written, so an interrupted run keeps its work.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from visearch.core.colour import dominant_colours
from visearch.core.config import Settings, encoder_workers
from visearch.core.domain import PointRecord, Product
from visearch.core.encoders.base import Encoder, WordsEncoder
from visearch.core.errors import ImageError
from visearch.core.fetch import FetchError, ImageFetcher, is_url
from visearch.core.images import decode_image
from visearch.core.ingest.planning import ExistingPoint
from visearch.core.ingest.progress import Progress
from visearch.core.ingest.summary import IndexSummary, Problem, StageClock, timed
from visearch.core.local_features import EXTRACTOR_VERSION, extract
from visearch.core.ocr import TextReader
from visearch.core.store.base import VectorStore

#: decode at about this size (JPEG DCT scaling): plenty for 224-px encoders, far cheaper than 12 MP.
#: The same hint as the search path (core.search), so catalog and query photos are treated alike.
DECODE_SIZE_HINT = 448
#: hash big downloads off the event loop (hashlib releases the GIL)
HASH_IN_THREAD_BYTES = 256 * 1024
T = TypeVar("T")


def product_hash(product: Product, image_root: str = "") -> str:
    """Hash of the product's metadata (everything but per-image fields): a change means rewriting payloads.

    The catalog's folder is part of it: a moved catalog rewrites the recorded image root."""
    data = product.model_dump(mode="json")
    data["__image_root"] = image_root
    blob = json.dumps(data, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


@dataclass(slots=True)
class ImageJob:
    """One image of one product, from fetch to write."""

    line: int | None
    product: Product
    ref: str
    index: int
    point_id: str
    product_hash: str
    image_root: str
    data: bytes | None = None
    sha256: str = ""

    def payload(self) -> dict[str, Any]:
        payload = self.product.payload(self.ref, self.sha256, self.index)
        payload["product_hash"] = self.product_hash
        payload["image_root"] = self.image_root  # local refs resolve against it when a bot uploads them
        return payload


@dataclass(frozen=True, slots=True)
class _Copy:
    """Write `job` with the vector stored under `source` (itself for a metadata update)."""

    job: ImageJob
    source: str


class _Done:
    """End of the fetch stream."""


@dataclass(frozen=True)
class _ProducerFailed:
    error: BaseException


_Fetched = tuple[ImageJob, str | None]  # the job (bytes and hash filled in) or a failure reason


class ImageWriter:
    """The state of one run's writes: what the store holds, what waits to be written, the counts."""

    def __init__(
        self,
        encoder: Encoder,
        store: VectorStore,
        settings: Settings,
        summary: IndexSummary,
        existing: dict[str, ExistingPoint],
        progress: Progress,
        words: bool = False,
        reuse_stored_urls: bool = False,
    ) -> None:
        self.encoder, self.store, self.settings, self.summary, self.existing, self.progress = (
            encoder,
            store,
            settings,
            summary,
            existing,
            progress,
        )
        #: the collection holds text vectors: every written point gets the product's words embedded
        self.words = words
        self.reuse_stored_urls = reuse_stored_urls
        self.reader = TextReader() if settings.ocr else None
        self.batch_size = settings.batch_size
        # a stored point for each image hash: identical bytes under a new id reuse its vector
        self.by_sha: dict[str, str] = {}
        for pid, old in existing.items():
            if old.sha256:
                self.by_sha.setdefault(old.sha256, pid)
        self.to_embed: list[ImageJob] = []
        self.to_copy: list[_Copy] = []
        #: local features are extracted at index time (VISEARCH_LOCAL_FEATURES)
        self.extract_features = settings.local_features
        #: image hashes whose local features of this extractor version are stored (read in `process`)
        self.featured: set[str] = set()
        #: images stored already (unchanged, updated, copied) that still need their local features
        self.to_extract: list[ImageJob] = []
        #: batches embedded at once (one per core with ONNX Runtime, one with torch: it uses every core)
        self.workers = encoder_workers(settings)
        self._pool: ThreadPoolExecutor | None = None
        self._slots = asyncio.Semaphore(self.workers)
        self._in_flight: set[asyncio.Task[None]] = set()
        #: image hash -> jobs with the same bytes, waiting while the first is embedded (then copied)
        self._embedding: dict[str, list[ImageJob]] = {}
        self._failure: BaseException | None = None

    async def process(self, fetcher: ImageFetcher, jobs: Sequence[ImageJob], base_dir: Path) -> None:
        """Fetch concurrently (producer) while sorting (here) and embedding and writing batches (in flight)."""
        if not jobs:
            return
        if self.extract_features:
            stored = [old.sha256 for old in self.existing.values() if old.sha256]
            self.featured = await self.store.features_present(EXTRACTOR_VERSION, stored)
        queue: asyncio.Queue[_Fetched | _Done | _ProducerFailed] = asyncio.Queue(maxsize=2 * self.batch_size)
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="visearch-embed")
        producer = asyncio.create_task(self._produce(fetcher, jobs, base_dir, queue), name="visearch-fetch")
        try:
            while True:
                item = await queue.get()
                if isinstance(item, _Done):
                    break
                if isinstance(item, _ProducerFailed):
                    raise item.error
                job, error = item
                if error is not None:
                    self._fail(job, error)
                    continue
                self._sort(job)
                self._raise_failure()
                if len(self.to_copy) >= self.batch_size:
                    await self._flush_copies()
                if len(self.to_embed) >= self.batch_size:
                    await self._flush_embed()
                if len(self.to_extract) >= self.batch_size:
                    await self._flush_extract()
            while True:  # a finished batch may release images waiting for its vectors
                await self._flush_copies()  # may hand images back to embed
                while self.to_embed:
                    await self._flush_embed()
                while self.to_extract:
                    await self._flush_extract()
                await self._drain()
                if not (self.to_copy or self.to_embed or self.to_extract):
                    break
        finally:
            if not producer.done():
                producer.cancel()
            # batches in flight are finished and written: an interrupted run keeps what it embedded
            await asyncio.gather(producer, *self._in_flight, return_exceptions=True)
            self._pool.shutdown(wait=True)  # a cancelled batch's thread finishes its call first

    async def _produce(
        self,
        fetcher: ImageFetcher,
        jobs: Sequence[ImageJob],
        base_dir: Path,
        queue: asyncio.Queue[_Fetched | _Done | _ProducerFailed],
    ) -> None:
        pending = iter(jobs)

        async def worker() -> None:
            for job in pending:  # shared iterator: each job goes to exactly one worker
                if self._reuse_stored(job):
                    await queue.put((job, None))
                else:
                    started = time.perf_counter()
                    fetched = await fetch_and_hash(fetcher, job, base_dir)
                    self.summary.add_seconds({"fetch": time.perf_counter() - started})
                    await queue.put(fetched)

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(self.settings.fetch_concurrency, len(jobs))):
                    group.create_task(worker())
        except Exception as exc:  # a bug, not a bad image: stop the run with it
            await queue.put(_ProducerFailed(exc))
            return
        await queue.put(_Done())

    def _reuse_stored(self, job: ImageJob) -> bool:
        """With `reuse_stored_urls` (a feed sync), an image URL the product already has stored is taken as
        unchanged without downloading it again: its stored hash stands for it (shops' CDNs put a new URL on
        a new photo). Never when the photo still needs reading (OCR turned on since)."""
        if not self.reuse_stored_urls or not is_url(job.ref):
            return False
        old = self.existing.get(job.point_id)
        if old is None or not old.sha256 or (self.reader is not None and not old.has_ocr):
            return False
        if self.extract_features and old.sha256 not in self.featured:
            return False  # its local features are missing (turned on, or a new extractor): fetch it once
        job.sha256 = old.sha256
        return True

    def _sort(self, job: ImageJob) -> None:
        """Unchanged, metadata update, copy of an identical image, or embed."""
        old = self.existing.get(job.point_id)
        if old is not None and old.sha256 == job.sha256:
            if self.reader is not None and not old.has_ocr:
                self.to_embed.append(job)  # OCR was turned on since: read this photo once
            elif old.product_hash == job.product_hash:
                self._keep_for_features(job)
                self.summary.unchanged += 1
                self.summary.stored_products.add(job.product.id)
                self._advance(1)
            else:
                self.to_copy.append(_Copy(job, job.point_id))
            return
        donor = self.by_sha.get(job.sha256)
        if donor is not None and donor != job.point_id:
            self.to_copy.append(_Copy(job, donor))
        elif job.sha256 in self._embedding:
            self._embedding[job.sha256].append(job)  # the same bytes are on their way: copy them once stored
        else:
            self._embedding[job.sha256] = []
            self.to_embed.append(job)

    async def _flush_copies(self) -> None:
        """Write stored vectors with new payloads: one retrieve and one upsert per batch.

        (A batch upsert instead of `set_payload` per point: same result - the vector is the stored
        one - at one durable write per batch instead of one per point.) Anything whose source is
        gone or holds other bytes by now goes to the embed queue instead.
        """
        copies, self.to_copy = self.to_copy, []
        if not copies:
            return
        sources = list(dict.fromkeys(c.source for c in copies))
        stored = {p.point_id: p for p in await self.store.retrieve(sources, with_vectors=True)}
        records: list[PointRecord] = []
        updated = copied = 0
        for copy in copies:
            job, source = copy.job, stored.get(copy.source)
            if (
                source is None
                or source.vector is None
                or source.payload.get("image_sha256") != job.sha256
                or (self.reader is not None and "ocr_text" not in source.payload)
            ):
                self.to_embed.append(job)
                continue
            payload = {**job.payload(), "colours": source.payload.get("colours") or []}  # same bytes, same colours
            if "ocr_text" in source.payload:
                payload["ocr_text"] = source.payload["ocr_text"]
            records.append(PointRecord(id=job.point_id, vector=source.vector, payload=payload))
            self._keep_for_features(job)
            if copy.source == job.point_id:
                updated += 1
            else:
                copied += 1
        if records:
            await self._write(await self._with_words(records))
        self.summary.stored_products.update(r.payload["product_id"] for r in records)
        self.summary.updated += updated
        self.summary.indexed += copied
        self._advance(len(records))

    async def _flush_embed(self) -> None:
        """Start embedding and writing one batch once fewer than `workers` are in flight (the sorter
        waits here, so fetched images pile up no further than the fetch queue)."""
        jobs, self.to_embed = self.to_embed[: self.batch_size], self.to_embed[self.batch_size :]
        if not jobs:
            return
        await self._slots.acquire()
        self._raise_failure()
        task = asyncio.create_task(self._embed_and_write(jobs), name="visearch-embed-batch")
        self._in_flight.add(task)
        task.add_done_callback(self._batch_done)

    async def _embed_and_write(self, jobs: list[ImageJob]) -> None:
        """Decode and embed one batch on the embed pool, then write it (durable before returning)."""
        try:
            batch = await self._compute(
                decode_and_embed,
                jobs,
                self.encoder,
                self.settings.max_image_pixels,
                self.reader,
                self.extract_features,
            )
            self.summary.add_seconds(batch.seconds)
            await self._store_features(
                {j.sha256: f for j, f in zip(jobs, batch.features, strict=True) if f is not None}
            )
            records: list[PointRecord] = []
            for job, vector, error, names, text in zip(
                jobs, batch.vectors, batch.errors, batch.colours, batch.texts, strict=True
            ):
                if error is not None:
                    self._fail(job, error, advance=False)
                else:
                    assert vector is not None
                    payload = {**job.payload(), "colours": names}
                    if text is not None:
                        payload["ocr_text"] = text
                    records.append(PointRecord(id=job.point_id, vector=vector, payload=payload))
                job.data = None
            if records:
                await self._write(await self._with_words(records))
            for record in records:  # now durable: later identical images may copy these vectors
                self.by_sha.setdefault(record.payload["image_sha256"], record.id)
                self.summary.stored_products.add(record.payload["product_id"])
            self.summary.indexed += len(records)
            self.summary.embedded += batch.embedded
            self._advance(len(jobs))
            for sha in dict.fromkeys(job.sha256 for job in jobs):
                for waiting in self._embedding.pop(sha, []):
                    self._sort(waiting)  # a copy of the stored vector now, or embedded itself if that failed
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a bug, a store failure, Ctrl-C in the worker: the run stops with it
            if self._failure is None:
                self._failure = exc
        finally:
            self._slots.release()

    async def _write(self, records: list[PointRecord]) -> None:
        """Upsert one batch (durable when it returns), timed as the write stage."""
        started = time.perf_counter()
        await self.store.upsert(records)
        self.summary.add_seconds({"write": time.perf_counter() - started})

    def _batch_done(self, task: asyncio.Task[None]) -> None:
        """Forget a finished batch (its failure, if any, is in `_failure`)."""
        self._in_flight.discard(task)

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    async def _drain(self) -> None:
        """Wait for every batch in flight; the first one that failed stops the run."""
        while self._in_flight:
            await asyncio.wait(set(self._in_flight))
        self._raise_failure()

    async def _compute(self, fn: Callable[..., T], *args: Any) -> T:
        """Run CPU-heavy work (decode, encoders, local features) on the embed pool, off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _keep_for_features(self, job: ImageJob) -> None:
        """A stored image is done, unless its local features are missing: then it waits for extraction."""
        if self.extract_features and job.data is not None and job.sha256 not in self.featured:
            self.featured.add(job.sha256)  # queued once, even when several products list the same bytes
            self.to_extract.append(job)
        else:
            job.data = None

    async def _flush_extract(self) -> None:
        """Local features of stored images (no encoder, no point written): decode, extract, store."""
        jobs, self.to_extract = self.to_extract[: self.batch_size], self.to_extract[self.batch_size :]
        extracted = await self._compute(timed, extract_features_of, jobs, self.settings.max_image_pixels)
        self.summary.add_seconds({"local features": extracted.seconds})
        blobs = extracted.value
        for job in jobs:
            job.data = None
        await self._store_features(blobs)

    async def _store_features(self, blobs: dict[str, bytes]) -> None:
        """Write a batch of local features (durable on return) and count them."""
        if blobs:
            started = time.perf_counter()
            await self.store.put_features(EXTRACTOR_VERSION, blobs)
            self.summary.add_seconds({"write": time.perf_counter() - started})
            self.featured.update(blobs)
            self.summary.features += len(blobs)

    async def _with_words(self, records: list[PointRecord]) -> list[PointRecord]:
        """Attach each point's text vector: its product's words plus the OCR text of its photo."""
        if not self.words:
            return records
        assert isinstance(self.encoder, WordsEncoder)
        texts = [Product.from_payload(r.payload).words(str(r.payload.get("ocr_text") or "")) for r in records]
        vectors = await self._compute(timed, self.encoder.embed_words, texts)
        self.summary.add_seconds({"words vectors": vectors.seconds})
        return [
            r.model_copy(update={"text_vector": v})
            for r, v in zip(records, np.asarray(vectors.value).tolist(), strict=True)
        ]

    def _fail(self, job: ImageJob, reason: str, *, advance: bool = True) -> None:
        job.data = None
        self.summary.failed += 1
        self.summary.problems.append(Problem(job.line, job.product.id, job.ref, reason))
        if advance:
            self._advance(1)

    def _advance(self, n: int) -> None:
        if n:
            self.progress.advance(n, self.summary.counts())


async def fetch_and_hash(fetcher: ImageFetcher, job: ImageJob, base_dir: Path) -> _Fetched:
    """Bytes and sha256 of one image, or a reason; never raises (but for cancellation)."""
    try:
        data = await fetcher.fetch(job.ref, base_dir)
        if len(data) > HASH_IN_THREAD_BYTES:
            digest = await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())
        else:
            digest = hashlib.sha256(data).hexdigest()
    except FetchError as exc:
        return job, str(exc)
    except Exception as exc:  # one odd image must not stop a catalog of thousands
        return job, f"unexpected error while fetching: {type(exc).__name__}: {exc}"
    job.data, job.sha256 = data, digest
    return job, None


def extract_features_of(jobs: Sequence[ImageJob], max_pixels: int) -> dict[str, bytes]:
    """Image hash -> local features of each job's image; an image that no longer decodes is left out
    (it is stored already: it keeps working, unverified)."""
    blobs: dict[str, bytes] = {}
    for job in jobs:
        if job.data is None or job.sha256 in blobs:
            continue
        try:
            image = decode_image(job.data, max_pixels, target_size=DECODE_SIZE_HINT)
        except ImageError:
            continue
        blobs[job.sha256] = extract(image).to_bytes()
    return blobs


@dataclass(slots=True)
class EmbeddedBatch:
    """What `decode_and_embed` made of one batch, per job (in the batch's order)."""

    vectors: list[list[float] | None]
    errors: list[str | None]
    #: images the encoder saw (a batch's repeated image is embedded once)
    embedded: int
    #: dominant colour names, for the colour filter
    colours: list[list[str]]
    #: the text read off each photo (with a reader)
    texts: list[str | None]
    #: local features (None for a job whose image repeats an earlier job's, or without features)
    features: list[bytes | None]
    #: seconds spent in each stage of this batch (`STAGES`)
    seconds: dict[str, float]


def decode_and_embed(
    jobs: Sequence[ImageJob],
    encoder: Encoder,
    max_pixels: int,
    reader: TextReader | None = None,
    features: bool = False,
) -> EmbeddedBatch:
    """Decode each distinct image once (a bad one is reported, the rest go on) and make everything the
    point needs of it: the vectors (the good ones in one encoder call), colours, with a `reader` the
    text on it, with `features` its local features. One decode feeds them all."""
    clock = StageClock()
    images = []
    slot_of: dict[str, int] = {}  # image hash -> position in `images`
    errors_by_sha: dict[str, str] = {}
    with clock("decode"):
        for job in jobs:
            if job.sha256 in slot_of or job.sha256 in errors_by_sha:
                continue
            try:
                assert job.data is not None
                images.append(decode_image(job.data, max_pixels, target_size=DECODE_SIZE_HINT))
                slot_of[job.sha256] = len(images) - 1
            except ImageError as exc:
                errors_by_sha[job.sha256] = str(exc)
            except Exception as exc:  # Pillow raises odd things on odd files; report, do not stop
                errors_by_sha[job.sha256] = f"cannot decode image: {type(exc).__name__}: {exc}"
    rows: list[list[float]] = []
    if images:
        with clock("image vectors"):
            embedded = encoder.embed_images(images)
        if len(embedded) != len(images):
            raise RuntimeError(f"encoder returned {len(embedded)} vectors for {len(images)} images")
        rows = np.asarray(embedded).tolist()  # Python floats of the encoder's own precision
    with clock("colours"):
        names = [dominant_colours(img) for img in images]
    with clock("ocr"):
        read = [reader.read(img) for img in images] if reader is not None else [None] * len(images)
    with clock("local features"):
        local = [extract(img).to_bytes() for img in images] if features else [None] * len(images)
    blobs: list[bytes | None] = []
    given: set[str] = set()
    for job in jobs:
        first = job.sha256 in slot_of and job.sha256 not in given
        given.add(job.sha256)
        blobs.append(local[slot_of[job.sha256]] if first else None)
    return EmbeddedBatch(
        vectors=[rows[slot_of[j.sha256]] if j.sha256 in slot_of else None for j in jobs],
        errors=[errors_by_sha.get(j.sha256) for j in jobs],
        embedded=len(images),
        colours=[names[slot_of[j.sha256]] if j.sha256 in slot_of else [] for j in jobs],
        texts=[read[slot_of[j.sha256]] if j.sha256 in slot_of else None for j in jobs],
        features=blobs,
        seconds=clock.seconds,
    )
