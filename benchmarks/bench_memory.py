"""Memory of the serving process: RSS at idle and after 10,000 queries, sampled every 1,000.

What a long-running `visearch serve` holds beyond its models and its collection is caches:
"Show more" cursors (bounded: VISEARCH_MAX_CURSORS, VISEARCH_CURSOR_TTL), the facets cache, ONNX Runtime / torch arenas.
This runs the search service the way the server does (one `SearchService`, the bundled 81-product
grocery catalog on the embedded store, the offline encoder) and sends it a mix that touches every
cache: real in-store photos (`../shared/datasets/grocery/val`), text queries, "more like this",
and "Show more" pages of earlier answers. RSS (VmRSS, from /proc) is read at idle (encoder and
store loaded, one query answered) and after every 1,000 queries; growth is measured from the
first 1,000 (arenas and caches warmed up) to the end. No figure is asserted; the table is printed.

    python benchmarks/bench_memory.py                         # 10,000 queries, onnx-int8 encoder
    python benchmarks/bench_memory.py --queries 2000 --backend torch
    python benchmarks/bench_memory.py --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import build_sample_collection, dump_json, grocery_val_photos, machine_info, print_machine, table

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from visearch.core.config import load_settings
from visearch.core.domain import Query
from visearch.core.encoders.factory import load_encoder
from visearch.core.search import SearchService
from visearch.core.store.factory import open_store

TEXTS = [
    "green apple",
    "oat milk",
    "red pepper",
    "banana",
    "orange juice",
    "yoghurt",
    "mushrooms",
    "tomato",
    "sour cream",
    "ginger",
    "lemon",
    "avocado",
    "soy milk",
    "potato",
    "pear",
]


def rss_mb() -> float:
    """Resident memory of this process now, in MB."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def next_query(i: int, photos: list[bytes], last_cursor: str | None, point_ids: list[str]) -> Query:
    """The i-th query of the mix: 50% photos, 25% texts, 15% more-like-this, 10% next pages."""
    slot = i % 20
    if slot < 10:
        return Query(images=[photos[i % len(photos)]], limit=3)
    if slot < 15:
        return Query(text=TEXTS[i % len(TEXTS)], limit=3)
    if slot < 18 or last_cursor is None:
        return Query(similar_to=point_ids[i % len(point_ids)], limit=3)
    return Query(cursor=last_cursor, limit=3)


async def run(args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    settings = load_settings(data_dir=data_dir, encoder="offline", collection="memory", backend=args.backend)
    encoder = load_encoder(settings)
    await build_sample_collection(settings, encoder)
    store = open_store(settings)
    service = SearchService(encoder, store, settings)
    photos = grocery_val_photos(40)
    try:
        first = await service.search(Query(images=[photos[0]], limit=3))
        point_ids = [card.point_id for card in first.cards]
        if not point_ids:
            raise SystemExit("the first photo found nothing: the catalog or encoder is not what this benchmark expects")
        gc.collect()
        samples: list[dict[str, Any]] = [{"queries": 0, "rss_mb": rss_mb(), "cursors": len(service._cursors)}]
        last_cursor: str | None = None
        started = time.perf_counter()
        for i in range(1, args.queries + 1):
            result = await service.search(next_query(i, photos, last_cursor, point_ids))
            if result.next_cursor:
                last_cursor = result.next_cursor
            if result.cards and i % 7 == 0:
                point_ids.append(result.cards[0].point_id)
                del point_ids[:-50]
            if i % args.every == 0:
                samples.append(
                    {
                        "queries": i,
                        "rss_mb": rss_mb(),
                        "cursors": len(service._cursors),
                        "elapsed_s": time.perf_counter() - started,
                    }
                )
    finally:
        await service.close()
    return {
        "samples": samples,
        "encoder": encoder.model_id,
        "backend": args.backend,
        "max_cursors": settings.max_cursors,
    }


def growth_line(label: str, start: dict[str, Any], end: dict[str, Any]) -> str:
    queries = end["queries"] - start["queries"]
    grown = end["rss_mb"] - start["rss_mb"]
    return (
        f"growth {label}: {grown:+.1f} MB over {queries:,} queries ({grown / max(1, queries / 1000):+.2f} MB per 1,000)"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=10_000)
    ap.add_argument("--every", type=int, default=1_000, help="queries between two RSS samples")
    ap.add_argument("--backend", default="onnx-int8", help="VISEARCH_BACKEND: torch, onnx or onnx-int8")
    ap.add_argument("--json", nargs="?", const="-", default=None, help="write JSON to PATH (no PATH: stdout)")
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="visearch-memory-bench-"))
    try:
        result = asyncio.run(run(args, tmp / "data"))
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp)
    samples = result["samples"]
    info = machine_info(
        encoder=result["encoder"], backend=result["backend"], catalog="bundled grocery sample (81 products)"
    )
    out = sys.stderr if args.json == "-" else sys.stdout
    with contextlib.redirect_stdout(out):
        print_machine(info)
    idle = samples[0]["rss_mb"]
    rows = [
        [s["queries"], f"{s['rss_mb']:.0f}", f"{s['rss_mb'] - idle:+.0f}", s["cursors"], f"{s.get('elapsed_s', 0):.0f}"]
        for s in samples
    ]
    print(table(["queries", "RSS MB", "vs idle", "cursors held", "elapsed s"], rows), file=out)
    if len(samples) > 2:
        warm, last = samples[1], samples[-1]
        print(growth_line(f"after the first {warm['queries']:,} queries", warm, last), file=out)
        full = next((x for x in samples if x["cursors"] >= result["max_cursors"]), None)
        if full is not None and full is not last:  # the bounded caches are full from here on
            print(growth_line(f"once the cursor cache was full ({full['queries']:,} queries)", full, last), file=out)
    if args.json:
        dump_json({"machine": info, **result}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
