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

Data: N random unit vectors (dim 512) with realistic payloads built by `Product(...).payload(...)`
(50 categories, 20 brands, prices, in_stock ~85 % true, tags, 1-3 images per product).
Queries: random unit vectors, limit 20, three filter kinds:

* none      - no filter (edge: plain exact scan, or HNSW after `optimize()` with --optimize)
* selective - category (1 of 50) + in_stock + price range (~0.5 % of points)
* broad     - in_stock only (~85 % of points)

Filtered searches are exact in both stores. Ratio = local p50 / edge p50 in the same run.
Reopen = close + open + first (unfiltered) query.

    python benchmarks/bench_search.py            # 10k and 100k points (a few minutes)
    python benchmarks/bench_search.py --quick    # 2k points, few queries (seconds)
    python benchmarks/bench_search.py --json     # JSON on stdout (tables go to stderr)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import io
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import _common  # noqa: F401  (puts the repo root on sys.path)
import numpy as np
from _common import dump_json, latency_stats_ms, machine_info, print_machine, table

from core.config import Settings
from core.domain import Filters, PointRecord, Product, point_id_for
from core.store.base import VectorStore
from core.store.factory import open_store

DIM = 512
LIMIT = 20
COLLECTION = "bench"
ENCODER_ID = "bench-random-512"

