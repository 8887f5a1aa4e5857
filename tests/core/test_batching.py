"""Micro-batching (core.batching): fewer encoder calls under load, the same vectors, failures and
cancellations that stay with their own request, back-pressure. Real offline encoder, real photos;
batch composition is observed through a counting wrapper, never through wall time."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from visearch.core.batching import MicroBatcher
from visearch.core.errors import EncoderBusyError, ImageError, VisearchError
from visearch.core.images import decode_image
from visearch.core.local_features import crops

SAMPLE_IMAGES = Path(__file__).resolve().parents[2] / "indexer" / "demo_data" / "grocery" / "images"


class CountingEncoder:
    """Wraps a real encoder and records the size of every call (and can hold calls at a gate)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.model_id, self.dim = inner.model_id, inner.dim
        self.min_score_image, self.min_score_text = inner.min_score_image, inner.min_score_text
        self.words_dim, self.min_score_words = inner.words_dim, inner.min_score_words
        self.calls: list[tuple[str, int]] = []
        self.gate: threading.Event | None = None  # set: calls wait until it is released
        self.entered = threading.Event()

    def _enter(self, kind: str, n: int) -> None:
        self.calls.append((kind, n))
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(timeout=30)

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        self._enter("image", len(images))
        return self.inner.embed_images(images)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        self._enter("text", len(texts))
        return self.inner.embed_texts(texts)

    def embed_words(self, texts: Sequence[str]) -> np.ndarray:
        self._enter("words", len(texts))
        return self.inner.embed_words(texts)


@pytest.fixture(scope="module")
def photos() -> list[bytes]:
    files = sorted(SAMPLE_IMAGES.glob("*.jpg"))[:20]
    assert len(files) == 20
    return [f.read_bytes() for f in files]


def _decode(data: bytes) -> Image.Image:
    return decode_image(data, 40_000_000, target_size=448)


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


class Harness:
    """A batcher on its own executor of `workers` threads, like SearchService's encoder pool."""

    def __init__(self, encoder: CountingEncoder, **kwargs: Any) -> None:
        self.pool = ThreadPoolExecutor(max_workers=kwargs.get("workers", 1))
        self.batches: list[tuple[str, list[int]]] = []
        self.batcher = MicroBatcher(
            encoder, self.run, _decode, observer=lambda kind, sizes: self.batches.append((kind, sizes)), **kwargs
        )

    async def run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    async def close(self) -> None:
        await self.batcher.close()
        self.pool.shutdown(wait=True)


def test_concurrent_queries_share_calls_and_match_unbatched_vectors(offline_encoder, photos) -> None:
    encoder = CountingEncoder(offline_encoder)
    expected = [offline_encoder.embed_images([_decode(p)])[0] for p in photos]
    expected_text = offline_encoder.embed_texts(["green apple"])[0]

    async def main() -> tuple[list[np.ndarray], np.ndarray]:
        h = Harness(encoder, wait_ms=50, max_batch=8)
        try:
            vectors = await asyncio.gather(
                *(h.batcher.embed_images([p]) for p in photos), h.batcher.embed_text("green apple")
            )
            return list(vectors[:-1]), vectors[-1]
        finally:
            await h.close()

    vectors, text_vector = asyncio.run(main())
    image_calls = [n for kind, n in encoder.calls if kind == "image"]
    assert sum(image_calls) == 20
    assert len(image_calls) < 20  # batched: 20 queries, fewer encoder calls
    assert max(image_calls) <= 8  # never beyond max_batch
    assert ("text", 1) in encoder.calls  # texts go in their own call, never mixed with images
    for got, want in zip(vectors, expected, strict=True):
        assert _cos(got, want) > 0.9999
    assert _cos(text_vector, expected_text) > 0.9999


