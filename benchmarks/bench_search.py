"""Search latency of the vector stores, measured through visearch's async `VectorStore` interface.

Compares, in one run and on the same points and queries:

* **edge**  - the embedded engine (`qdrant-edge-py`) as the service opens it: `open_store(settings)`
  with `data_dir` in a temp folder (no `VISEARCH_QDRANT_URL`) -> `EdgeStore`;
* **local** - qdrant-client's *local mode on disk* (`AsyncQdrantClient(path=tmpdir)`), i.e. what a
  user without a Qdrant server would otherwise reach for with qdrant-client. Our `ServerStore`
  itself only offers the in-memory local mode (`location=":memory:"`, the test double), which
  searches with the same pure-Python/numpy code but cannot be reopened; so the benchmark drives
  the on-disk mode through a `ServerStore` whose client is `AsyncQdrantClient(path=...)` - the
  query, filter and payload code is exactly ServerStore's.

Data: N synthetic *clustered* unit vectors (dim 512; 1,000 centres + noise, generated in chunks) with realistic payloads built by `Product(...).payload(...)`
(50 categories, 20 brands, prices, in_stock ~85 % true, tags, 1-3 images per product).
Queries: clustered unit vectors like the points, limit 20, three filter kinds:

* none      - no filter (edge: plain exact scan, or HNSW after `optimize()` with --optimize)
* selective - category (1 of 50) + in_stock + price range (~0.5 % of points)
* broad     - in_stock only (~85 % of points)

Filtered searches are exact in both stores. Ratio = local p50 / edge p50 in the same run.
Reopen = close + open + first (unfiltered) query.

Vector index (issue 6, --optimize, on by default): after the exact rows, the edge store runs
`build_index()` (what `visearch optimize` runs) with visearch's HNSW defaults + int8 scalar
quantization, then times unfiltered search with HNSW on float vectors (quantization ignored),
HNSW + int8 with rescoring (oversampling 2), and the filtered searches again (still exact).
Recall@10 is against the exact scan of the same store; RSS is the process's resident memory
(VmRSS) after each phase, next to the dataset's own share.

    python benchmarks/bench_search.py            # 100k points (edge + local)
    python benchmarks/bench_search.py --full     # 100k and 1M (local mode only up to --local-max-points)
    python benchmarks/bench_search.py --quick    # 2k points, few queries (seconds)
    python benchmarks/bench_search.py --json     # JSON on stdout (tables go to stderr)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import _common  # noqa: F401  (puts the repo root on sys.path)
import numpy as np
from _common import dump_json, latency_stats_ms, machine_info, print_machine, table

from visearch.core.config import Settings
from visearch.core.domain import Filters, PointRecord, Product, point_id_for
from visearch.core.store.base import IndexSettings, VectorStore
from visearch.core.store.factory import open_store

DIM = 512
LIMIT = 20
COLLECTION = "bench"
ENCODER_ID = "bench-random-512"

CATEGORIES = (
    "Dairy",
    "Milk",
    "Yoghurt",
    "Cheese",
    "Butter",
    "Eggs",
    "Bread",
    "Pastry",
    "Cereal",
    "Rice",
    "Pasta",
    "Flour",
    "Sugar",
    "Spices",
    "Sauces",
    "Oil",
    "Vinegar",
    "Canned Fish",
    "Canned Vegetables",
    "Soup",
    "Fruit",
    "Berries",
    "Citrus",
    "Vegetables",
    "Root Vegetables",
    "Salad",
    "Herbs",
    "Mushrooms",
    "Meat",
    "Poultry",
    "Fish",
    "Seafood",
    "Frozen Meals",
    "Ice Cream",
    "Snacks",
    "Crisps",
    "Nuts",
    "Chocolate",
    "Candy",
    "Biscuits",
    "Coffee",
    "Tea",
    "Juice",
    "Soft Drinks",
    "Water",
    "Beer",
    "Wine",
    "Baby Food",
    "Pet Food",
    "Household",
)
BRANDS = (
    "Arla",
    "Garant",
    "Oatly",
    "Alpro",
    "Tropicana",
    "Bravo",
    "God Morgon",
    "Valio",
    "Yoggi",
    "Felix",
    "Barilla",
    "Heinz",
    "Nestle",
    "Danone",
    "Kelloggs",
    "Lindt",
    "Fazer",
    "Zoegas",
    "Lipton",
    "ICA",
)
TAGS = (
    "organic",
    "vegan",
    "gluten-free",
    "lactose-free",
    "local",
    "fair-trade",
    "low-fat",
    "sugar-free",
    "new",
    "sale",
    "family-pack",
    "bio",
    "kosher",
    "halal",
    "frozen",
    "fresh",
    "imported",
    "seasonal",
    "premium",
    "budget",
    "eco",
    "high-protein",
    "whole-grain",
    "no-additives",
    "spicy",
    "mild",
    "large",
    "small",
    "bottle",
    "can",
)
ADJECTIVES = ("Classic", "Fresh", "Organic", "Creamy", "Crispy", "Smooth", "Light", "Rich", "Wild", "Golden")


# --- data -----------------------------------------------------------------------------------


def make_dataset(n_points: int, seed: int) -> tuple[list[str], list[dict[str, Any]], np.ndarray]:
    """Point ids, payloads and unit vectors for `n_points` points (products of 1-3 images)."""
    rng = np.random.default_rng(seed)
    ids: list[str] = []
    payloads: list[dict[str, Any]] = []
    sku = 0
    while len(ids) < n_points:
        sku += 1
        category = CATEGORIES[int(rng.integers(len(CATEGORIES)))]
        brand = BRANDS[int(rng.integers(len(BRANDS)))]
        n_images = min(int(rng.integers(1, 4)), n_points - len(ids))
        product_id = f"sku-{sku:07d}"
        images = [f"https://cdn.shop.example/img/{product_id}-{j}.jpg" for j in range(n_images)]
        tags = sorted({TAGS[int(t)] for t in rng.integers(len(TAGS), size=int(rng.integers(0, 5)))})
        title = f"{brand} {ADJECTIVES[int(rng.integers(len(ADJECTIVES)))]} {category} {int(rng.integers(100, 2000))} g"
        product = Product(
            id=product_id,
            title=title,
            description=f"{title}. Store cool and dry. Best before: see package.",
            price=round(float(rng.lognormal(mean=3.0, sigma=0.8)), 2),  # median ~20, mostly 2..150
            currency="SEK",
            category=category,
            brand=brand,
            tags=tags,
            url=f"https://shop.example/p/{product_id}",
            in_stock=bool(rng.random() < 0.85),
            images=images,
            extra={"origin": "Sweden" if rng.random() < 0.5 else "EU", "group": category.lower()},
        )
        product_hash = hashlib.sha256(product.model_dump_json().encode()).hexdigest()
        for j, ref in enumerate(images):
            payload = product.payload(ref, hashlib.sha256(ref.encode()).hexdigest(), j)
            payload["product_hash"] = product_hash
            ids.append(point_id_for(product_id, ref))
            payloads.append(payload)
    return ids, payloads, clustered_vectors(n_points, seed)


CENTRES = 1000
CHUNK = 50_000


def clustered_vectors(n: int, seed: int) -> np.ndarray:
    """Unit vectors around `CENTRES` centres (like embeddings of many product kinds), built chunk by chunk
    so 1M x 512-d never needs more than the 2 GB result plus one chunk."""
    centres = np.random.default_rng(12345).standard_normal((CENTRES, DIM), dtype=np.float32)
    rng = np.random.default_rng(seed)
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, CHUNK):
        stop = min(start + CHUNK, n)
        chunk = centres[rng.integers(0, CENTRES, stop - start)]
        chunk += 0.8 * rng.standard_normal(chunk.shape, dtype=np.float32)
        chunk /= np.linalg.norm(chunk, axis=1, keepdims=True)
        out[start:stop] = chunk
    return out


def make_queries(n: int, seed: int) -> np.ndarray:
    return clustered_vectors(n, seed)


def rss_mb(field: str = "VmRSS") -> float:
    """Resident memory of this process now (VmRSS), or its peak (VmHWM), in MB."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return float("nan")


