"""The search service every adapter calls: Query in, SearchResult (cards) out.

Encoding is CPU-heavy and runs on one dedicated worker thread, so the event loop keeps
serving other chats while a photo is embedded. Query photos are decoded before that, on a pool of
their own (VISEARCH_MAX_CONCURRENT_DECODES threads), so a costly photo never holds up the encoder
and only so many are decoded at once. Results are grouped by product in our code
(the embedded engine has no grouping), and a relevance cut-off turns unrelated queries
into an honest "no match" instead of junk. A text query is matched against the product photos
and, when the collection has them, against the product words (titles, tags, OCR text); the two
ranked lists are fused (core.fusion).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from array import array
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, TypeVar

import numpy as np
from PIL import Image

from visearch.core.batching import MicroBatcher
from visearch.core.config import Settings, decode_workers, encoder_workers
from visearch.core.domain import Card, CollectionInfo, Facets, Filters, Hit, Query, SearchResult, result_key
from visearch.core.encoders.base import Encoder, WordsEncoder, l2_normalise
from visearch.core.errors import CollectionNotFoundError, EncoderBusyError, VisearchError, encoder_mismatch
from visearch.core.fusion import Signal, fuse, has_all_terms, query_terms
from visearch.core.images import decode_image
from visearch.core.local_features import (
    EXTRACTOR_VERSION,
    MAX_QUERY_FEATURES,
    LocalFeatures,
    crops,
    extract,
    verification_bonuses,
)
from visearch.core.store.base import VectorName, VectorStore

#: how many raw hits to fetch per wanted product before grouping; doubled while too few groups
OVERSAMPLE = 4
MAX_RAW_HITS = 2000
#: shorter side, in pixels, a query photo is decoded at (at least): what the encoders look at
QUERY_PHOTO_SIZE = 448

T = TypeVar("T")


class PointNotFoundError(VisearchError):
    """'More like this' was asked for a point that is not in the collection (deleted since)."""


class CursorExpiredError(VisearchError):
    """A 'show more' cursor is unknown: it expired, was evicted, or the service restarted."""


@dataclass(frozen=True, slots=True)
class SearchPlan:
    """What a query searches with, once embedded: vectors, filters, cut-offs. A cursor keeps it,
    so the next page needs no photo bytes and no second encoding."""

    vector: Sequence[float]
    filters: Filters
    min_score: float
    words_vector: Sequence[float] | None = None  # text queries on a collection with product words
    min_score_words: float = 0.0
    terms: frozenset[str] = frozenset()  # the query's words, for literal matches on the words side
    boost_colours: frozenset[str] = frozenset()
    #: photo queries: score added per product key by geometric verification (core.local_features);
    #: computed once, so later pages keep the order without the query's keypoints
    bonuses: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    #: photo queries with VISEARCH_QUERY_CROPS: one vector per framing (rows), searched apart
    views: np.ndarray | None = None


@dataclass(frozen=True, slots=True)
class _PageState:
    """A remembered search: its plan and where the next page starts."""

    plan: SearchPlan
    offset: int
    limit: int
    expires_at: float


def compact_plan(plan: SearchPlan) -> SearchPlan:
    """The plan with its vectors as float32 arrays: a cursor held for an hour costs 4 bytes per
    dimension instead of a Python float object's 32 (4,096 cursors: ~14 MB, not ~115 MB)."""
    words = array("f", plan.words_vector) if plan.words_vector is not None else None
    # a framing's vector needs no float32 precision to rank the next page: half the bytes
    views = plan.views.astype(np.float16, copy=False) if plan.views is not None else None
    return replace(plan, vector=array("f", plan.vector), words_vector=words, views=views)


def verified_order(hits: Sequence[Hit], bonuses: Mapping[str, float]) -> list[Hit]:
    """Hits re-ranked by similarity plus verification bonus (`rank_score`); unverified ones keep their score."""
    ranked = [
        hit.model_copy(update={"rank_score": hit.score + bonuses[key]})
        if (key := result_key(hit.payload, hit.point_id)) in bonuses
        else hit
        for hit in hits
    ]
    return sorted(ranked, key=lambda hit: hit.score if hit.rank_score is None else hit.rank_score, reverse=True)


