"""How long `visearch optimize` takes to build HNSW + int8, how much memory it needs, and the
recall it gives (issue 18, part 3).

Steps, for N points (1M by default) of `bench_search`'s clustered 512-d vectors and realistic
payloads (1-3 photos per product, seven indexed payload fields):

1. this process upserts them into the embedded store (`EdgeStore.upsert`, batches of 1,000,
   what `visearch index` does after encoding) and closes it;
2. for each build config, a copy of that collection is optimized by the real command, in a
   process of its own: `VISEARCH_QUANTIZATION=int8 ... visearch optimize --json`. This process
   polls the child's /proc status every 0.2 s for peak VmRSS, RssAnon (memory the build cannot
   give back) and RssFile (pages of the segment files the engine memory-maps: page cache,
   reclaimable). With `--memory-cap-gb`, the child runs in a memory cgroup capped at that size
   (cgroup v1 or v2, needs write access to /sys/fs/cgroup; refused with a clear message when
   there is none): proof that the build fits, page cache included;
3. the built store is searched with a sweep of `hnsw_ef`, int8 (rescored, oversampling 2) and
   float, for recall@10 against numpy's exact top 10 and p50/p99 latency.

    python benchmarks/bench_build.py                           # 1M, the default config
    python benchmarks/bench_build.py --configs default,m16,payload-links --memory-cap-gb 4
    python benchmarks/bench_build.py --points 100000 --configs default,payload-links
    python benchmarks/bench_build.py --quick                   # 5k points (a smoke run)

Configs: `default` (visearch's defaults: m 32, ef_construct 100, no payload-aware links with exact
filtered searches), `m16` (m 16), `payload-links` (m 16 with payload-aware links: the engine's
own default, and visearch's before issue 18), `efc200` (ef_construct 200).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common  # noqa: F401  (puts the repo root on sys.path)
import numpy as np
from _common import dump_json, latency_stats_ms, log, machine_info, print_machine, run_watched, table
from bench_search import COLLECTION, DIM, ENCODER_ID, make_dataset, make_queries, open_edge, rss_mb

from visearch.core.domain import PointRecord
from visearch.core.store.base import IndexSettings
from visearch.core.store.edge import EdgeStore

K = 10
#: environment of `visearch optimize` per config, on top of VISEARCH_QUANTIZATION=int8
CONFIGS: dict[str, dict[str, str]] = {
    "default": {},
    "m16": {"VISEARCH_HNSW_M": "16"},
    "payload-links": {"VISEARCH_HNSW_M": "16", "VISEARCH_HNSW_PAYLOAD_M": "16"},
    "efc200": {"VISEARCH_HNSW_EF_CONSTRUCT": "200"},
}
MEMORY_CGROUP = "visearch-bench-build"


async def upsert_all(where: Path, n: int, seed: int, batch: int) -> tuple[np.ndarray, list[str], float]:
    """The collection `visearch index` would leave (unindexed); returns the vectors, ids and seconds."""
    ids, payloads, vectors = make_dataset(n, seed)
    store = open_edge(where)
    started = time.perf_counter()
    await store.ensure_collection(ENCODER_ID, DIM, recreate=True)
    for start in range(0, n, batch):
        stop = min(start + batch, n)
        await store.upsert(
            [PointRecord(id=ids[i], vector=vectors[i].tolist(), payload=payloads[i]) for i in range(start, stop)]
        )
    await store.finish_rebuild(commit=True)
    await store.close()
    return vectors, ids, time.perf_counter() - started


def exact_top10(vectors: np.ndarray, queries: np.ndarray, chunk: int = 100_000) -> np.ndarray:
    """Exact top-10 point numbers per query by numpy (unit vectors: inner product = cosine)."""
    scores = np.concatenate([queries @ vectors[s : s + chunk].T for s in range(0, len(vectors), chunk)], axis=1)
    return np.argsort(-scores, axis=1)[:, :K]


# --- memory ---------------------------------------------------------------------------------


def memory_cgroup(cap_gb: float) -> Path:
    """A memory cgroup capped at `cap_gb` (v2 `memory.max`, else v1 `memory.limit_in_bytes`)."""
    limit = str(int(cap_gb * 1024**3))
    for root, knob in (
        (Path("/sys/fs/cgroup"), "memory.max"),
        (Path("/sys/fs/cgroup/memory"), "memory.limit_in_bytes"),
    ):
        if knob == "memory.max" and not (root / "cgroup.controllers").exists():
            continue
        if not (root / "cgroup.procs").exists():
            continue
        group = root / MEMORY_CGROUP
        try:
            group.mkdir(exist_ok=True)
            (group / knob).write_text(limit)
        except OSError as exc:
            raise SystemExit(f"--memory-cap-gb needs write access to {root} ({exc}); run without it") from exc
        return group
    raise SystemExit("--memory-cap-gb: no memory cgroup here (neither v2 nor v1); run without it")


def optimize(base: Path, where: Path, config: str, cgroup: Path | None) -> dict[str, Any]:
    """`visearch optimize --json` on a copy of `base` at `where`, in its own process; its report,
    seconds and memory. In a memory cgroup the copy is made inside it, so every page of the
    collection the build touches is charged to the cap (page cache is charged to whoever first
    reads or writes it)."""
    env = {
        **os.environ,
        "VISEARCH_DATA_DIR": str(where),
        "VISEARCH_COLLECTION": COLLECTION,
        "VISEARCH_QUANTIZATION": "int8",
        **CONFIGS[config],
    }
    cli = Path(sys.executable).with_name("visearch")
    command = [str(cli), "optimize", "--json"]
    if cgroup is None:
        shutil.copytree(base, where)
    else:  # the shell joins the group, copies, then becomes visearch: all of it is capped
        join = f'echo $$ > {cgroup}/cgroup.procs && cp -r "$0" "$1" && shift && exec "$@"'
        command = ["sh", "-c", join, str(base), str(where), *command]
    run = run_watched(command, env=env)
    if run.returncode != 0:
        raise SystemExit(f"visearch optimize ({config}) failed with exit code {run.returncode}")
    return {"process_s": run.seconds, "report": json.loads(run.stdout), "peak_mb": run.peaks_mb}


# --- recall ---------------------------------------------------------------------------------


async def sweep(
    where: Path, queries: np.ndarray, truth: np.ndarray, ids: list[str], efs: list[int]
) -> list[dict[str, Any]]:
    """Recall@10 and latency of unfiltered search per ef, int8 and float, on the built store."""
    number = {pid: i for i, pid in enumerate(ids)}
    store = EdgeStore(where, COLLECTION, IndexSettings(quantization="int8"))
    rows = []
    try:
        for ef in efs:
            for quantization in ("int8", "none"):
                store.index = IndexSettings(quantization=quantization, hnsw_ef=ef)
                for q in queries[-5:]:
                    await store.search(q.tolist(), None, K)
                seconds, recall = [], []
                for q, want in zip(queries, truth, strict=True):
                    started = time.perf_counter()
                    hits = await store.search(q.tolist(), None, K)
                    seconds.append(time.perf_counter() - started)
                    recall.append(len({number[h.point_id] for h in hits} & {int(x) for x in want}) / K)
                rows.append(
                    {"ef": ef, "vectors": quantization, "recall": float(np.mean(recall)), **latency_stats_ms(seconds)}
                )
                log(f"  ef {ef} {quantization}: recall@10 {rows[-1]['recall']:.3f}, p50 {rows[-1]['p50_ms']:.2f} ms")
    finally:
        await store.close()
    return rows


def render(result: dict[str, Any]) -> str:
    lines = [
        f"{result['points']:,} points x {DIM}-d: upserted in {result['upsert_s']:.0f}s "
        f"({result['points'] / result['upsert_s']:,.0f} points/s); memory cap: {result['memory_cap_gb'] or 'none'}",
        "",
    ]
    rows = []
    for name, res in result["configs"].items():
        s = res["report"]["settings"]
        rows.append(
            [
                name,
                f"m {s['hnsw_m']}, efc {s['hnsw_ef_construct']}, payload_m {s['payload_links']}",
                res["report"]["seconds"],
                res["process_s"],
                res["peak_mb"].get("VmRSS"),
                res["peak_mb"].get("RssAnon"),
                res["peak_mb"].get("RssFile"),
            ]
        )
    lines.append(
        table(["config", "settings", "build s", "process s", "peak RSS MB", "peak anon MB", "peak file MB"], rows)
    )
    lines.append("")
    rows = []
    for name, res in result["configs"].items():
        for row in res["recall"]:
            rows.append([name, row["ef"], row["vectors"], row["recall"], row["p50_ms"], row["p99_ms"]])
    lines.append(table(["config", "ef", "vectors", "recall@10", "p50 ms", "p99 ms"], rows))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--quick", action="store_true", help="5k points, 20 queries (a smoke run)")
    ap.add_argument("--configs", type=lambda s: s.split(","), default=["default"], help=f"of {sorted(CONFIGS)}")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--efs", type=lambda s: [int(x) for x in s.split(",")], default=[64, 128, 256, 512])
    ap.add_argument("--batch", type=int, default=1000, help="points per upsert call")
    ap.add_argument("--memory-cap-gb", type=float, default=None, help="run each build in a memory cgroup this size")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", metavar="FILE", help="write the result as JSON ('-' for stdout)")
    args = ap.parse_args(argv)
    if args.quick:
        args.points, args.queries = 5_000, 20
    unknown = [c for c in args.configs if c not in CONFIGS]
    if unknown:
        ap.error(f"unknown configs {unknown}; choose from {sorted(CONFIGS)}")
    cgroup = memory_cgroup(args.memory_cap_gb) if args.memory_cap_gb else None
    info = machine_info()
    print_machine(info)
    result: dict[str, Any] = {
        "machine": info,
        "points": args.points,
        "memory_cap_gb": args.memory_cap_gb,
        "configs": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-build-") as tmp:
        base = Path(tmp) / "base"
        vectors, ids, result["upsert_s"] = asyncio.run(upsert_all(base, args.points, args.seed, args.batch))
        log(f"{args.points:,} points upserted in {result['upsert_s']:.1f}s; this process's RSS {rss_mb():,.0f} MB")
        queries = make_queries(args.queries, args.seed + 1)
        truth = exact_top10(vectors, queries)
        del vectors
        for name in args.configs:
            where = Path(tmp) / name
            log(f"{name}: visearch optimize {CONFIGS[name] or '(defaults)'} ...")
            res = optimize(base, where, name, cgroup)
            log(f"{name}: built in {res['report']['seconds']:.1f}s; peaks {res['peak_mb']}")
            res["recall"] = asyncio.run(sweep(where, queries, truth, ids, args.efs))
            result["configs"][name] = res
            shutil.rmtree(where)
    print(render(result))
    if args.json:
        dump_json(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