#: what the benchmark builds with `build_index()`: visearch's defaults with int8 (the HNSW-only row
#: ignores the int8 copy at search time)
BENCH_INDEX = IndexSettings(quantization="int8")


def filters_for(kind: str, i: int) -> Filters | None:
    """The i-th query's filter of a kind (the selective one rotates over categories)."""
    if kind == "none":
        return None
    if kind == "selective":
        return Filters(categories=[CATEGORIES[(i * 7) % len(CATEGORIES)]], in_stock=True, price_min=10, price_max=40)
    if kind == "broad":
        return Filters(in_stock=True)
    raise ValueError(kind)


# --- stores ---------------------------------------------------------------------------------


def open_edge(data_dir: Path) -> VectorStore:
    """What the service does with no VISEARCH_QDRANT_URL: the embedded engine in data_dir."""
    return open_store(Settings(data_dir=data_dir, collection=COLLECTION, qdrant_url=None, _env_file=None))


def open_local(path: Path) -> VectorStore:
    """ServerStore's code on qdrant-client's on-disk local mode (ServerStore only takes ':memory:')."""
    from qdrant_client import AsyncQdrantClient

    from visearch.core.store.server import ServerStore

    store = ServerStore(COLLECTION, location=":memory:")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "local mode is not recommended for > 20k points"
        store._client = AsyncQdrantClient(path=str(path))  # the only change: on disk instead of in memory
    store.url = f"path={path}"
    return store


