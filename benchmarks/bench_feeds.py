"""Shop feeds: parse throughput and peak memory, time to a searchable feed, the cost of a no-change sync,
and what a sync running beside searches costs them.

1. A generated N-item (default 100,000) Google Merchant RSS feed, read by visearch's streaming reader
   (defusedxml iterparse, each element dropped once it is a product): the products counted and dropped
   (what the XML reading costs), and kept as `read_catalog` keeps them for the ingest plan; against
   reading the whole document with plain DOM parsers (`xml.dom.minidom`, and ElementTree's `parse`) then walking its items; each in a fresh
   process, so peak RSS (VmHWM) is that parse's own. Ratios are against the DOM parse of the same run.
2. A `--products` (default 1,000) item Merchant feed with one distinct photo each, served with its photos by
   a local HTTP server on 127.0.0.1: `visearch sync URL` (a subprocess, offline encoder, fresh data dir) until
   it exits, then a CLI text search; then the same command again on the unchanged feed (one request, 304).
3. In one process: search latency (text queries through `SearchService`) idle, and while a `FeedSync` re-syncs
   the feed with every price changed (metadata only) and while it indexes a fresh copy (every photo embedded).

    python benchmarks/bench_feeds.py                 # ~5 min on 2 cores
    python benchmarks/bench_feeds.py --quick         # 5,000 items, 100 products
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import REPO_ROOT, machine_info, table

SAMPLE_IMAGES = sorted((REPO_ROOT / "indexer" / "demo_data" / "grocery" / "images").glob("*.jpg"))
WORDS = ["apple", "juice", "milk", "yoghurt", "banana", "pepper", "oat", "organic", "fresh", "pack", "large"]


def merchant_feed(count: int, base: str, price_factor: float = 1.0) -> bytes:
    """An RSS 2.0 Merchant feed of `count` items with the attributes a real one carries."""
    rng = random.Random(7)
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0" xmlns:g="http://base.google.com/ns/1.0">'
        "<channel><title>Shop</title><link>https://shop.example</link>\n"
    ]
    for n in range(count):
        title = " ".join(rng.choice(WORDS) for _ in range(4)).title()
        parts.append(
            f"<item><g:id>SKU-{n}</g:id><title>{title} {n}</title>"
            f"<description>&lt;p&gt;{title}, a product of the shop. &lt;b&gt;Fresh&lt;/b&gt; every day.&lt;/p&gt;</description>"
            f"<link>https://shop.example/p/{n}</link><g:image_link>{base}/img/{n}.jpg</g:image_link>"
            f"<g:price>{(5 + n % 97) * price_factor:.2f} SEK</g:price><g:availability>{'in_stock' if n % 7 else 'out_of_stock'}</g:availability>"
            f"<g:brand>Brand {n % 50}</g:brand><g:product_type>Grocery &gt; Aisle {n % 20} &gt; Shelf {n % 9}</g:product_type>"
            f"<g:item_group_id>G{n // 3}</g:item_group_id><g:color>red</g:color><g:size>M</g:size></item>\n"
        )
    parts.append("</channel></rss>\n")
    return "".join(parts).encode()


PARSERS = {
    "visearch reader, products counted, not kept": """
from visearch.core.catalog.merchant import read_merchant_xml
from visearch.core.catalog.model import CatalogRow
with open(PATH, "rb") as stream:
    items = sum(1 for item in read_merchant_xml(stream, PATH) if isinstance(item, CatalogRow))
""",
    "visearch read_catalog (every product kept)": """
from visearch.core.catalog import read_catalog
catalog = read_catalog(PATH)
items = len(catalog.rows)
""",
    "DOM: xml.dom.minidom.parse, then walk": """
from xml.dom import minidom
doc = minidom.parse(PATH)
items = 0
for item in doc.getElementsByTagName("item"):
    fields = {c.localName: "".join(t.data for t in c.childNodes if t.nodeType == t.TEXT_NODE) for c in item.childNodes if c.nodeType == c.ELEMENT_NODE}
    items += 1
""",
    "tree: ElementTree.parse, then walk": """
from xml.etree import ElementTree
root = ElementTree.parse(PATH).getroot()
items = 0
for item in root.iter("item"):
    fields = {c.tag: "".join(c.itertext()) for c in item}
    items += 1
""",
}


def parse_in_child(code: str, path: Path) -> dict[str, float]:
    """Run one parse in a fresh interpreter; its wall time (parse only) and peak RSS."""
    script = f"""