def test_album_is_the_mean_of_its_photos_inside_a_batch(offline_encoder, photos) -> None:
    encoder = CountingEncoder(offline_encoder)
    single = offline_encoder.embed_images([_decode(p) for p in photos[:3]])
    album_want = single.mean(axis=0)
    album_want /= np.linalg.norm(album_want)

    async def main() -> list[np.ndarray]:
        h = Harness(encoder, wait_ms=50, max_batch=16)
        try:
            return list(await asyncio.gather(h.batcher.embed_images(photos[:3]), h.batcher.embed_images([photos[0]])))
        finally:
            await h.close()

    album, lone = asyncio.run(main())
    assert h_calls(encoder) == [4]  # one call: the album's 3 photos and the other query's one
    assert _cos(album, album_want) > 0.9999
    assert _cos(lone, single[0]) > 0.9999


def h_calls(encoder: CountingEncoder) -> list[int]:
    return [n for kind, n in encoder.calls if kind == "image"]


def test_a_lone_query_goes_alone_after_the_window(offline_encoder, photos) -> None:
    encoder = CountingEncoder(offline_encoder)

    async def main() -> list[tuple[str, list[int]]]:
        h = Harness(encoder, wait_ms=5, max_batch=16)
        try:
            await h.batcher.embed_images([photos[0]])
            await h.batcher.embed_text("milk")
            return h.batches
        finally:
            await h.close()

    # each query was dispatched on its own once its window closed: nothing held it for a batch
    assert asyncio.run(main()) == [("image", [1]), ("text", [1])]


def test_a_full_batch_leaves_without_waiting_for_the_window(offline_encoder, photos) -> None:
    encoder = CountingEncoder(offline_encoder)

    async def main() -> list[tuple[str, list[int]]]:
        h = Harness(encoder, wait_ms=60_000, max_batch=4)  # a window that would outlast the test
        try:
            await asyncio.wait_for(asyncio.gather(*(h.batcher.embed_images([p]) for p in photos[:8])), 60)
            return h.batches
        finally:
            await h.close()

    assert asyncio.run(main()) == [("image", [1, 1, 1, 1]), ("image", [1, 1, 1, 1])]


def test_wait_zero_disables_batching(offline_encoder, photos) -> None:
    encoder = CountingEncoder(offline_encoder)

    async def main() -> list[np.ndarray]:
        h = Harness(encoder, wait_ms=0, max_batch=16)
        assert not h.batcher.enabled
        try:
            return list(await asyncio.gather(*(h.batcher.embed_images([p]) for p in photos[:6])))
        finally:
            await h.close()

    vectors = asyncio.run(main())
    assert h_calls(encoder) == [1] * 6
    assert len(vectors) == 6


def test_a_broken_photo_fails_only_its_own_request(offline_encoder, photos) -> None:
    encoder = CountingEncoder(offline_encoder)

    async def main() -> list[Any]:
        h = Harness(encoder, wait_ms=50, max_batch=16)
        try:
            return list(
                await asyncio.gather(
                    h.batcher.embed_images([photos[0]]),
                    h.batcher.embed_images([b"<html>not a photo</html>"]),
                    h.batcher.embed_images([photos[1], photos[2][:200]]),  # an album with a truncated photo
                    h.batcher.embed_images([photos[3]]),
                    return_exceptions=True,
                )
            )
        finally:
            await h.close()

    results = asyncio.run(main())
    assert isinstance(results[1], ImageError) and "not an image" in str(results[1])
    assert isinstance(results[2], ImageError)
    assert h_calls(encoder) == [2]  # the good ones, still in one call
    assert _cos(results[0], offline_encoder.embed_images([_decode(photos[0])])[0]) > 0.9999
    assert _cos(results[3], offline_encoder.embed_images([_decode(photos[3])])[0]) > 0.9999


class ShortTextEncoder(CountingEncoder):
    """An encoder with a bug: one text vector fewer than the texts it was given."""

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return super().embed_texts(texts)[:-1]


def test_an_encoder_that_returns_too_few_vectors_fails_the_whole_batch(offline_encoder) -> None:
    encoder = ShortTextEncoder(offline_encoder)

    async def main() -> list[Any]:
        h = Harness(encoder, wait_ms=50, max_batch=8)
        try:
            queries = asyncio.gather(
                *(h.batcher.embed_text(t) for t in ("apple", "milk", "bread")), return_exceptions=True
            )
            return list(await asyncio.wait_for(queries, timeout=30))  # no request is left waiting
        finally:
            await h.close()

    results = asyncio.run(main())
    assert encoder.calls == [("text", 3)]  # one batch
    assert all(isinstance(r, VisearchError) and "2 results for a batch of 3" in str(r) for r in results), results


