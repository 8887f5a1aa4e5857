"""The vector search peers side by side, in one run (issue 18, part 4).

The same clustered vectors (`bench_search.clustered_vectors`: 512-d, 1,000 centres + noise) and
queries go through:

* **edge-exact / edge-hnsw / edge-int8**: the embedded engine as visearch runs it (`EdgeStore`:
  upserts with payloads, `build_index()` = `visearch optimize`, searches through the async
  store interface). One build serves the HNSW and HNSW+int8 rows (int8 rescored on the floats,
  oversampling 2); edge-exact is the same store before `build_index()`; edge-int8-engine is the
  engine's own search call on that shard, without visearch's async path and payloads.
* **faiss-flat / faiss-hnsw / faiss-ivfpq** (`faiss-cpu`): `IndexFlatIP`, `IndexHNSWFlat`, and
  `IndexIVFPQ` (nlist = sqrt(n), 64 x 8-bit codes) wrapped in `IndexRefineFlat` (re-ranks
  `k_factor` x 10 candidates on the floats, as int8 rescoring does).
* **hnswlib**: `Index(space="ip")`.

Graph peers are built with the same M and ef_construct (32 / 100, as `visearch optimize`), on all
cores. Each peer runs in a process of its own, so its build time and memory are its own: peak
VmRSS (VmHWM, which counts the pages of memory-mapped files the engine maps) and peak RssAnon
(the memory the build cannot give back), polled every 0.2 s by this process. Vectors reach every
peer from a memory-mapped .npy in chunks, whose pages are dropped after use, so no peer pays for
a second full copy.

Each search knob (ef, nprobe) is swept; for recall@10 targets 0.95 and 0.99 the table shows the
cheapest setting that reaches it and its p50/p99 over single queries (one query per call, as
the service asks). Filters: a 1% one (one category of 50 and price <= 20) and an 85% one (in
stock). How each peer filters:

* edge: exact by default (`VISEARCH_FILTERED_SEARCH=exact`: every match scored, through the
  payload index), and the engine's own plan (`=index`: payload index + exact when selective,
  HNSW with ACORN when broad) swept over ef;
* faiss: an `IDSelectorBitmap` in the search parameters, checked while the index is searched
  (HNSW skips non-matching nodes as results but still walks them; IVF skips them in the lists);
* hnswlib: a Python callable per candidate label (`knn_query(filter=...)`), the only way it has.

    python benchmarks/bench_peers.py                 # 100k points, every peer
    python benchmarks/bench_peers.py --full          # 100k and 1M
    python benchmarks/bench_peers.py --quick         # 5k points, few queries (a smoke run)
    python benchmarks/bench_peers.py --json out.json

Needs `pip install -e ".[peers]"` (faiss-cpu, hnswlib); a peer whose library is missing is
reported as such, not skipped silently.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import mmap
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import _common  # noqa: F401  (puts the repo root on sys.path)
import numpy as np
from _common import dump_json, latency_stats_ms, log, machine_info, package_version, print_machine, run_watched, table
from bench_search import CATEGORIES, DIM, clustered_vectors, rss_mb

K = 10
SEL_PRICE_MAX = 20.0  # with one category of 50: ~1% of the points
PEER_GROUPS: dict[str, tuple[str, ...]] = {
    "edge": ("edge-exact", "edge-hnsw", "edge-int8", "edge-int8-engine"),
    "faiss-flat": ("faiss-flat",),
    "faiss-hnsw": ("faiss-hnsw",),
    "faiss-ivfpq": ("faiss-ivfpq",),
    "hnswlib": ("hnswlib",),
}
FILTERS = ("none", "1%", "85%")
TARGETS = (0.95, 0.99)


# --- data (parent process) ------------------------------------------------------------------


def prepare(n: int, n_queries: int, seed: int, where: Path) -> dict[str, float]:
    """Vectors, payload attributes, queries and exact top-10 truth for each filter, as .npy files."""
    rng = np.random.default_rng(seed + 100)
    np.save(where / "vectors.npy", clustered_vectors(n, seed))
    np.save(where / "category.npy", rng.integers(0, len(CATEGORIES), n).astype(np.int16))
    np.save(where / "price.npy", rng.lognormal(mean=3.0, sigma=0.8, size=n).round(2).astype(np.float32))
    np.save(where / "in_stock.npy", rng.random(n) < 0.85)
    np.save(where / "queries.npy", clustered_vectors(n_queries, seed + 1))
    data = load_data(where)
    for kind in FILTERS:
        np.save(where / f"truth-{kind}.npy", exact_truth(data, kind))
    return {kind: float(np.mean([filter_mask(data, kind, key).mean() for key in range(10)])) for kind in ("1%", "85%")}


def load_data(where: Path) -> dict[str, np.ndarray]:
    return {
        name: np.load(where / f"{name}.npy", mmap_mode="r")
        for name in ("vectors", "category", "price", "in_stock", "queries")
    }


def query_category(i: int) -> int:
    return (i * 7) % len(CATEGORIES)


def filter_mask(data: dict[str, np.ndarray], kind: str, key: int) -> np.ndarray:
    """Which points a filter lets through: category `key` and price <= 20 (1%), or in stock (85%)."""
    if kind == "1%":
        return (np.asarray(data["category"]) == key) & (np.asarray(data["price"]) <= SEL_PRICE_MAX)
    if kind == "85%":
        return np.asarray(data["in_stock"])
    raise ValueError(kind)


def exact_truth(data: dict[str, np.ndarray], kind: str, chunk: int = 100_000) -> np.ndarray:
    """Exact top-10 point numbers per query (inner product = cosine on unit vectors), by numpy."""
    queries = np.asarray(data["queries"])
    n = len(data["vectors"])
    best_s = np.full((len(queries), K), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(queries), K), dtype=np.int64)
    qcat = np.array([query_category(i) for i in range(len(queries))])
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        scores = np.asarray(data["vectors"][start:stop]) @ queries.T  # (chunk, Q)
        if kind == "1%":
            ok = (np.asarray(data["category"][start:stop])[:, None] == qcat[None, :]) & (
                np.asarray(data["price"][start:stop]) <= SEL_PRICE_MAX
            )[:, None]
            scores = np.where(ok, scores, -np.inf)
        elif kind == "85%":
            scores = np.where(np.asarray(data["in_stock"][start:stop])[:, None], scores, -np.inf)
        all_s = np.concatenate([best_s, scores.T], axis=1)
        all_i = np.concatenate([best_i, np.broadcast_to(np.arange(start, stop), (len(queries), stop - start))], axis=1)
        top = np.argpartition(-all_s, K - 1, axis=1)[:, :K]
        best_s = np.take_along_axis(all_s, top, axis=1)
        best_i = np.take_along_axis(all_i, top, axis=1)
    best_i[~np.isfinite(best_s)] = -1
    return best_i


# --- one peer group per process ------------------------------------------------------------


def run_group(group: str, where: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One peer group in a fresh process; its JSON result plus the memory peaks seen from outside."""
    out = where / f"result-{group}.json"
    cmd = [sys.executable, __file__, "--run-peer", group, "--data", str(where), "--out", str(out)]
    cmd += ["--m", str(args.m), "--ef-construct", str(args.ef_construct), "--sweep", args.sweep]
    cmd += ["--nprobe-sweep", args.nprobe_sweep, "--k-factor", str(args.k_factor), "--warmup", str(args.warmup)]
    run = run_watched(cmd, timeout_s=args.peer_timeout_s)
    if run.timed_out:
        return {"error": f"ran past --peer-timeout-s {args.peer_timeout_s}", "peaks_mb": run.peaks_mb}
    if run.returncode != 0 or not out.exists():
        return {"error": f"exit code {run.returncode}", "peaks_mb": run.peaks_mb}
    result: dict[str, Any] = json.loads(out.read_text())
    result["peaks_mb"] = run.peaks_mb
    result["wall_s"] = run.seconds
    return result