import json, time
PATH = {str(path)!r}
start = time.perf_counter()
{code}
seconds = time.perf_counter() - start
peak = 0
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        peak = int(line.split()[1]) * 1024
print(json.dumps({{"items": items, "seconds": seconds, "peak": peak}}))
"""
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True, cwd=REPO_ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def baseline_rss() -> int:
    """Peak RSS of an interpreter that imported visearch's catalog readers and parsed nothing."""
    script = (
        "import visearch.core.catalog\n"
        "print([int(l.split()[1])*1024 for l in open('/proc/self/status') if l.startswith('VmHWM:')][0])"
    )
    return int(subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout)


def parse_figures(count: int, work: Path) -> list[dict[str, Any]]:
    path = work / "merchant.xml"
    path.write_bytes(merchant_feed(count, "https://cdn.example"))
    size = path.stat().st_size
    rows = []
    for name, code in PARSERS.items():
        got = parse_in_child(code, path)
        rows.append({"parser": name, **got})
    dom = next(r for r in rows if r["parser"].startswith("DOM"))
    cells = [
        [
            r["parser"],
            f"{r['items']:,}",
            f"{r['seconds']:.2f} s",
            f"{r['items'] / r['seconds']:,.0f}",
            f"{r['peak'] / 2**20:,.0f} MB",
            f"{r['seconds'] / dom['seconds']:.2f}x",
            f"{r['peak'] / dom['peak']:.2f}x",
        ]
        for r in rows
    ]
    print(
        f"\n1. Merchant RSS feed, {count:,} items, {size / 2**20:.0f} MB on disk; "
        f"an interpreter with the readers imported peaks at {baseline_rss() / 2**20:.0f} MB"
    )
    print_rows(["parser", "items", "time", "items/s", "peak RSS", "time vs DOM", "RSS vs DOM"], cells)
    return rows


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def serve_folder(folder: Path) -> tuple[ThreadingHTTPServer, str]:
    """A static file server on 127.0.0.1 (ETag-less: Last-Modified + If-Modified-Since give the 304)."""

    def handler(*args: Any, **kwargs: Any) -> _Quiet:
        return _Quiet(*args, directory=str(folder), **kwargs)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


def distinct_photos(folder: Path, count: int) -> None:
    """`count` distinct JPEGs (a sample photo with a unique mark each): every one is embedded."""
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    bases = [Image.open(p).convert("RGB").resize((256, 256)) for p in SAMPLE_IMAGES]
    for n in range(count):
        image = bases[n % len(bases)].copy()
        ImageDraw.Draw(image).rectangle([0, 0, 12, 12 + n % 200], fill=(n % 256, (n * 7) % 256, (n * 13) % 256))
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=85)
        (folder / f"{n}.jpg").write_bytes(buffer.getvalue())


def cli(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "visearch.indexer.cli", *args], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"visearch {' '.join(args)} failed ({out.returncode}): {out.stderr[-2000:]}")
    return seconds, out.stdout


def sync_figures(products: int, work: Path) -> dict[str, Any]:
    site = work / "site"
    distinct_photos(site / "img", products)
    httpd, base = serve_folder(site)
    (site / "feed.xml").write_bytes(merchant_feed(products, base))
    env = {
        **os.environ,
        "VISEARCH_DATA_DIR": str(work / "cli-data"),
        "VISEARCH_ENCODER": "offline",
        "VISEARCH_BACKEND": os.environ.get("VISEARCH_BACKEND", "onnx-int8"),
    }
    try:
        first, out = cli(["sync", f"{base}/feed.xml", "--quiet"], env)
        searched, _hits = cli(["search", "--text", "apple juice", "--limit", "3"], env)
        again, again_out = cli(["sync", f"{base}/feed.xml", "--quiet"], env)
    finally:
        httpd.shutdown()
    print(
        f"\n2. `visearch sync URL`, {products:,} products with distinct photos served from 127.0.0.1 "
        f"(offline encoder, {env['VISEARCH_BACKEND']}), fresh data dir"
    )
    print_rows(
        ["step", "wall", "per product"],
        [
            [
                "sync (download, parse, fetch + embed every photo, write)",
                f"{first:.1f} s",
                f"{first / products * 1000:.1f} ms",
            ],
            ["then a CLI text search", f"{searched:.1f} s", "-"],
            ["sync again, feed unchanged (one request, 304)", f"{again:.2f} s", "-"],
        ],
    )
    print("   ", out.strip().splitlines()[-1][:160])
    print("   ", again_out.strip().splitlines()[-1][:160])
    return {"products": products, "first_s": first, "search_s": searched, "unchanged_s": again}