def test_cancelling_a_waiting_request_leaves_the_others_alone(offline_encoder, photos) -> None:
    encoder = CountingEncoder(offline_encoder)

    async def main() -> tuple[list[Any], list[tuple[str, list[int]]], int]:
        h = Harness(encoder, wait_ms=200, max_batch=16)
        try:
            tasks = [asyncio.create_task(h.batcher.embed_images([p])) for p in photos[:4]]
            await asyncio.sleep(0)  # all four are in the lane, the window is open
            tasks[1].cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            return results, h.batches, h.batcher.pending
        finally:
            await h.close()

    results, batches, pending = asyncio.run(main())
    assert isinstance(results[1], asyncio.CancelledError)
    assert all(isinstance(r, np.ndarray) for i, r in enumerate(results) if i != 1)
    assert batches == [("image", [1, 1, 1])]  # the cancelled one never reached the encoder
    assert pending == 0


def test_cancelling_a_request_on_the_encoder_leaves_the_others_alone(offline_encoder, photos) -> None:
    encoder = CountingEncoder(offline_encoder)
    encoder.gate = threading.Event()

    async def main() -> list[Any]:
        h = Harness(encoder, wait_ms=20, max_batch=16)
        try:
            tasks = [asyncio.create_task(h.batcher.embed_images([p])) for p in photos[:3]]
            await asyncio.to_thread(encoder.entered.wait, 30)  # the batch is on the encoder thread
            tasks[0].cancel()
            encoder.gate.set()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            # the batcher still works afterwards
            results.append(await h.batcher.embed_images([photos[5]]))
            return results
        finally:
            encoder.gate.set()
            await h.close()

    results = asyncio.run(main())
    assert isinstance(results[0], asyncio.CancelledError)
    assert all(isinstance(r, np.ndarray) for r in results[1:])


def test_max_pending_raises_encoder_busy(offline_encoder, photos) -> None:
    encoder = CountingEncoder(offline_encoder)
    encoder.gate = threading.Event()

    async def main() -> tuple[list[Any], Exception | None]:
        h = Harness(encoder, wait_ms=1, max_batch=2, max_pending=3)
        try:
            tasks = [asyncio.create_task(h.batcher.embed_images([p])) for p in photos[:3]]
            await asyncio.to_thread(encoder.entered.wait, 30)  # held on the encoder: 3 pending
            refused = None
            try:
                await h.batcher.embed_text("one too many")
            except EncoderBusyError as exc:
                refused = exc
            encoder.gate.set()
            return list(await asyncio.gather(*tasks)), refused
        finally:
            encoder.gate.set()
            await h.close()

    vectors, refused = asyncio.run(main())
    assert isinstance(refused, EncoderBusyError) and isinstance(refused, VisearchError)
    assert "VISEARCH_MAX_PENDING=3" in str(refused)
    assert len(vectors) == 3  # the accepted ones are still answered


def test_max_pending_applies_without_batching(offline_encoder, photos) -> None:
    encoder = CountingEncoder(offline_encoder)
    encoder.gate = threading.Event()

    async def main() -> bool:
        h = Harness(encoder, wait_ms=0, max_pending=1)
        try:
            first = asyncio.create_task(h.batcher.embed_images([photos[0]]))
            await asyncio.to_thread(encoder.entered.wait, 30)
            with pytest.raises(EncoderBusyError):
                await h.batcher.embed_images([photos[1]])
            encoder.gate.set()
            await first
            return h.batcher.pending == 0
        finally:
            encoder.gate.set()
            await h.close()

    assert asyncio.run(main())