OPENERS = {"edge": open_edge, "local": open_local}


async def build(
    kind: str, where: Path, ids: Sequence[str], payloads: Sequence[dict], vectors: np.ndarray, batch: int
) -> tuple[VectorStore, float]:
    """Create the collection and upsert every point in batches; returns the store and the seconds taken."""
    store = OPENERS[kind](where)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        await store.ensure_collection(ENCODER_ID, DIM, recreate=True)
        for start in range(0, len(ids), batch):
            records = [
                PointRecord(id=ids[i], vector=vectors[i].tolist(), payload=payloads[i])
                for i in range(start, min(start + batch, len(ids)))
            ]
            await store.upsert(records)
        await store.finish_rebuild(commit=True)  # the embedded store builds beside and swaps in
    return store, time.perf_counter() - t0


async def time_queries(store: VectorStore, queries: np.ndarray, kind: str, n: int, warmup: int) -> list[float]:
    """Per-query latency (s) of `n` searches through the async interface, after `warmup` untimed ones."""
    lists = [q.tolist() for q in queries]
    for i in range(warmup):
        await store.search(lists[-1 - i], filters_for(kind, 1000 + i), LIMIT)
    out = []
    for i in range(n):
        vec, flt = lists[i], filters_for(kind, i)
        t0 = time.perf_counter()
        await store.search(vec, flt, LIMIT)
        out.append(time.perf_counter() - t0)
    return out


async def adaptive_count(
    store: VectorStore, queries: np.ndarray, kind: str, wanted: int, budget_s: float, floor: int
) -> int:
    """How many queries fit the time budget (the fastest of 3 probe queries decides); in [floor, wanted]."""
    probes = []
    for i in range(3):
        t0 = time.perf_counter()
        await store.search(queries[-2 - i].tolist(), filters_for(kind, 990 + i), LIMIT)
        probes.append(time.perf_counter() - t0)
        if sum(probes) > budget_s / 4:
            break
    return max(floor, min(wanted, int(budget_s / max(min(probes), 1e-6))))