# --- the peers (child process) --------------------------------------------------------------


class VectorFile:
    """The .npy of vectors, memory-mapped and read in chunks whose pages are dropped after use, so
    a peer's RSS holds only what the peer itself keeps."""

    def __init__(self, path: Path) -> None:
        header = np.load(path, mmap_mode="r")
        self.n, self.dim = header.shape
        self.offset = header.offset
        del header
        self._fh = open(path, "rb")  # noqa: SIM115  (closed with the process)
        self._mm = mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_READ)

    def chunks(self, size: int) -> Iterator[tuple[int, np.ndarray]]:
        row = self.dim * 4
        for start in range(0, self.n, size):
            stop = min(start + size, self.n)
            lo = self.offset + start * row
            block = np.frombuffer(self._mm, dtype=np.float32, count=(stop - start) * self.dim, offset=lo)
            yield start, np.array(block.reshape(stop - start, self.dim))  # a copy; the map's pages go
            page_lo = lo - lo % mmap.PAGESIZE
            self._mm.madvise(mmap.MADV_DONTNEED, page_lo, self.offset + stop * row - page_lo)


def timed_search(search: Callable[[np.ndarray, int], list[int]], queries: np.ndarray, warmup: int) -> list[float]:
    for i in range(warmup):
        search(queries[-1 - i], 1000 + i)
    seconds = []
    for i, query in enumerate(queries):
        t0 = time.perf_counter()
        search(query, i)
        seconds.append(time.perf_counter() - t0)
    return seconds