def _wait_for_calls(encoder: CountingEncoder, count: int, timeout: float) -> int:
    """Calls that have entered the encoder once `count` did, or when `timeout` ran out."""
    deadline = time.monotonic() + timeout
    while len(encoder.calls) < count and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(0.1)  # room for a call that should not happen
    return len(encoder.calls)


def test_two_workers_run_two_batches_at_once(offline_encoder, photos) -> None:
    """ONNX Runtime uses one core per call: with two workers, two batches are on the encoder at once."""
    encoder = CountingEncoder(offline_encoder)
    encoder.gate = threading.Event()

    async def main() -> tuple[int, list[np.ndarray]]:
        h = Harness(encoder, wait_ms=1, max_batch=2, workers=2)
        try:
            tasks = [asyncio.create_task(h.batcher.embed_images([p])) for p in photos[:6]]
            held = await asyncio.to_thread(_wait_for_calls, encoder, 2, 10)
            encoder.gate.set()
            return held, list(await asyncio.gather(*tasks))
        finally:
            encoder.gate.set()
            await h.close()

    held, vectors = asyncio.run(main())
    assert held == 2  # both workers busy, and no third batch while they are
    assert len(vectors) == 6
    assert sum(n for _, n in encoder.calls) == 6 and max(n for _, n in encoder.calls) <= 2


def test_one_worker_runs_one_batch_at_a_time(offline_encoder, photos) -> None:
    encoder = CountingEncoder(offline_encoder)
    encoder.gate = threading.Event()

    async def main() -> int:
        h = Harness(encoder, wait_ms=1, max_batch=2, workers=1)
        try:
            tasks = [asyncio.create_task(h.batcher.embed_images([p])) for p in photos[:4]]
            held = await asyncio.to_thread(_wait_for_calls, encoder, 2, 0.5)
            encoder.gate.set()
            await asyncio.gather(*tasks)
            return held
        finally:
            encoder.gate.set()
            await h.close()

    assert asyncio.run(main()) == 1


def test_encoder_workers_follow_the_runtime() -> None:
    from visearch.core.config import encoder_workers, load_settings

    assert encoder_workers(load_settings(backend="torch")) == 1
    assert encoder_workers(load_settings(backend="torch", encoder_workers=3)) == 3
    cores = len(os.sched_getaffinity(0))
    assert encoder_workers(load_settings(backend="onnx-int8", onnx_threads=1)) == cores
    assert encoder_workers(load_settings(backend="onnx", onnx_threads=cores)) == 1


def test_search_service_batches_concurrent_searches(offline_encoder, photos, tmp_path) -> None:
    """Through SearchService: concurrent photo and text searches share encoder calls; same cards."""
    from visearch.core.config import load_settings
    from visearch.core.domain import Query
    from visearch.core.ingest import index_catalog
    from visearch.core.search import SearchService
    from visearch.core.store.factory import open_store

    catalog = SAMPLE_IMAGES.parent / "catalog.csv"

    async def main() -> tuple[list[list[str]], list[list[str]], list[tuple[str, int]]]:
        results = {}
        for wait in (0.0, 50.0):
            settings = load_settings(
                data_dir=tmp_path / f"data-{wait}", encoder="offline", collection="b", batch_wait_ms=wait, max_batch=48
            )
            store = open_store(settings)
            summary = await index_catalog(catalog, offline_encoder, store, settings)
            assert summary.ok
            encoder = CountingEncoder(offline_encoder)
            service = SearchService(encoder, store, settings)
            try:
                queries = [Query(images=[p], limit=3) for p in photos[:10]] + [Query(text="apple", limit=3)]
                found = await asyncio.gather(*(service.search(q) for q in queries))
                results[wait] = ([[c.product_id for c in r.cards] for r in found], encoder.calls)
            finally:
                await service.close()
        return results[0.0][0], results[50.0][0], results[50.0][1]

    unbatched, batched, calls = asyncio.run(main())
    assert batched == unbatched
    image_calls = [n for kind, n in calls if kind == "image"]
    views = len(crops(Image.new("RGB", (64, 64))))  # each photo query embeds the photo and its crops
    assert sum(image_calls) == 10 * views and len(image_calls) < 10