async def top_ids(store: VectorStore, queries: np.ndarray, kind: str, k: int) -> list[list[str]]:
    return [
        [h.point_id for h in await store.search(queries[i].tolist(), filters_for(kind, i), LIMIT)] for i in range(k)
    ]


async def reopen(kind: str, where: Path, store: VectorStore, query: np.ndarray) -> tuple[VectorStore, dict[str, float]]:
    """close + open + first unfiltered query; returns the reopened store and the timings."""
    t0 = time.perf_counter()
    await store.close()
    t1 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        store = OPENERS[kind](where)
        t2 = time.perf_counter()
        await store.search(query.tolist(), None, LIMIT)
    t3 = time.perf_counter()
    return store, {"close_s": t1 - t0, "open_s": t2 - t1, "first_query_s": t3 - t2, "total_s": t3 - t0}


def log(msg: str) -> None:
    print(f"[bench_search {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- one size ---------------------------------------------------------------------------------


async def run_size(n_points: int, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    ids, payloads, vectors = make_dataset(n_points, seed=args.seed)
    gen_s = time.perf_counter() - t0
    queries = make_queries(max(args.queries, 64) + 16, seed=args.seed + 1)
    log(f"{n_points:,} points generated in {gen_s:.1f}s; RSS {rss_mb():,.0f} MB")

    result: dict[str, Any] = {"points": n_points, "generate_s": gen_s, "stores": {}}
    kinds = ["none", "selective", "broad"]
    tops: dict[str, dict[str, list[list[str]]]] = {}
    for backend in args.backends:
        if backend == "local" and n_points > args.local_max_points:
            log(f"local: skipped at {n_points:,} points (over --local-max-points {args.local_max_points:,})")
            continue
        rss_before = rss_mb()
        where = tmp / f"{backend}-{n_points}"
        shutil.rmtree(where, ignore_errors=True)
        log(f"{backend}: upserting {n_points:,} points (batch {args.batch}) ...")
        store, build_s = await build(backend, where, ids, payloads, vectors, args.batch)
        log(f"{backend}: built in {build_s:.1f}s ({n_points / build_s:,.0f} points/s)")
        res: dict[str, Any] = {
            "build_s": build_s,
            "points_per_s": n_points / build_s,
            "rows": {},
            "rss_mb": {"dataset": rss_before, "built": rss_mb()},
        }
        if backend == "edge":
            res["match_fraction"] = {}
            for kind in kinds:
                if kind == "none":
                    continue
                counts = [await store.count(filters_for(kind, i)) for i in range(min(10, len(CATEGORIES)))]
                res["match_fraction"][kind] = float(np.mean(counts)) / n_points
        tops[backend] = {}
        for kind in kinds:
            if backend == "edge":
                n = args.queries
                note = ""
            else:
                n = await adaptive_count(
                    store, queries, kind, args.queries, args.local_budget_s, args.local_min_queries
                )
                note = (
                    "" if n == args.queries else f"{n} of {args.queries} queries (time budget {args.local_budget_s:g}s)"
                )
            warm = min(args.warmup, 3) if backend == "local" and n < args.queries else args.warmup
            lat = await time_queries(store, queries, kind, n, warm)
            res["rows"][kind] = {**latency_stats_ms(lat), "note": note}
            tops[backend][kind] = await top_ids(store, queries, kind, min(5, n))
            log(
                f"{backend} {kind:9s}: p50 {res['rows'][kind]['p50_ms']:.2f} ms, "
                f"p99 {res['rows'][kind]['p99_ms']:.2f} ms over {n} queries"
            )
        if backend == "edge" and args.optimize and n_points <= args.optimize_max_points:
            await index_rows(store, queries, args, res)
        res["rss_mb"]["searched"] = rss_mb()
        store, res["reopen"] = await reopen(backend, where, store, queries[0])
        log(f"{backend}: reopen {res['reopen']['total_s']:.2f}s")
        await store.close()
        if backend == "edge" and args.optimize and n_points <= args.optimize_max_points:
            res["serving_rss_mb"] = serving_rss(where, queries, tmp, args.vectors_on_disk, args.serving_filtered)
            log(f"edge: a fresh serving process: {res['serving_rss_mb']}")
        result["stores"][backend] = res
        shutil.rmtree(where, ignore_errors=True)
    if "edge" in tops and "local" in tops:
        agree = {}
        for kind in kinds:
            pairs = list(zip(tops["edge"][kind], tops["local"][kind], strict=True))
            agree[kind] = float(np.mean([len(set(a) & set(b)) / max(len(a), 1) for a, b in pairs])) if pairs else None
        result["top20_agreement"] = agree
    return result


async def index_rows(store: VectorStore, queries: np.ndarray, args: argparse.Namespace, res: dict[str, Any]) -> None:
    """Build HNSW + int8 (`visearch optimize`), then time HNSW, HNSW+int8 and the filtered rows again.
    The embedded store only: the rows swap its index settings between searches."""
    from visearch.core.store.edge import EdgeStore

    if not isinstance(store, EdgeStore):
        raise TypeError(f"index rows are measured on the embedded store, not {type(store).__name__}")
    k = min(args.recall_queries, len(queries))
    exact = await top_ids(store, queries, "none", k)  # still unindexed: a plain exact scan
    exact_filtered = {kind: await top_ids(store, queries, kind, k) for kind in ("selective", "broad")}
    built = replace(BENCH_INDEX, vectors_on_disk=args.vectors_on_disk)
    store.index = built
    t1 = time.perf_counter()
    report = await store.build_index()
    res["optimize_s"] = time.perf_counter() - t1
    res["index"] = {"segments": report.segments, "indexed_vectors": report.indexed_vectors}
    res["rss_mb"]["indexed"] = rss_mb()
    log(f"edge build_index {res['optimize_s']:.1f}s: {report.indexed_vectors:,} indexed, {report.segments} segments")
    res["recall_at_10"] = {}
    for row, index in (("none_hnsw", replace(built, quantization="none")), ("none_int8", built)):
        store.index = index
        lat = await time_queries(store, queries, "none", args.queries, args.warmup)
        res["rows"][row] = {**latency_stats_ms(lat), "note": ""}
        approx = await top_ids(store, queries, "none", k)
        res["recall_at_10"][row] = float(
            np.mean([len(set(a[:10]) & set(e[:10])) / 10 for a, e in zip(approx, exact, strict=True)])
        )
        log(f"edge {row}: p50 {res['rows'][row]['p50_ms']:.2f} ms, recall@10 {res['recall_at_10'][row]:.3f}")
    for kind in ("selective", "broad"):
        lat = await time_queries(store, queries, kind, args.queries, args.warmup)
        res["rows"][f"{kind}_int8"] = {**latency_stats_ms(lat), "note": ""}
    store.index = replace(built, filtered="index")  # VISEARCH_FILTERED_SEARCH=index
    for kind in ("selective", "broad"):
        row = f"{kind}_index"
        lat = await time_queries(store, queries, kind, args.queries, args.warmup)
        res["rows"][row] = {**latency_stats_ms(lat), "note": ""}
        planned = await top_ids(store, queries, kind, k)
        res["recall_at_10"][row] = float(
            np.mean(
                [
                    len(set(a[:10]) & set(e[:10])) / max(1, len(e[:10]))
                    for a, e in zip(planned, exact_filtered[kind], strict=True)
                ]
            )
        )
        log(f"edge {row}: p50 {res['rows'][row]['p50_ms']:.2f} ms, recall@10 {res['recall_at_10'][row]:.3f}")
    store.index = built
    res["rss_mb"]["indexed_searched"] = rss_mb()


SERVING_PROBE = "--serving-probe"
SERVING_QUERIES = 300


def serving_rss(where: Path, queries: np.ndarray, tmp: Path, on_disk: bool, filtered: str) -> dict[str, float]:
    """RSS of a fresh process that opens the optimized collection as `visearch serve` would (HNSW +
    int8 settings, no dataset in memory) and answers SERVING_QUERIES unfiltered and filtered queries."""
    qfile = tmp / "serving-queries.npy"
    np.save(qfile, queries)
    done = subprocess.run(
        [sys.executable, __file__, SERVING_PROBE, str(where), str(qfile), str(int(on_disk)), filtered],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"serving probe failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def serving_probe(where: Path, qfile: Path, on_disk: bool, filtered: str) -> None:
    """The child of `serving_rss`: prints its RSS after opening, after searching, and its peak."""
    settings = Settings(
        data_dir=where,
        collection=COLLECTION,
        qdrant_url=None,
        _env_file=None,
        hnsw_m=BENCH_INDEX.hnsw_m,
        hnsw_ef_construct=BENCH_INDEX.hnsw_ef_construct,
        hnsw_ef=BENCH_INDEX.hnsw_ef,
        quantization=BENCH_INDEX.quantization,
        quantization_oversampling=BENCH_INDEX.quantization_oversampling,
        vectors_on_disk=on_disk,
        filtered_search="index" if filtered == "index" else "exact",
    )
    queries = np.load(qfile)
    started = rss_mb()

    async def serve() -> dict[str, float]:
        store = open_store(settings)
        await store.search(queries[0].tolist(), None, LIMIT)
        opened = rss_mb()
        kinds = ("none", "selective", "broad")
        for i in range(SERVING_QUERIES):
            await store.search(queries[i % len(queries)].tolist(), filters_for(kinds[i % 3], i), LIMIT)
        searched = rss_mb()
        await store.close()
        return {"python_and_numpy": started, "opened": opened, "searched": searched, "peak": rss_mb("VmHWM")}

    print(json.dumps({k: round(v) for k, v in asyncio.run(serve()).items()}))


# --- report -----------------------------------------------------------------------------------

LABELS = {
    "none": "no filter",
    "none_hnsw": "no filter, HNSW",
    "none_int8": "no filter, HNSW+int8",
    "selective": "category+in_stock+price",
    "broad": "in_stock only",
    "selective_int8": "category+in_stock+price (after optimize)",
    "broad_int8": "in_stock only (after optimize)",
    "selective_index": "category+in_stock+price (FILTERED_SEARCH=index)",
    "broad_index": "in_stock only (FILTERED_SEARCH=index)",
}


def render(result: dict[str, Any]) -> str:
    out = io.StringIO()
    rows = []
    for size in result["sizes"]:
        stores = size["stores"]
        edge, local = stores.get("edge"), stores.get("local")
        for kind, label in LABELS.items():
            e = edge["rows"].get(kind) if edge else None
            lo = local["rows"].get(kind) if local else None
            if e is None and lo is None:
                continue
            frac = (edge or {}).get("match_fraction", {}).get(kind.split("_")[0])
            match = "100%" if kind.startswith("none") else (f"{frac * 100:.1f}%" if frac is not None else "-")
            ratio = lo["p50_ms"] / e["p50_ms"] if e and lo else None
            ratio99 = lo["p99_ms"] / e["p99_ms"] if e and lo else None
            rows.append(
                [
                    size["points"],
                    label,
                    match,
                    e["n"] if e else None,
                    e["p50_ms"] if e else None,
                    e["p99_ms"] if e else None,
                    lo["n"] if lo else None,
                    lo["p50_ms"] if lo else None,
                    lo["p99_ms"] if lo else None,
                    f"{ratio:,.0f}x" if ratio and ratio >= 100 else (f"{ratio:.1f}x" if ratio else "-"),
                    f"{ratio99:,.0f}x" if ratio99 and ratio99 >= 100 else (f"{ratio99:.1f}x" if ratio99 else "-"),
                ]
            )
    print(f"search latency, limit {LIMIT}, dim {DIM}, through the async VectorStore interface", file=out)
    print(
        table(
            [
                "points",
                "filter",
                "match",
                "edge n",
                "edge p50 ms",
                "edge p99 ms",
                "local n",
                "local p50 ms",
                "local p99 ms",
                "ratio p50",
                "ratio p99",
            ],
            rows,
        ),
        file=out,
    )

    rows = []
    for size in result["sizes"]:
        for backend, res in size["stores"].items():
            r = res["reopen"]
            rows.append(
                [
                    size["points"],
                    backend,
                    res["build_s"],
                    res["points_per_s"],
                    r["close_s"],
                    r["open_s"],
                    r["first_query_s"] * 1000,
                    r["total_s"],
                ]
            )
    print("\nbuild (ensure_collection + batched upserts) and reopen (close + open + first unfiltered query)", file=out)
    print(
        table(["points", "store", "build s", "points/s", "close s", "open s", "1st query ms", "reopen s"], rows),
        file=out,
    )
    ratios = []
    for size in result["sizes"]:
        st = size["stores"]
        if "edge" in st and "local" in st:
            ratios.append(
                f"{size['points']:,}: {st['local']['reopen']['total_s'] / st['edge']['reopen']['total_s']:.0f}x"
            )
    if ratios:
        print("reopen ratio local/edge: " + ", ".join(ratios), file=out)

    notes = []
    for size in result["sizes"]:
        for backend, res in size["stores"].items():
            for kind, row in res["rows"].items():
                if row.get("note"):
                    notes.append(f"  {size['points']:,} {backend} {LABELS[kind]}: {row['note']}")
            for row, recall in res.get("recall_at_10", {}).items():
                notes.append(f"  {size['points']:,} edge {LABELS[row]} recall@10 vs exact scan: {recall:.3f}")
            if "optimize_s" in res:
                notes.append(
                    f"  {size['points']:,} edge build_index (HNSW m={BENCH_INDEX.hnsw_m} "
                    f"ef_construct={BENCH_INDEX.hnsw_ef_construct} + int8): "
                    f"{res['optimize_s']:.0f}s, {res['index']['indexed_vectors']:,} indexed vectors, "
                    f"{res['index']['segments']} segments"
                )
            rss = ", ".join(f"{k} {v:,.0f}" for k, v in res.get("rss_mb", {}).items())
            notes.append(f"  {size['points']:,} {backend} RSS MB (this process, dataset included): {rss}")
            if "serving_rss_mb" in res:
                serving = ", ".join(f"{k} {v:,.0f}" for k, v in res["serving_rss_mb"].items())
                notes.append(
                    f"  {size['points']:,} {backend} RSS MB of a fresh serving process (HNSW + int8, "
                    f"vectors on disk: {result['vectors_on_disk']}, filtered search: "
                    f"{result['serving_filtered']}; {SERVING_QUERIES} mixed queries): {serving}"
                )
        if "top20_agreement" in size:
            agree = ", ".join(f"{LABELS[k]} {v:.2f}" for k, v in size["top20_agreement"].items() if v is not None)
            notes.append(f"  {size['points']:,} top-20 agreement edge vs local (first 5 queries): {agree}")
    if notes:
        print("\nnotes:", file=out)
        print("\n".join(notes), file=out)
    print(
        "\nedge  = EdgeStore via open_store(Settings(data_dir=tmp)) (qdrant-edge-py, exact search when filtered;"
        "\n        unfiltered = plain scan of unoptimized segments unless marked HNSW)"
        "\nlocal = ServerStore code on AsyncQdrantClient(path=tmp), qdrant-client's on-disk local mode"
        "\n        (our ServerStore only opens ':memory:'; same search code, but that one cannot be reopened)"
        "\nratio = local / edge, same run, same points and queries; with n < 100, p99 is close to the max"
        "\nreopen: edge opens its shard lazily, so loading shows under '1st query'; local reads every"
        "\n        point back from its SQLite file in the constructor ('open s')"
        "\nHNSW recall is measured on synthetic clustered vectors; check it on real embeddings",
        file=out,
    )
    print(f"total runtime {result['runtime_s']:.0f}s", file=out)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [SERVING_PROBE]:
        serving_probe(Path(argv[1]), Path(argv[2]), argv[3] == "1", argv[4])
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke test: 2k points, 20 queries")
    ap.add_argument("--full", action="store_true", help="100k and 1M points (1M: ~2 GB of vectors, long index build)")
    ap.add_argument(
        "--local-max-points",
        type=int,
        default=100_000,
        help="largest size qdrant-client local mode runs at (it holds every point in Python)",
    )
    ap.add_argument("--recall-queries", type=int, default=50, help="queries recall@10 is measured on")
    ap.add_argument(
        "--sizes",
        type=lambda s: [int(x) for x in s.split(",")],
        default=None,
        help="comma-separated point counts (default 100000; --full 100000,1000000)",
    )
    ap.add_argument("--queries", type=int, default=None, help="timed queries per row (default 200)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed queries before each row (default 10)")
    ap.add_argument(
        "--local-budget-s",
        type=float,
        default=None,
        help="seconds of timed queries per qdrant-client local row; fewer queries when slow (default 20)",
    )
    ap.add_argument("--local-min-queries", type=int, default=10)
    ap.add_argument("--batch", type=int, default=1000, help="points per upsert call")
    ap.add_argument("--backends", type=lambda s: s.split(","), default=["edge", "local"])
    ap.add_argument(
        "--optimize",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also time edge unfiltered search after optimize() (HNSW); default: on, off in --quick",
    )
    ap.add_argument(
        "--optimize-max-points",
        type=int,
        default=1_000_000,
        help="only build the index for sizes up to this many points (HNSW build of 100k x 512-d "
        "takes minutes on 2 cores)",
    )
    ap.add_argument(
        "--vectors-on-disk",
        action="store_true",
        help="optimize with VISEARCH_VECTORS_ON_DISK (float vectors memory-mapped, int8 copy in RAM)",
    )
    ap.add_argument(
        "--serving-filtered",
        choices=("exact", "index"),
        default="exact",
        help="VISEARCH_FILTERED_SEARCH of the fresh serving process whose RSS is measured",
    )
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument(
        "--json",
        nargs="?",
        const="-",
        default=None,
        metavar="PATH",
        help="write JSON results to PATH, or to stdout (tables then go to stderr)",
    )
    args = ap.parse_args(argv)
    if args.sizes is None:
        args.sizes = [2000] if args.quick else ([100_000, 1_000_000] if args.full else [100_000])
    if args.queries is None:
        args.queries = 20 if args.quick else 200
    if args.warmup is None:
        args.warmup = 3 if args.quick else 10
    if args.local_budget_s is None:
        args.local_budget_s = 5.0 if args.quick else 20.0
    if args.optimize is None:
        args.optimize = True
    if args.quick:
        args.local_min_queries = min(args.local_min_queries, 5)

    started = time.perf_counter()
    info = machine_info()
    result: dict[str, Any] = {
        "benchmark": "search",
        "quick": args.quick,
        "machine": info,
        "limit": LIMIT,
        "dim": DIM,
        "queries": args.queries,
        "warmup": args.warmup,
        "sizes": [],
        "vectors_on_disk": args.vectors_on_disk,
        "serving_filtered": args.serving_filtered,
    }
    with tempfile.TemporaryDirectory(prefix="visearch-bench-search-") as tmpdir:
        for n in args.sizes:
            result["sizes"].append(asyncio.run(run_size(n, args, Path(tmpdir))))
    result["runtime_s"] = time.perf_counter() - started

    stream = sys.stderr if args.json == "-" else sys.stdout
    with contextlib.redirect_stdout(stream):
        print_machine(info)
        print(render(result))
    if args.json is not None:
        dump_json(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