def recall_at_10(search: Callable[[np.ndarray, int], list[int]], queries: np.ndarray, truth: np.ndarray) -> float:
    scores = []
    for i, query in enumerate(queries):
        want = {int(x) for x in truth[i] if x >= 0}
        got = set(search(query, i)[:K])
        scores.append(len(want & got) / max(1, len(want)))
    return float(np.mean(scores))


def measure(
    search: Callable[[np.ndarray, int], list[int]], data: dict[str, Any], kind: str, warmup: int
) -> dict[str, Any]:
    """Recall@10 against the exact truth, then latency of every query (one per call)."""
    queries = data["queries"]
    recall = recall_at_10(search, queries, data["truth"][kind])
    return {"recall": recall, **latency_stats_ms(timed_search(search, queries, warmup))}


def sweep(
    make: Callable[[Any, str], Callable[[np.ndarray, int], list[int]]],
    knobs: list[Any],
    data: dict[str, Any],
    kind: str,
    warmup: int,
) -> list[dict[str, Any]]:
    """Each knob value's recall and latency, stopping once recall reaches 0.995 (more only costs)."""
    points = []
    for knob in knobs:
        point = {"knob": knob, **measure(make(knob, kind), data, kind, warmup)}
        points.append(point)
        log(f"  {kind:4s} knob {knob}: recall@10 {point['recall']:.3f}, p50 {point['p50_ms']:.2f} ms")
        if point["recall"] >= 0.995:
            break
    return points


def bitmaps(data: dict[str, Any], kind: str) -> dict[int, np.ndarray]:
    """The mask of each distinct filter of a kind (the 1% one rotates over categories)."""
    keys = {filter_key(kind, i) for i in range(len(data["queries"]) + 1001)}
    return {key: filter_mask(data, kind, key) for key in keys}


def filter_key(kind: str, i: int) -> int:
    """Which filter of a kind the i-th query uses: its category for the 1% one."""
    return query_category(i) if kind == "1%" else 0