CATEGORIES = (
    "Dairy", "Milk", "Yoghurt", "Cheese", "Butter", "Eggs", "Bread", "Pastry", "Cereal", "Rice",
    "Pasta", "Flour", "Sugar", "Spices", "Sauces", "Oil", "Vinegar", "Canned Fish", "Canned Vegetables",
    "Soup", "Fruit", "Berries", "Citrus", "Vegetables", "Root Vegetables", "Salad", "Herbs", "Mushrooms",
    "Meat", "Poultry", "Fish", "Seafood", "Frozen Meals", "Ice Cream", "Snacks", "Crisps", "Nuts",
    "Chocolate", "Candy", "Biscuits", "Coffee", "Tea", "Juice", "Soft Drinks", "Water", "Beer", "Wine",
    "Baby Food", "Pet Food", "Household",
)
BRANDS = (
    "Arla", "Garant", "Oatly", "Alpro", "Tropicana", "Bravo", "God Morgon", "Valio", "Yoggi", "Felix",
    "Barilla", "Heinz", "Nestle", "Danone", "Kelloggs", "Lindt", "Fazer", "Zoegas", "Lipton", "ICA",
)
TAGS = (
    "organic", "vegan", "gluten-free", "lactose-free", "local", "fair-trade", "low-fat", "sugar-free",
    "new", "sale", "family-pack", "bio", "kosher", "halal", "frozen", "fresh", "imported", "seasonal",
    "premium", "budget", "eco", "high-protein", "whole-grain", "no-additives", "spicy", "mild",
    "large", "small", "bottle", "can",
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
    vectors = rng.standard_normal((n_points, DIM), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return ids, payloads, vectors


def make_queries(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((n, DIM), dtype=np.float32)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


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

    from core.store.server import ServerStore

    store = ServerStore(COLLECTION, location=":memory:")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "local mode is not recommended for > 20k points"
        store._client = AsyncQdrantClient(path=str(path))  # the only change: on disk instead of in memory
    store.url = f"path={path}"
    return store


OPENERS = {"edge": open_edge, "local": open_local}


async def build(kind: str, where: Path, ids: Sequence[str], payloads: Sequence[dict], vectors: np.ndarray,
                batch: int) -> tuple[VectorStore, float]:
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


async def adaptive_count(store: VectorStore, queries: np.ndarray, kind: str, wanted: int, budget_s: float,
                         floor: int) -> int:
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
    return [[h.point_id for h in await store.search(queries[i].tolist(), filters_for(kind, i), LIMIT)] for i in range(k)]


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
    log(f"{n_points:,} points generated in {gen_s:.1f}s")

    result: dict[str, Any] = {"points": n_points, "generate_s": gen_s, "stores": {}}
    kinds = ["none", "selective", "broad"]
    tops: dict[str, dict[str, list[list[str]]]] = {}
    for backend in args.backends:
        where = tmp / f"{backend}-{n_points}"
        shutil.rmtree(where, ignore_errors=True)
        log(f"{backend}: upserting {n_points:,} points (batch {args.batch}) ...")
        store, build_s = await build(backend, where, ids, payloads, vectors, args.batch)
        log(f"{backend}: built in {build_s:.1f}s ({n_points / build_s:,.0f} points/s)")
        res: dict[str, Any] = {"build_s": build_s, "points_per_s": n_points / build_s, "rows": {}}
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
                n = await adaptive_count(store, queries, kind, args.queries, args.local_budget_s, args.local_min_queries)
                note = "" if n == args.queries else f"{n} of {args.queries} queries (time budget {args.local_budget_s:g}s)"
            warm = min(args.warmup, 3) if backend == "local" and n < args.queries else args.warmup
            lat = await time_queries(store, queries, kind, n, warm)
            res["rows"][kind] = {**latency_stats_ms(lat), "note": note}
            tops[backend][kind] = await top_ids(store, queries, kind, min(5, n))
            log(f"{backend} {kind:9s}: p50 {res['rows'][kind]['p50_ms']:.2f} ms, "
                f"p99 {res['rows'][kind]['p99_ms']:.2f} ms over {n} queries")
        if backend == "edge" and args.optimize and n_points <= args.optimize_max_points:
            t1 = time.perf_counter()
            await asyncio.to_thread(store.optimize)  # type: ignore[attr-defined]
            res["optimize_s"] = time.perf_counter() - t1
            lat = await time_queries(store, queries, "none", args.queries, args.warmup)
            res["rows"]["none_hnsw"] = {**latency_stats_ms(lat), "note": f"after optimize() ({res['optimize_s']:.1f}s)"}
            exact = tops["edge"]["none"]
            approx = await top_ids(store, queries, "none", len(exact))
            res["hnsw_recall_at_20"] = float(np.mean([len(set(a) & set(e)) / len(e) for a, e in zip(approx, exact)]))
            log(f"edge optimize {res['optimize_s']:.1f}s; HNSW p50 {res['rows']['none_hnsw']['p50_ms']:.2f} ms")
        store, res["reopen"] = await reopen(backend, where, store, queries[0])
        log(f"{backend}: reopen {res['reopen']['total_s']:.2f}s")
        await store.close()
        result["stores"][backend] = res
        shutil.rmtree(where, ignore_errors=True)
    if "edge" in tops and "local" in tops:
        agree = {}
        for kind in kinds:
            pairs = list(zip(tops["edge"][kind], tops["local"][kind]))
            agree[kind] = float(np.mean([len(set(a) & set(b)) / max(len(a), 1) for a, b in pairs])) if pairs else None
        result["top20_agreement"] = agree
    return result


# --- report -----------------------------------------------------------------------------------

LABELS = {
    "none": "no filter",
    "none_hnsw": "no filter, HNSW",
    "selective": "category+in_stock+price",
    "broad": "in_stock only",
}


def render(result: dict[str, Any]) -> str:
    out = io.StringIO()
    rows = []
    for size in result["sizes"]:
        stores = size["stores"]
        edge, local = stores.get("edge"), stores.get("local")
        for kind in ("none", "none_hnsw", "selective", "broad"):
            e = edge["rows"].get(kind) if edge else None
            lo = local["rows"].get(kind) if local else None
            if e is None and lo is None:
                continue
            frac = (edge or {}).get("match_fraction", {}).get(kind.replace("none_hnsw", "none"))
            match = "100%" if kind.startswith("none") else (f"{frac * 100:.1f}%" if frac is not None else "-")
            ratio = lo["p50_ms"] / e["p50_ms"] if e and lo else None
            ratio99 = lo["p99_ms"] / e["p99_ms"] if e and lo else None
            rows.append([
                size["points"], LABELS[kind], match,
                e["n"] if e else None, e["p50_ms"] if e else None, e["p99_ms"] if e else None,
                lo["n"] if lo else None, lo["p50_ms"] if lo else None, lo["p99_ms"] if lo else None,
                f"{ratio:,.0f}x" if ratio and ratio >= 100 else (f"{ratio:.1f}x" if ratio else "-"),
                f"{ratio99:,.0f}x" if ratio99 and ratio99 >= 100 else (f"{ratio99:.1f}x" if ratio99 else "-"),
            ])
    print(f"search latency, limit {LIMIT}, dim {DIM}, through the async VectorStore interface", file=out)
    print(table(["points", "filter", "match", "edge n", "edge p50 ms", "edge p99 ms",
                 "local n", "local p50 ms", "local p99 ms", "ratio p50", "ratio p99"], rows), file=out)

    rows = []
    for size in result["sizes"]:
        for backend, res in size["stores"].items():
            r = res["reopen"]
            rows.append([size["points"], backend, res["build_s"], res["points_per_s"],
                         r["close_s"], r["open_s"], r["first_query_s"] * 1000, r["total_s"]])
    print("\nbuild (ensure_collection + batched upserts) and reopen (close + open + first unfiltered query)", file=out)
    print(table(["points", "store", "build s", "points/s", "close s", "open s", "1st query ms", "reopen s"], rows),
          file=out)
    ratios = []
    for size in result["sizes"]:
        st = size["stores"]
        if "edge" in st and "local" in st:
            ratios.append(f"{size['points']:,}: {st['local']['reopen']['total_s'] / st['edge']['reopen']['total_s']:.0f}x")
    if ratios:
        print("reopen ratio local/edge: " + ", ".join(ratios), file=out)

    notes = []
    for size in result["sizes"]:
        for backend, res in size["stores"].items():
            for kind, row in res["rows"].items():
                if row.get("note"):
                    notes.append(f"  {size['points']:,} {backend} {LABELS[kind]}: {row['note']}")
            if "hnsw_recall_at_20" in res:
                notes.append(f"  {size['points']:,} edge HNSW recall@20 vs exact scan: {res['hnsw_recall_at_20']:.3f}")
        if "top20_agreement" in size:
            agree = ", ".join(f"{LABELS[k]} {v:.2f}" for k, v in size["top20_agreement"].items() if v is not None)
            notes.append(f"  {size['points']:,} top-20 agreement edge vs local (first 5 queries): {agree}")
    if notes:
        print("\nnotes:", file=out)
        print("\n".join(notes), file=out)
    print("\nedge  = EdgeStore via open_store(Settings(data_dir=tmp)) (qdrant-edge-py, exact search when filtered;"
          "\n        unfiltered = plain scan of unoptimized segments unless marked HNSW)"
          "\nlocal = ServerStore code on AsyncQdrantClient(path=tmp), qdrant-client's on-disk local mode"
          "\n        (our ServerStore only opens ':memory:'; same search code, but that one cannot be reopened)"
          "\nratio = local / edge, same run, same points and queries; with n < 100, p99 is close to the max"
          "\nreopen: edge opens its shard lazily, so loading shows under '1st query'; local reads every"
          "\n        point back from its SQLite file in the constructor ('open s')"
          "\nHNSW recall is measured on random vectors, the worst case for HNSW; check it on real embeddings",
          file=out)
    print(f"total runtime {result['runtime_s']:.0f}s", file=out)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke test: 2k points, 20 queries")
    ap.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=None,
                    help="comma-separated point counts (default 10000,100000)")
    ap.add_argument("--queries", type=int, default=None, help="timed queries per row (default 200)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed queries before each row (default 10)")
    ap.add_argument("--local-budget-s", type=float, default=None,
                    help="seconds of timed queries per qdrant-client local row; fewer queries when slow (default 20)")
    ap.add_argument("--local-min-queries", type=int, default=10)
    ap.add_argument("--batch", type=int, default=1000, help="points per upsert call")
    ap.add_argument("--backends", type=lambda s: s.split(","), default=["edge", "local"])
    ap.add_argument("--optimize", action=argparse.BooleanOptionalAction, default=None,
                    help="also time edge unfiltered search after optimize() (HNSW); default: on, off in --quick")
    ap.add_argument("--optimize-max-points", type=int, default=20_000,
                    help="only optimize sizes up to this many points (HNSW build of 100k x 512-d takes "
                         "over 6 minutes on 2 cores; default 20000)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH",
                    help="write JSON results to PATH, or to stdout (tables then go to stderr)")
    args = ap.parse_args(argv)
    if args.sizes is None:
        args.sizes = [2000] if args.quick else [10_000, 100_000]
    if args.queries is None:
        args.queries = 20 if args.quick else 200
    if args.warmup is None:
        args.warmup = 3 if args.quick else 10
    if args.local_budget_s is None:
        args.local_budget_s = 5.0 if args.quick else 20.0
    if args.optimize is None:
        args.optimize = not args.quick
    if args.quick:
        args.local_min_queries = min(args.local_min_queries, 5)

    started = time.perf_counter()
    info = machine_info()
    result: dict[str, Any] = {"benchmark": "search", "quick": args.quick, "machine": info, "limit": LIMIT,
                              "dim": DIM, "queries": args.queries, "warmup": args.warmup, "sizes": []}
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