def mean_over_views(per_view: Sequence[Sequence[Hit]]) -> list[Hit]:
    """Products scored by the mean, over the photo's framings, of each framing's best match with the product.

    Measured against searching with the framings' mean vector on the GroceryStore val photos: the same
    with one photo per product, +4 points Recall@1 when products have several photos (a framing that
    shows mostly the product finds its closest photo). A product missing from a framing's list is
    counted at that list's lowest score. A product's best-matching photo (over all framings) stands for it."""
    floors = [hits[-1].score if hits else 0.0 for hits in per_view]
    scores: dict[str, list[float | None]] = {}
    best: dict[str, Hit] = {}
    for index, hits in enumerate(per_view):
        for hit in hits:
            key = result_key(hit.payload, hit.point_id)
            scores.setdefault(key, [None] * len(per_view))[index] = hit.score
            if key not in best or hit.score > best[key].score:
                best[key] = hit
    ranked = [
        best[key].model_copy(
            update={
                "score": sum(floor if s is None else s for s, floor in zip(found, floors, strict=True)) / len(floors)
            }
        )
        for key, found in scores.items()
    ]
    return sorted(ranked, key=lambda hit: hit.score, reverse=True)


def group_by_product(hits: Sequence[Hit]) -> list[Hit]:
    """Keep each product's best-scoring point, in score order (a product with 5 photos appears once, and
    so does a product group: its best-matching variant stands for it)."""
    best: dict[str, Hit] = {}
    for hit in hits:
        key = result_key(hit.payload, hit.point_id)
        if key not in best or hit.score > best[key].score:
            best[key] = hit
    return sorted(best.values(), key=lambda h: h.score, reverse=True)


#: encoder kinds a collection's encoder id names (`offline:...`, `clip:...`)
ENCODER_KINDS = frozenset({"offline", "clip"})


async def settings_for_collection(store: VectorStore, settings: Settings) -> Settings:
    """`settings` with the encoder kind of the existing collection when none was asked for
    (`encoder` set on the command line, in the environment or .env, or a model folder, wins)."""
    if "encoder" in settings.model_fields_set or settings.model_dir is not None:
        return settings
    try:
        info = await store.info()
    except VisearchError:  # a broken collection: the configured encoder rebuilds it
        return settings
    kind = info.encoder_id.split(":", 1)[0] if info is not None else ""
    if kind in ENCODER_KINDS and kind != settings.encoder:
        return settings.model_copy(update={"encoder": kind})
    return settings