def run_faiss(kind_of_index: str, vf: VectorFile, data: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    import faiss

    build_started = time.perf_counter()
    if kind_of_index == "faiss-flat":
        index: Any = faiss.IndexFlatIP(vf.dim)
    elif kind_of_index == "faiss-hnsw":
        index = faiss.IndexHNSWFlat(vf.dim, args.m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = args.ef_construct
    else:
        nlist = max(16, int(np.sqrt(vf.n)))
        quantizer = faiss.IndexFlatIP(vf.dim)
        base = faiss.IndexIVFPQ(quantizer, vf.dim, nlist, 64, 8, faiss.METRIC_INNER_PRODUCT)
        train_n = min(vf.n, max(64 * nlist, 40 * 256))  # the PQ codebooks need 256 x 39 points at least
        sample = next(vf.chunks(train_n))[1]
        base.train(sample)
        del sample
        index = faiss.IndexRefineFlat(base)
    for _, chunk in vf.chunks(50_000):
        index.add(chunk)
    build_s = time.perf_counter() - build_started
    log(f"{kind_of_index}: built in {build_s:.1f}s")
    masks = {kind: bitmaps(data, kind) for kind in ("1%", "85%")}
    selectors = {
        kind: {key: (faiss.IDSelectorBitmap(vf.n, faiss.swig_ptr(bits)), bits) for key, bits in packed.items()}
        for kind, packed in {
            kind: {key: np.packbits(mask, bitorder="little") for key, mask in m.items()} for kind, m in masks.items()
        }.items()
    }

    def make(knob: Any, kind: str) -> Callable[[np.ndarray, int], list[int]]:
        def params(i: int) -> tuple[Any, ...]:
            """The search parameters, then what they point to: SWIG keeps raw pointers, so the
            selector and the IVF parameters must outlive the call."""
            sel = None if kind == "none" else selectors[kind][filter_key(kind, i)][0]
            if kind_of_index == "faiss-flat":
                return (faiss.SearchParameters(sel=sel) if sel is not None else None, sel)
            if kind_of_index == "faiss-hnsw":
                return (faiss.SearchParametersHNSW(efSearch=int(knob), sel=sel), sel)
            ivf = faiss.SearchParametersIVF(nprobe=int(knob), sel=sel)
            return (faiss.IndexRefineSearchParameters(k_factor=float(args.k_factor), base_index_params=ivf), ivf, sel)

        def search(query: np.ndarray, i: int) -> list[int]:
            held = params(i)
            _, ids = index.search(query[None, :], K, params=held[0])
            return [int(x) for x in ids[0] if x >= 0]

        return search

    knobs: list[Any] = (
        [None]
        if kind_of_index == "faiss-flat"
        else [int(x) for x in (args.nprobe_sweep if kind_of_index == "faiss-ivfpq" else args.sweep).split(",")]
    )
    rows = {kind: sweep(make, knobs, data, kind, args.warmup) for kind in FILTERS}
    return {kind_of_index: {"build_s": build_s, "rows": rows}}


def run_hnswlib(vf: VectorFile, data: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    import hnswlib

    build_started = time.perf_counter()
    index = hnswlib.Index(space="ip", dim=vf.dim)
    index.init_index(max_elements=vf.n, M=args.m, ef_construction=args.ef_construct)
    for start, chunk in vf.chunks(50_000):
        index.add_items(chunk, np.arange(start, start + len(chunk)), num_threads=os.cpu_count() or 1)
    build_s = time.perf_counter() - build_started
    log(f"hnswlib: built in {build_s:.1f}s")
    masks = {kind: bitmaps(data, kind) for kind in ("1%", "85%")}

    def make(knob: Any, kind: str) -> Callable[[np.ndarray, int], list[int]]:
        def search(query: np.ndarray, i: int) -> list[int]:
            index.set_ef(max(int(knob), K))
            if kind == "none":
                labels, _ = index.knn_query(query, k=K, num_threads=1)
            else:
                mask = masks[kind][filter_key(kind, i)]
                labels, _ = index.knn_query(query, k=K, num_threads=1, filter=lambda label: bool(mask[label]))
            return [int(x) for x in labels[0]]

        return search

    knobs = [int(x) for x in args.sweep.split(",")]
    rows = {kind: sweep(make, knobs, data, kind, args.warmup) for kind in FILTERS}
    return {"hnswlib": {"build_s": build_s, "rows": rows}}


def run_edge(vf: VectorFile, data: dict[str, Any], where: Path, args: argparse.Namespace) -> dict[str, Any]:
    """visearch's own path: EdgeStore upserts with payloads, `build_index()`, async searches."""
    from dataclasses import replace

    from visearch.core.domain import Filters, PointRecord, point_id_for
    from visearch.core.store.base import IndexSettings
    from visearch.core.store.edge import EdgeStore

    built = IndexSettings(hnsw_m=args.m, hnsw_ef_construct=args.ef_construct, quantization="int8")
    category, price, in_stock = (np.asarray(data[k]) for k in ("category", "price", "in_stock"))
    loop = asyncio.new_event_loop()
    store = EdgeStore(where / "edge", "peers", built)
    numbers: dict[str, int] = {}

    def filters(kind: str, i: int) -> Filters | None:
        if kind == "1%":
            return Filters(categories=[CATEGORIES[query_category(i)]], price_max=SEL_PRICE_MAX)
        return Filters(in_stock=True) if kind == "85%" else None

    async def fill() -> None:
        await store.ensure_collection("bench-peers@v1", vf.dim)
        for start, chunk in vf.chunks(1000):
            records = []
            for j, vector in enumerate(chunk):
                n = start + j
                pid = point_id_for(f"sku-{n}", "img-0")
                numbers[pid] = n
                payload = {
                    "product_id": f"sku-{n}",
                    "f_category": CATEGORIES[int(category[n])].casefold(),
                    "price": float(price[n]),
                    "in_stock": bool(in_stock[n]),
                }
                records.append(PointRecord(id=pid, vector=vector.tolist(), payload=payload))
            await store.upsert(records)

    def make(knob: Any, kind: str, exact_only: bool = False) -> Callable[[np.ndarray, int], list[int]]:
        def search(query: np.ndarray, i: int) -> list[int]:
            hits = loop.run_until_complete(store.search(query.tolist(), filters(kind, i), K))
            return [numbers[h.point_id] for h in hits]

        def set_and_search(query: np.ndarray, i: int) -> list[int]:
            store.index = knob
            return search(query, i)

        return search if exact_only else set_and_search

    started = time.perf_counter()
    loop.run_until_complete(fill())
    upsert_s = time.perf_counter() - started
    upsert_hwm = round(rss_mb("VmHWM"))
    log(f"edge: {vf.n:,} points upserted in {upsert_s:.1f}s")
    exact_rows = {
        kind: [{"knob": "exact", **measure(make(None, kind, exact_only=True), data, kind, args.warmup)}]
        for kind in FILTERS
    }
    started = time.perf_counter()
    report = loop.run_until_complete(store.build_index())
    optimize_s = time.perf_counter() - started
    log(f"edge: build_index {optimize_s:.1f}s ({report.indexed_vectors:,} indexed, {report.segments} segments)")
    efs = [int(x) for x in args.sweep.split(",")]
    result: dict[str, Any] = {
        "edge-exact": {"build_s": upsert_s, "rows": exact_rows, "upsert_hwm_mb": upsert_hwm},
        "edge-hnsw": {"build_s": upsert_s + optimize_s, "upsert_s": upsert_s, "optimize_s": optimize_s, "rows": {}},
        "edge-int8": {"build_s": upsert_s + optimize_s, "upsert_s": upsert_s, "optimize_s": optimize_s, "rows": {}},
    }
    for peer, quantization in (("edge-hnsw", "none"), ("edge-int8", "int8")):
        base = replace(built, quantization=quantization)
        result[peer]["rows"]["none"] = sweep(
            lambda ef, kind, base=base: make(replace(base, hnsw_ef=int(ef)), kind), efs, data, "none", args.warmup
        )
        for kind in ("1%", "85%"):  # VISEARCH_FILTERED_SEARCH=index: the engine's own plan
            result[peer]["rows"][kind] = sweep(
                lambda ef, kind, base=base: make(replace(base, hnsw_ef=int(ef), filtered="index"), kind),
                efs,
                data,
                kind,
                args.warmup,
            )
    result["edge-int8-engine"] = {"build_s": upsert_s + optimize_s, "rows": {}}
    result["edge-int8-engine"]["rows"]["none"] = sweep(
        lambda ef, kind: engine_call(store, replace(built, hnsw_ef=int(ef)), numbers), efs, data, "none", args.warmup
    )
    loop.run_until_complete(store.close())
    loop.close()
    return result


def engine_call(store: Any, index: Any, numbers: dict[str, int]) -> Callable[[np.ndarray, int], list[int]]:
    """The engine's own search call on the store's shard, from this thread, without payloads: what is
    left of edge's latency without visearch's async path (worker thread, filters, `Hit` objects)."""
    from qdrant_edge import Query, SearchRequest

    from visearch.core.store.edge import search_params

    shard = store._shard  # opened by the searches before; nothing else touches it now

    def search(query: np.ndarray, i: int) -> list[int]:
        request = SearchRequest(
            query=Query.Nearest([float(x) for x in query], using="image"),
            limit=K,
            filter=None,
            params=search_params(False, index),
            with_payload=False,
            with_vector=False,
        )
        return [numbers[str(p.id)] for p in shard.search(request)]

    return search


def child(args: argparse.Namespace) -> int:
    where = Path(args.data)
    data: dict[str, Any] = {k: np.asarray(v) for k, v in load_data(where).items() if k != "vectors"}
    data["truth"] = {kind: np.load(where / f"truth-{kind}.npy") for kind in FILTERS}
    vf = VectorFile(where / "vectors.npy")
    started_rss = round(rss_mb("VmRSS"))
    if args.run_peer == "edge":
        result = run_edge(vf, data, where, args)
    elif args.run_peer == "hnswlib":
        result = run_hnswlib(vf, data, args)
    else:
        result = run_faiss(args.run_peer, vf, data, args)
    result["_process"] = {"rss_at_start_mb": started_rss, "hwm_mb": round(rss_mb("VmHWM"))}
    Path(args.out).write_text(json.dumps(result))
    return 0


# --- report ---------------------------------------------------------------------------------


def operating_point(points: list[dict[str, Any]], target: float) -> dict[str, Any] | None:
    """The fastest (p50) swept setting whose recall@10 reaches `target`."""
    good = [p for p in points if p["recall"] >= target]
    return min(good, key=lambda p: p["p50_ms"]) if good else None


def render(result: dict[str, Any]) -> str:
    lines = []
    for size in result["sizes"]:
        n = size["points"]
        lines.append(f"\n## {n:,} points x {DIM}-d, {size['queries']} queries (filters match {size['match_fraction']})")
        build_rows = []
        for peer, res in size["peers"].items():
            process = res.get("process", {})
            build_rows.append(
                [peer, res.get("build_s"), process.get("VmRSS"), process.get("RssAnon"), res.get("error", "")]
            )
        lines.append(table(["peer", "build s", "peak RSS MB", "peak anon MB", "note"], build_rows))
        rows = []
        for peer, res in size["peers"].items():
            for kind in FILTERS:
                points = res.get("rows", {}).get(kind, [])
                if not points:
                    continue
                cells: list[Any] = [peer, kind]
                for target in TARGETS:
                    point = operating_point(points, target)
                    cells += (
                        [f"{point['p50_ms']:.2f} / {point['p99_ms']:.2f}", str(point["knob"])]
                        if point
                        else [f"max {max(p['recall'] for p in points):.3f}", "-"]
                    )
                rows.append(cells)
        lines.append("")
        lines.append(table(["peer", "filter", "p50 / p99 ms @0.95", "knob", "p50 / p99 ms @0.99", "knob"], rows))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[100_000])
    ap.add_argument("--full", action="store_true", help="100k and 1M points")
    ap.add_argument("--quick", action="store_true", help="5k points, 40 queries (a smoke run)")
    ap.add_argument("--queries", type=int, default=200, help="queries per row (recall and latency)")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--peers", type=lambda s: s.split(","), default=list(PEER_GROUPS))
    ap.add_argument("--m", type=int, default=32, help="HNSW M of every graph peer (visearch's default)")
    ap.add_argument("--ef-construct", type=int, default=100, help="HNSW ef_construct of every graph peer")
    ap.add_argument("--sweep", default="16,32,64,128,256,512,1024", help="search ef values swept")
    ap.add_argument("--nprobe-sweep", default="1,2,4,8,16,32,64,128", help="IVF-PQ nprobe values swept")
    ap.add_argument("--k-factor", type=float, default=8.0, help="IVF-PQ refine: candidates per result re-ranked")
    ap.add_argument("--peer-timeout-s", type=float, default=3600.0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", metavar="FILE", help="write the result as JSON ('-' for stdout)")
    ap.add_argument("--run-peer", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.run_peer:
        return child(args)
    if args.full:
        args.sizes = [100_000, 1_000_000]
    if args.quick:
        args.sizes, args.queries = [5_000], 40
    unknown = [p for p in args.peers if p not in PEER_GROUPS]
    if unknown:
        ap.error(f"unknown peers {unknown}; choose from {sorted(PEER_GROUPS)}")
    info = machine_info(**{name: package_version(name) for name in ("faiss-cpu", "hnswlib")})
    print_machine(info)
    result: dict[str, Any] = {"machine": info, "m": args.m, "ef_construct": args.ef_construct, "sizes": []}
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
        for n in args.sizes:
            where = Path(tmp) / str(n)
            where.mkdir()
            started = time.perf_counter()
            fractions = prepare(n, args.queries, args.seed, where)
            log(
                f"{n:,} points, queries and exact truth ready in {time.perf_counter() - started:.1f}s; filters {fractions}"
            )
            size: dict[str, Any] = {"points": n, "queries": args.queries, "match_fraction": fractions, "peers": {}}
            for group in args.peers:
                if package_version({"edge": "qdrant-edge-py", "hnswlib": "hnswlib"}.get(group, "faiss-cpu")) is None:
                    for peer in PEER_GROUPS[group]:
                        size["peers"][peer] = {"error": 'not installed: pip install -e ".[peers]"'}
                    continue
                log(f"{group}: building and searching {n:,} points ...")
                res = run_group(group, where, args)
                peaks = res.pop("peaks_mb", {})
                if "error" in res:
                    for peer in PEER_GROUPS[group]:
                        size["peers"][peer] = {"error": res["error"], "process": peaks}
                    continue
                process = {**res.pop("_process"), **peaks}
                res.pop("wall_s", None)
                for peer, peer_res in res.items():
                    size["peers"][peer] = {**peer_res, "process": process}
            result["sizes"].append(size)
    print(render(result))
    if args.json:
        dump_json(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