async def beside_searches(products: int, work: Path, queries: int) -> list[list[str]]:
    """Text-search latency idle, during a metadata-only re-sync of the searched collection, and during a sync
    that embeds every photo (into a second data directory: the same encoder and cores, the worst case)."""
    from visearch.core.config import load_settings
    from visearch.core.domain import Query
    from visearch.core.encoders.factory import load_encoder
    from visearch.core.ingest.feeds import FeedSync
    from visearch.core.search import SearchService
    from visearch.core.store.factory import open_store

    site = work / "site"
    httpd, base = serve_folder(site)
    url = f"{base}/feed.xml"
    backend = os.environ.get("VISEARCH_BACKEND", "onnx-int8")
    settings = load_settings(data_dir=work / "inproc", encoder="offline", backend=backend)
    other = settings.model_copy(update={"data_dir": work / "inproc-fresh"})
    encoder = await asyncio.to_thread(load_encoder, settings)
    store, fresh_store = open_store(settings), open_store(other)
    rows: list[list[str]] = []
    rng = random.Random(3)
    texts = [f"{rng.choice(WORDS)} {rng.choice(WORDS)}" for _ in range(queries)]
    try:
        (site / "feed.xml").write_bytes(merchant_feed(products, base))
        feeds = FeedSync(encoder, store, settings)
        first = await feeds.run(url)
        if first.outcome != "synced":
            raise SystemExit(f"the in-process sync failed: {first.error}")
        service = SearchService(encoder, store, settings)
        await service.search(Query(text="warm up"))

        async def latencies(sync: Any) -> tuple[list[float], float | None]:
            task = asyncio.create_task(sync()) if sync is not None else None
            found: list[float] = []
            for text in texts:
                start = time.perf_counter()
                await service.search(Query(text=text))
                found.append((time.perf_counter() - start) * 1000)
                if task is not None and task.done():
                    break
            if task is None:
                return found, None
            run = await task
            if run.outcome != "synced":
                raise SystemExit(f"the sync beside the searches did not write: {run.outcome} {run.error}")
            return found, float(run.seconds)

        async def prices_changed() -> Any:
            (site / "feed.xml").write_bytes(merchant_feed(products, base, price_factor=1.1))
            later = time.time() + 5  # a newer Last-Modified than the one the last sync kept
            os.utime(site / "feed.xml", (later, later))
            return await feeds.run(url)

        async def every_photo_embedded() -> Any:
            return await FeedSync(encoder, fresh_store, other).run(url)

        idle, _ = await latencies(None)
        base_p50 = statistics.median(idle)
        rows.append(["idle", f"{len(idle)}", f"{base_p50:.1f}", f"{_p95(idle):.1f}", "1.00x", "-"])
        for name, sync in (
            ("a sync with every price changed (metadata only)", prices_changed),
            ("a sync that embeds every photo", every_photo_embedded),
        ):
            found, seconds = await latencies(sync)
            p50 = statistics.median(found)
            rows.append(
                [
                    name,
                    f"{len(found)}",
                    f"{p50:.1f}",
                    f"{_p95(found):.1f}",
                    f"{p50 / base_p50:.2f}x",
                    f"{seconds:.1f} s",
                ]
            )
        unchanged = await feeds.run(url)
        rows.append(
            [
                f"(a no-change sync: {unchanged.outcome}, {unchanged.requests} request)",
                "-",
                "-",
                "-",
                "-",
                f"{unchanged.seconds * 1000:.0f} ms",
            ]
        )
    finally:
        await store.close()
        await fresh_store.close()
        httpd.shutdown()
    return rows


def print_rows(headers: list[str], rows: list[list[str]]) -> None:
    print(table(headers, rows))


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=100_000, help="items of the parse benchmark's feed")
    parser.add_argument("--products", type=int, default=1_000, help="products of the sync benchmarks' feed")
    parser.add_argument("--queries", type=int, default=400, help="searches per row of the latency table (at most)")
    parser.add_argument("--quick", action="store_true", help="5,000 items, 100 products, 100 queries")
    parser.add_argument("--json", nargs="?", const="-", help="write the figures as JSON (to PATH, or stdout)")
    args = parser.parse_args()
    if args.quick:
        args.items, args.products, args.queries = 5_000, 100, 100
    print(json.dumps(machine_info(), indent=None))
    with tempfile.TemporaryDirectory(prefix="visearch-bench-feeds-") as tmp:
        work = Path(tmp)
        parsed = parse_figures(args.items, work)
        synced = sync_figures(args.products, work)
        rows = asyncio.run(beside_searches(args.products, work, args.queries))
        print(f"\n3. Text-search latency in one process ({args.products:,}-product collection) beside a feed sync")
        print_rows(["while", "queries", "p50 ms", "p95 ms", "p50 vs idle", "sync took"], rows)
    if args.json:
        data = json.dumps({"parse": parsed, "sync": synced, "beside": rows}, indent=2)
        if args.json == "-":
            print(data)
        else:
            Path(args.json).write_text(data)


if __name__ == "__main__":
    main()