class SearchService:
    """Encoder + store + cut-off rules. Create with `SearchService.open(settings)` or directly."""

    def __init__(self, encoder: Encoder, store: VectorStore, settings: Settings) -> None:
        self.encoder = encoder
        self.store = store
        self.settings = settings
        self.started_at = time.monotonic()
        workers = encoder_workers(settings)
        self._encoder_pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="visearch-encoder")
        # query photos are decoded here, a few at once, never on the encoder's threads
        self._decode_pool = ThreadPoolExecutor(
            max_workers=decode_workers(settings), thread_name_prefix="visearch-decode"
        )
        self._decoding = 0  # photos waiting for or in a decode (bounded by max_pending)
        # concurrent queries share encoder calls (core.batching); batch_wait_ms=0 keeps one call per query
        self.batcher = MicroBatcher(
            encoder,
            self._run_encoder,
            self._decode_query_photo,
            wait_ms=settings.batch_wait_ms,
            max_batch=settings.max_batch,
            max_pending=settings.max_pending,
            workers=workers,
        )
        self._verified = False  # collection checked against the encoder once; not on every query
        self._has_words = False  # the collection holds text vectors of the encoder's words space
        self._cursors: OrderedDict[str, _PageState] = OrderedDict()  # bounded, oldest first
        self._facets: tuple[float, Facets] | None = None

    @classmethod
    async def open(cls, settings: Settings, store: VectorStore | None = None) -> SearchService:
        """Open the configured store (or use `store`), then load the encoder off the event loop.

        The encoder is the kind that built the collection unless the settings name one: after an
        offline `make demo`, `visearch serve`, the bots and every command work without
        `--encoder offline` and without loading CLIP first to find out it is the wrong one."""
        from visearch.core.encoders.factory import load_encoder
        from visearch.core.store.factory import open_store

        given = store
        store = store or open_store(settings)
        try:
            settings = await settings_for_collection(store, settings)
            encoder = await asyncio.to_thread(load_encoder, settings)
        except BaseException:
            if given is None:
                await store.close()
            raise
        return cls(encoder, store, settings)

    async def close(self) -> None:
        """Release the store, the batcher and the encoder thread."""
        await self.batcher.close()
        await self.store.close()
        self._encoder_pool.shutdown(wait=False, cancel_futures=True)
        self._decode_pool.shutdown(wait=False, cancel_futures=True)

    async def check_collection(self) -> CollectionInfo:
        """The collection's info, after checking it was built by this service's encoder."""
        info = await self.store.info()
        if info is None:
            raise CollectionNotFoundError(
                f"collection {self.settings.collection!r} does not exist yet: "
                "index a catalog first with `visearch index CATALOG`"
            )
        if info.encoder_id != self.encoder.model_id or info.dim != self.encoder.dim:
            raise encoder_mismatch(info.name, info.encoder_id, info.dim, self.encoder.model_id, self.encoder.dim)
        self._has_words = isinstance(self.encoder, WordsEncoder) and info.text_dim == self.encoder.words_dim
        self._verified = True
        return info

    @property
    def uses_words(self) -> bool:
        """True when text queries also match the catalog's words (checked collection, weight above 0)."""
        return self._has_words and self.settings.weight_words > 0

    def min_score(self, query: Query) -> float:
        """The relevance cut-off for this kind of query: configured value, else the encoder's default."""
        if query.kind == "text":
            configured = self.settings.min_score_text
            return configured if configured is not None else self.encoder.min_score_text
        configured = self.settings.min_score_image
        return configured if configured is not None else self.encoder.min_score_image

    def min_score_words(self) -> float:
        """The words signal's cut-off: configured value, else the encoder's default."""
        configured = self.settings.min_score_words
        if configured is not None:
            return configured
        return float(getattr(self.encoder, "min_score_words", 1.0))

    async def warm_up(self) -> None:
        """Load every part of the encoder a query may need, now: encoders load their parts on first
        use (a CLI text search never opens the image tower), so a server warms them before it says
        it is ready and its first customer does not pay for the loading."""
        await self._run_encoder(self.encoder.embed_texts, ["warm-up"])
        await self._run_encoder(self.encoder.embed_images, [Image.new("RGB", (64, 64), (128, 128, 128))])

    async def _run_encoder(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` on the encoder pool (the batcher's batches go through here too)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._encoder_pool, fn, *args)

    def _decode_query_photo(self, data: bytes) -> Image.Image:
        """A query photo, decoded no bigger than the encoder needs (JPEG draft scaling)."""
        return decode_image(data, self.settings.max_image_pixels, target_size=QUERY_PHOTO_SIZE)

    @property
    def decoding(self) -> int:
        """Queries whose photos are being decoded or wait for the decode pool."""
        return self._decoding

    async def decode_photos(self, photos: Sequence[bytes]) -> list[Image.Image]:
        """Decode a query's photos one after another on the decode pool (an album takes one slot).

        At most `max_pending` queries wait for or use the pool; one more raises `EncoderBusyError`
        (the "busy" reply), like a full encoder queue. A bad photo raises `ImageError`.
        """
        if self._decoding >= self.settings.max_pending:
            raise EncoderBusyError(
                f"{self._decoding} queries are waiting for their photos to be decoded "
                f"(VISEARCH_MAX_PENDING={self.settings.max_pending}): try again shortly"
            )
        self._decoding += 1
        try:
            loop = asyncio.get_running_loop()
            return [await loop.run_in_executor(self._decode_pool, self._decode_query_photo, data) for data in photos]
        finally:
            self._decoding -= 1

    async def embed_query(
        self, query: Query, photos: Sequence[Image.Image] | None = None
    ) -> tuple[list[float], Filters]:
        """The query vector and the filters to apply (more-like-this excludes its own product).

        `photos`: the query's photos already decoded (`decode_photos`); decoded here when None.
        """
        filters = query.filters
        vector: np.ndarray | list[float]
        if query.images:
            decoded = photos if photos is not None else await self.decode_photos(query.images)
            vector, _ = await self.embed_photos(decoded)
        elif query.text:
            vector = await self.batcher.embed_text(query.text)
        else:
            assert query.similar_to is not None
            points = await self.store.retrieve([query.similar_to], with_vectors=True)
            if not points or points[0].vector is None:
                raise PointNotFoundError(
                    f"point {query.similar_to!r} is not in the collection (the product was removed?)"
                )
            vector = points[0].vector
            product_id = str(points[0].payload.get("product_id", ""))
            filters = filters.model_copy(update={"exclude_product_ids": [*filters.exclude_product_ids, product_id]})
        return [float(x) for x in vector], filters

    async def embed_photos(self, photos: Sequence[Image.Image]) -> tuple[list[float], np.ndarray | None]:
        """A photo query's vector (the normalised mean of its photos) and, with VISEARCH_QUERY_CROPS,
        the vectors of each photo's framings (the photo, its centre, its four corners: core.local_features.crops)."""
        if not self.settings.query_crops:
            return [float(x) for x in await self.batcher.embed_images(photos)], None
        views = await self.batcher.embed_views([view for photo in photos for view in crops(photo)])
        mean = l2_normalise(views.mean(axis=0, keepdims=True))[0]
        return [float(x) for x in mean], views

    async def image_groups(self, plan: SearchPlan, wanted: int) -> list[Hit]:
        """Best point per product on the image side: by the framings apart when the plan has them."""
        if plan.views is None:
            return await self.search_vector(plan.vector, plan.filters, wanted)
        per_view = await asyncio.gather(
            *(self.search_vector(row.astype(np.float32).tolist(), plan.filters, wanted) for row in plan.views)
        )
        return mean_over_views(per_view)

    async def plan(self, query: Query) -> SearchPlan:
        """Embed the query once: image vector, words vector (text queries), filters, cut-offs, colours."""
        if not self._verified:
            await self.check_collection()
        photos = await self.decode_photos(query.images) if query.images else None
        keypoints = None
        if photos and self.settings.verify:  # the query's keypoints are found while the encoder works
            loop = asyncio.get_running_loop()
            keypoints = loop.run_in_executor(self._decode_pool, extract, photos[0], MAX_QUERY_FEATURES)
        views = None
        try:
            if photos:
                (vector, views), filters = await self.embed_photos(photos), query.filters
            else:
                vector, filters = await self.embed_query(query)
        except BaseException:
            if keypoints is not None:
                keypoints.cancel()
            raise
        words_vector = None
        if query.kind == "text" and query.text and self.uses_words:
            assert isinstance(self.encoder, WordsEncoder)
            words_vector = [float(x) for x in await self.batcher.embed_words(query.text)]
        boost_colours: frozenset[str] = frozenset()
        if photos and self.settings.colour_boost > 0:
            boost_colours = await self._run_encoder(self._query_colours, photos[0])
        terms = query_terms(query.text) if words_vector is not None and query.text else frozenset()
        plan = SearchPlan(
            vector,
            filters,
            self.min_score(query),
            words_vector,
            self.min_score_words(),
            terms,
            boost_colours,
            views=views,
        )
        if keypoints is not None:
            plan = replace(plan, bonuses=MappingProxyType(await self.verify(plan, await keypoints)))
        return plan

    async def verify(self, plan: SearchPlan, keypoints: LocalFeatures) -> dict[str, float]:
        """Product key -> bonus for the best `verify_top_k` products whose photo holds the query's keypoints
        in a plausible geometry. Candidates without stored features (indexed before, or with
        VISEARCH_LOCAL_FEATURES off) are simply not verified."""
        top = (await self.image_groups(plan, self.settings.verify_top_k))[: self.settings.verify_top_k]
        hashes = [str(hit.payload.get("image_sha256") or "") for hit in top]
        blobs = await self.store.get_features(EXTRACTOR_VERSION, [h for h in hashes if h])
        candidates = [
            (result_key(hit.payload, hit.point_id), blobs[sha])
            for hit, sha in zip(top, hashes, strict=True)
            if sha in blobs
        ]
        if not candidates:
            return {}
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._decode_pool,
            verification_bonuses,
            keypoints,
            candidates,
            self.settings.verify_min_inliers,
            self.settings.verify_full_inliers,
            self.settings.verify_weight,
        )

    async def rank(self, plan: SearchPlan, wanted: int) -> tuple[list[Hit], int]:
        """Relevant products best first (at least `wanted` when there are), and how many were cut off.

        Each signal keeps only what passes its own cut-off; the words signal is fused in (core.fusion).
        """
        # a verified product may sit anywhere in the top `verify_top_k`: fetch that far to lift it
        image_wanted = max(wanted, self.settings.verify_top_k) if plan.bonuses else wanted
        groups = await self.image_groups(plan, image_wanted)
        if plan.bonuses:
            groups = verified_order(groups, plan.bonuses)
        # relevance: the plain similarity, or a verified match (the product is in the photo)
        relevant = [
            hit
            for hit in groups
            if hit.score >= plan.min_score or result_key(hit.payload, hit.point_id) in plan.bonuses
        ]
        seen = {result_key(h.payload, h.point_id) for h in groups}
        if plan.words_vector is not None:
            word_groups = await self.search_vector(plan.words_vector, plan.filters, wanted, using="text")
            literal = frozenset(
                result_key(hit.payload, hit.point_id) for hit in word_groups if has_all_terms(plan.terms, hit.payload)
            )
            word_hits = [
                hit
                for hit in word_groups
                if hit.score >= plan.min_score_words or result_key(hit.payload, hit.point_id) in literal
            ]
            seen |= {result_key(h.payload, h.point_id) for h in word_groups}
            signals = [
                Signal("image", relevant, self.settings.weight_image, plan.min_score),
                Signal("words", word_hits, self.settings.weight_words, plan.min_score_words, literal),
            ]
            relevant = fuse([s for s in signals if s.weight > 0], self.settings.fusion, self.settings.fusion_k)
        if plan.boost_colours:
            relevant = self._boost_by_colour(relevant, plan.boost_colours)
        return relevant, len(seen) - len(relevant)

    async def search_vector(
        self, vector: Sequence[float], filters: Filters, wanted: int, using: VectorName = "image"
    ) -> list[Hit]:
        """Best point per product by one vector, at least `wanted` products when the collection has them."""
        fetch = max(wanted * OVERSAMPLE, 20)
        while True:
            hits = await self.store.search(vector, None if filters.is_empty() else filters, fetch, using=using)
            groups = group_by_product(hits)
            if len(groups) >= wanted or len(hits) < fetch or fetch >= MAX_RAW_HITS:
                return groups
            fetch = min(fetch * 2, MAX_RAW_HITS)

    async def search(self, query: Query) -> SearchResult:
        """Run one query: embed, search, group by product, apply the cut-off, page.

        A result with more relevant products than shown carries `next_cursor`; `Query(cursor=...)`
        returns the next page without embedding the photo again.
        """
        if not self._verified:
            await self.check_collection()
        if query.cursor:
            state = self._take_cursor(query.cursor)
            plan, offset = state.plan, state.offset
        else:
            plan, offset = await self.plan(query), query.offset
        relevant, cut_off = await self.rank(plan, offset + query.limit + 1)
        end = offset + query.limit
        next_cursor = None
        if len(relevant) > end:
            next_cursor = self._remember_cursor(plan, end, query.limit)
        image_root = str(self.settings.image_root) if self.settings.image_root else None
        uploads_root = str(self.settings.uploads_dir.resolve())
        return SearchResult(
            cards=[Card.from_hit(hit, image_root, uploads_root) for hit in relevant[offset:end]],
            cut_off=cut_off,
            min_score=plan.min_score,
            next_cursor=next_cursor,
            min_score_words=plan.min_score_words if plan.words_vector is not None else None,
        )

    def _query_colours(self, image: Image.Image) -> frozenset[str]:
        """Dominant colours of the (decoded) query photo, for the optional colour boost."""
        from visearch.core.colour import dominant_colours

        return frozenset(dominant_colours(image))

    def _boost_by_colour(self, hits: list[Hit], colours: frozenset[str]) -> list[Hit]:
        """Reorder: products sharing a dominant colour with the query photo move up by `colour_boost`."""
        boost = self.settings.colour_boost

        def boosted(hit: Hit) -> Hit:
            base = hit.score if hit.rank_score is None else hit.rank_score
            shares = bool(colours & set(hit.payload.get("colours") or []))
            return hit.model_copy(update={"rank_score": base + (boost if shares else 0.0)})

        return sorted(map(boosted, hits), key=lambda hit: hit.rank_score or 0.0, reverse=True)

    def _remember_cursor(self, plan: SearchPlan, offset: int, limit: int) -> str:
        """Keep the state of a next page under a short random token (fits Telegram's 64-byte callback data)."""
        now = time.monotonic()
        while self._cursors and (
            len(self._cursors) >= self.settings.max_cursors or next(iter(self._cursors.values())).expires_at <= now
        ):
            self._cursors.popitem(last=False)
        token = secrets.token_urlsafe(9)  # 12 characters
        self._cursors[token] = _PageState(compact_plan(plan), offset, limit, now + self.settings.cursor_ttl)
        return token

    def _take_cursor(self, token: str) -> _PageState:
        """The state behind a cursor; a cursor can be used more than once (a button tapped twice)."""
        state = self._cursors.get(token)
        if state is None or state.expires_at <= time.monotonic():
            self._cursors.pop(token, None)
            raise CursorExpiredError("these results have expired: send the photo or the words again")
        return state

    async def facets(self) -> Facets:
        """Categories, brands, tags, price range and stock of the collection, counted per product.

        Scans the payloads (no vectors), so the answer is cached for `facets_ttl` seconds.
        """
        now = time.monotonic()
        if self._facets and self._facets[0] > now:
            return self._facets[1]
        seen: set[str] = set()
        categories: Counter[str] = Counter()
        brands: Counter[str] = Counter()
        tags: Counter[str] = Counter()
        product_colours: dict[str, set[str]] = {}
        currencies: Counter[str] = Counter()
        prices: list[float] = []
        in_stock = 0
        async for point in self.store.scroll():
            p = point.payload
            product_id = str(p.get("product_id", point.point_id))
            product_colours.setdefault(product_id, set()).update(str(c) for c in p.get("colours") or [])
            if product_id in seen:
                continue
            seen.add(product_id)
            if p.get("category"):
                categories[str(p["category"])] += 1
            if p.get("brand"):
                brands[str(p["brand"])] += 1
            tags.update(str(t) for t in p.get("tags") or [])
            if isinstance(p.get("price"), int | float):
                prices.append(float(p["price"]))
            if p.get("currency"):
                currencies[str(p["currency"])] += 1
            in_stock += bool(p.get("in_stock", True))
        facets = Facets(
            products=len(seen),
            categories=dict(categories.most_common()),
            brands=dict(brands.most_common()),
            tags=dict(tags.most_common()),
            colours=dict(Counter(c for names in product_colours.values() for c in names).most_common()),
            price_min=min(prices) if prices else None,
            price_max=max(prices) if prices else None,
            currencies=[c for c, _ in currencies.most_common()],
            in_stock=in_stock,
        )
        self._facets = (now + self.settings.facets_ttl, facets)
        return facets

    def catalog_changed(self) -> None:
        """Forget what is cached about the catalog (facets): a write through the API just changed it."""
        self._facets = None

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
