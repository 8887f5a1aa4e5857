"""The search service every adapter calls: Query in, SearchResult (cards) out.

Encoding is CPU-heavy and runs on one dedicated worker thread, so the event loop keeps
serving other chats while a photo is embedded. Results are grouped by product in our code
(the embedded engine has no grouping), and a relevance cut-off turns unrelated queries
into an honest "no match" instead of junk.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from core.config import Settings
from core.domain import Card, CollectionInfo, Filters, Hit, Query, SearchResult
from core.encoders.base import Encoder, l2_normalise
from core.errors import CollectionNotFoundError, EncoderMismatchError, VisearchError
from core.images import decode_image
from core.store.base import VectorStore

#: how many raw hits to fetch per wanted product before grouping; doubled while too few groups
OVERSAMPLE = 4
MAX_RAW_HITS = 2000


class PointNotFoundError(VisearchError):
    """'More like this' was asked for a point that is not in the collection (deleted since)."""


def group_by_product(hits: Sequence[Hit]) -> list[Hit]:
    """Keep each product's best-scoring point, in score order (a product with 5 photos appears once)."""
    best: dict[str, Hit] = {}
    for hit in hits:
        product_id = str(hit.payload.get("product_id", hit.point_id))
        if product_id not in best or hit.score > best[product_id].score:
            best[product_id] = hit
    return sorted(best.values(), key=lambda h: h.score, reverse=True)


class SearchService:
    """Encoder + store + cut-off rules. Create with `SearchService.open(settings)` or directly."""

    def __init__(self, encoder: Encoder, store: VectorStore, settings: Settings) -> None:
        self.encoder = encoder
        self.store = store
        self.settings = settings
        self.started_at = time.monotonic()
        self._encoder_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="visearch-encoder")
        self._verified = False  # collection checked against the encoder once; not on every query

    @classmethod
    async def open(cls, settings: Settings) -> SearchService:
        """Load the configured encoder (off the event loop) and open the configured store."""
        from core.encoders.factory import load_encoder
        from core.store.factory import open_store

        encoder = await asyncio.to_thread(load_encoder, settings)
        store = open_store(settings)
        return cls(encoder, store, settings)

    async def close(self) -> None:
        """Release the store and the encoder thread."""
        await self.store.close()
        self._encoder_pool.shutdown(wait=False, cancel_futures=True)

    async def check_collection(self) -> CollectionInfo:
        """The collection's info, after checking it was built by this service's encoder."""
        info = await self.store.info()
        if info is None:
            raise CollectionNotFoundError(
                f"collection {self.settings.collection!r} does not exist yet: "
                "index a catalog first with `visearch index CATALOG`"
            )
        if info.encoder_id != self.encoder.model_id or info.dim != self.encoder.dim:
            raise EncoderMismatchError(info.name, info.encoder_id, info.dim, self.encoder.model_id, self.encoder.dim)
        self._verified = True
        return info

    def min_score(self, query: Query) -> float:
        """The relevance cut-off for this kind of query: configured value, else the encoder's default."""
        if query.kind == "text":
            configured = self.settings.min_score_text
            return configured if configured is not None else self.encoder.min_score_text
        configured = self.settings.min_score_image
        return configured if configured is not None else self.encoder.min_score_image

    async def _run_encoder(self, fn: Any, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._encoder_pool, fn, *args)

    def _embed_images_sync(self, images: Sequence[bytes]) -> np.ndarray:
        """Decode and embed the photos of one query; an album becomes the mean of its photos."""
        decoded = [decode_image(data, self.settings.max_image_pixels, target_size=448) for data in images]
        vectors = self.encoder.embed_images(decoded)
        return l2_normalise(vectors.mean(axis=0, keepdims=True))[0]

    async def embed_query(self, query: Query) -> tuple[list[float], Filters]:
        """The query vector and the filters to apply (more-like-this excludes its own product)."""
        filters = query.filters
        if query.images:
            vector = await self._run_encoder(self._embed_images_sync, query.images)
        elif query.text:
            vector = (await self._run_encoder(self.encoder.embed_texts, [query.text]))[0]
        else:
            assert query.similar_to is not None
            points = await self.store.retrieve([query.similar_to], with_vectors=True)
            if not points or points[0].vector is None:
                raise PointNotFoundError(f"point {query.similar_to!r} is not in the collection (the product was removed?)")
            vector = points[0].vector
            product_id = str(points[0].payload.get("product_id", ""))
            filters = filters.model_copy(update={"exclude_product_ids": [*filters.exclude_product_ids, product_id]})
        return [float(x) for x in vector], filters

    async def search_vector(self, vector: Sequence[float], filters: Filters, wanted: int) -> list[Hit]:
        """Best point per product, at least `wanted` products when the collection has them."""
        fetch = max(wanted * OVERSAMPLE, 20)
        while True:
            hits = await self.store.search(vector, None if filters.is_empty() else filters, fetch)
            groups = group_by_product(hits)
            if len(groups) >= wanted or len(hits) < fetch or fetch >= MAX_RAW_HITS:
                return groups
            fetch = min(fetch * 2, MAX_RAW_HITS)

    async def search(self, query: Query) -> SearchResult:
        """Run one query: embed, search, group by product, apply the cut-off, page."""
        if not self._verified:
            await self.check_collection()
        vector, filters = await self.embed_query(query)
        groups = await self.search_vector(vector, filters, query.offset + query.limit)
        threshold = self.min_score(query)
        relevant = [hit for hit in groups if hit.score >= threshold]
        page = relevant[query.offset : query.offset + query.limit]
        return SearchResult(
            cards=[Card.from_hit(hit) for hit in page],
            cut_off=len(groups) - len(relevant),
            min_score=threshold,
        )

    async def stats(self) -> dict[str, Any]:
        """Collection size, encoder and uptime (for /stats and `visearch stats`)."""
        info = await self.store.info()
        return {
            "collection": self.settings.collection,
            "backend": self.store.backend,
            "points": info.points if info else 0,
            "collection_encoder": info.encoder_id if info else None,
            "encoder": self.encoder.model_id,
            "dim": self.encoder.dim,
            "uptime_s": round(time.monotonic() - self.started_at, 1),
        }
