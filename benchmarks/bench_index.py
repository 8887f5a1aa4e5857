"""Indexing throughput: a catalog through the ingest pipeline, offline encoder, temp embedded store.

Runs `visearch.core.ingest.index_catalog` (what `visearch index` calls) twice, the encoder loaded
and warmed first (its load time is printed apart, not in the wall time):

* first run  - empty store: fetch, decode, embed, upsert everything (products/s, images/s, wall s),
  with the seconds each pipeline stage spent (summed over the workers that run at once) and the
  peak RSS the run added;
* second run - same catalog again, store closed and reopened in between (as a second
  `visearch index` would): unchanged products are skipped, so almost no work (wall s).

The catalog is the bundled sample (81 products, one photo each), a CSV of your own, or `--photos`:
one product per photo of a folder (e.g. the GroceryStoreDataset's 2,640 in-store photos in
../shared/datasets), the sample's titles and descriptions cycled over them so the words cost what
a real catalog's do. `--http-latency-ms` serves the photos from a local HTTP server (127.0.0.1, a
separate process) that waits that long before each answer, and indexes them by URL.

    python benchmarks/bench_index.py                         # the sample (81 products)
    python benchmarks/bench_index.py --quick                 # first 10 products
    python benchmarks/bench_index.py --photos ../shared/datasets/grocery/train --limit 1000
    python benchmarks/bench_index.py --photos ../shared/datasets/grocery/train --limit 1000 --http-latency-ms 20
    python benchmarks/bench_index.py --catalog my.csv --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import dataclasses
import http.server
import io
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _common
from _common import dump_json, machine_info, print_machine, table

SAMPLE = _common.REPO_ROOT / "indexer" / "demo_data" / "grocery" / "catalog.csv"


def log(msg: str) -> None:
    print(f"[bench_index {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def summary_dict(summary: Any) -> dict[str, Any]:
    """The IndexSummary as a plain dict, whatever kind of object it is."""
    if hasattr(summary, "counts"):
        return {
            **summary.counts(),
            "ok": getattr(summary, "ok", None),
            "problems": [str(p) for p in getattr(summary, "problems", [])],
        }
    if hasattr(summary, "model_dump"):
        data = summary.model_dump()
    elif dataclasses.is_dataclass(summary):
        data = dataclasses.asdict(summary)
    else:
        data = {k: v for k, v in vars(summary).items() if not k.startswith("_")}
    return {k: v for k, v in data.items() if isinstance(v, (int, float, str, bool, type(None))) or k == "problems"}


def catalog_counts(path: Path) -> tuple[int, int]:
    """Products and image references in a CSV catalog (images separated by '|')."""
    with path.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    images = sum(len([i for i in (r.get("image") or r.get("images") or "").split("|") if i.strip()]) for r in rows)
    return len(rows), images


def subset_catalog(src: Path, dst_dir: Path, n: int) -> Path:
    """The first `n` rows of a CSV catalog, written to dst_dir with image paths made absolute."""
    with src.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        fields = list(reader.fieldnames or [])
        rows = list(reader)[:n]
    for row in rows:
        refs = [r.strip() for r in (row.get("image") or "").split("|") if r.strip()]
        row["image"] = "|".join(
            r if "://" in r or Path(r).is_absolute() else str((src.parent / r).resolve()) for r in refs
        )
    out = dst_dir / "catalog.csv"
    with out.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return out


def photo_catalog(photos: Path, dst_dir: Path, limit: int, base_url: str | None) -> Path:
    """One product per photo under `photos` (sorted, the first `limit`), the sample's metadata cycled
    over them (ids made unique), image refs absolute paths or, with `base_url`, URLs."""
    files = sorted(p for p in photos.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp"})[:limit]
    if not files:
        raise SystemExit(f"no photos under {photos}")
    with SAMPLE.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        fields = list(reader.fieldnames or [])
        sample = list(reader)
    out = dst_dir / "catalog.csv"
    with out.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        for n, photo in enumerate(files):
            row = dict(sample[n % len(sample)])
            row["id"] = f"{row['id']}-{n}"
            rel = photo.relative_to(photos).as_posix()
            row["image"] = f"{base_url}/{rel}" if base_url else str(photo.resolve())
            writer.writerow(row)
    return out


class _SlowFiles(http.server.SimpleHTTPRequestHandler):
    """Static files, each answer after `latency_s` (a CDN's round trip)."""

    latency_s = 0.0
    protocol_version = "HTTP/1.1"  # keep-alive, as a CDN does

    def do_GET(self) -> None:
        time.sleep(self.latency_s)
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _serve_files(root: str, latency_s: float, port_out: Any) -> None:
    handler = type("Handler", (_SlowFiles,), {"latency_s": latency_s})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: handler(*a, directory=root))
    port_out.put(server.server_address[1])
    server.serve_forever()


@contextlib.contextmanager
def slow_file_server(root: Path, latency_ms: float) -> Iterator[str]:
    """A local HTTP server (own process, so it takes no CPU from the pipeline's) serving `root`."""
    ctx = multiprocessing.get_context("spawn")
    port_out = ctx.Queue()
    proc = ctx.Process(target=_serve_files, args=(str(root), latency_ms / 1000.0, port_out), daemon=True)
    proc.start()
    try:
        yield f"http://127.0.0.1:{port_out.get(timeout=30)}"
    finally:
        proc.terminate()
        proc.join(5)


def rss_bytes() -> int:
    """This process's resident set size now (Linux /proc; 0 elsewhere)."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


@contextlib.contextmanager
def peak_rss() -> Iterator[dict[str, int]]:
    """Samples RSS every 20 ms while the block runs: {"before", "peak"} in bytes."""
    seen = {"before": rss_bytes(), "peak": rss_bytes()}
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            seen["peak"] = max(seen["peak"], rss_bytes())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield seen
    finally:
        done.set()
        sampler.join()
        seen["peak"] = max(seen["peak"], rss_bytes())


def pick(d: dict[str, Any], *names: str) -> Any:
    for name in names:
        if isinstance(d.get(name), (int, float)) and not isinstance(d.get(name), bool):
            return d[name]
    return None


def load_offline(settings: Any) -> Any:
    """As the CLI loads it (the factory), every part warmed (parts load on first use)."""
    from PIL import Image

    from visearch.core.encoders.factory import load_encoder

    encoder = load_encoder(settings)
    encoder.embed_images([Image.new("RGB", (64, 64), (128, 128, 128))])
    encoder.embed_texts(["warm-up"])
    return encoder


async def run(args: argparse.Namespace, tmp: Path, base_url: str | None) -> dict[str, Any]:
    from visearch.core.config import encoder_workers, load_settings
    from visearch.core.ingest import index_catalog
    from visearch.core.store.factory import open_store

    if args.photos is not None:
        catalog = photo_catalog(args.photos, tmp, args.limit, base_url)
    elif args.quick:
        catalog = subset_catalog(args.catalog, tmp, 10)
    else:
        catalog = args.catalog
    products, images = catalog_counts(catalog)
    settings = load_settings(encoder="offline", data_dir=tmp / "data", collection="bench", _env_file=None)
    t0 = time.perf_counter()
    encoder = await asyncio.to_thread(load_offline, settings)
    load_s = time.perf_counter() - t0
    log(f"encoder {encoder.model_id} loaded and warmed in {load_s:.1f}s, {encoder_workers(settings)} embed workers")

    runs = []
    for label in ("first", "second"):
        store = open_store(settings)
        with peak_rss() as rss:
            t0 = time.perf_counter()
            summary = await index_catalog(catalog, encoder, store, settings)
            wall = time.perf_counter() - t0
        tc = time.perf_counter()
        await store.close()
        close_s = time.perf_counter() - tc
        s = summary_dict(summary)
        runs.append(
            {
                "run": label,
                "wall_s": wall,
                "close_s": close_s,
                "products": products,
                "images_in_catalog": images,
                "images_embedded": pick(s, "indexed"),
                "stage_seconds": dict(getattr(summary, "seconds", {})),
                "rss_before_mb": rss["before"] / 2**20,
                "rss_peak_mb": rss["peak"] / 2**20,
                "summary": s,
            }
        )
        log(f"{label} run: {wall:.2f}s wall; summary {s}")
    return {
        "catalog": str(catalog if not args.quick else f"{args.catalog} (first 10 rows)"),
        "source": f"HTTP, {args.http_latency_ms:g} ms per image" if base_url else "local files",
        "products": products,
        "images": images,
        "encoder": encoder.model_id,
        "encoder_load_s": load_s,
        "embed_workers": encoder_workers(settings),
        "batch_size": settings.batch_size,
        "fetch_concurrency": settings.fetch_concurrency,
        "runs": runs,
    }


def render(result: dict[str, Any]) -> str:
    out = io.StringIO()
    rows = []
    for r in result["runs"]:
        imgs = (
            r["images_embedded"]
            if r["images_embedded"] is not None
            else (r["images_in_catalog"] if r["run"] == "first" else None)
        )
        rows.append(
            [
                r["run"],
                r["wall_s"],
                r["products"],
                r["products"] / r["wall_s"],
                imgs,
                (imgs / r["wall_s"]) if imgs is not None else None,
                r["close_s"],
            ]
        )
    print(
        f"indexing {result['catalog']} ({result['source']}): {result['products']} products, "
        f"{result['images']} images; encoder {result['encoder']} (loaded and warmed in "
        f"{result['encoder_load_s']:.1f}s, not in wall); {result['embed_workers']} embed workers, "
        f"batch {result['batch_size']}, {result['fetch_concurrency']} fetches at once",
        file=out,
    )
    print(
        table(
            ["run", "wall s", "products", "products/s", "images embedded", "images/s", "close s", "RSS peak MB", "+MB"],
            [
                [*row, r["rss_peak_mb"], r["rss_peak_mb"] - r["rss_before_mb"]]
                for row, r in zip(rows, result["runs"], strict=True)
            ],
        ),
        file=out,
    )
    first = result["runs"][0]
    busy = sum(first["stage_seconds"].values())
    if busy:
        print("first run, seconds per stage (summed over workers; share of all stage time):", file=out)
        stages = [[name, spent, f"{spent / busy * 100:.0f}%"] for name, spent in first["stage_seconds"].items()]
        print(table(["stage", "s", "share"], stages), file=out)
    first, second = result["runs"][0], result["runs"][1]
    print(f"second run / first run wall: {second['wall_s'] / first['wall_s'] * 100:.1f}%", file=out)
    for r in result["runs"]:
        keys = ", ".join(f"{k}={v}" for k, v in r["summary"].items() if k != "problems")
        print(f"  {r['run']} summary: {keys}", file=out)
        for problem in r["summary"].get("problems", [])[:5]:
            print(f"    problem: {problem}", file=out)
    print(f"total runtime {result['runtime_s']:.0f}s", file=out)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke test: the first 10 products only")
    ap.add_argument("--catalog", type=Path, default=SAMPLE)
    ap.add_argument("--photos", type=Path, default=None, help="a folder of photos: one product per photo")
    ap.add_argument("--limit", type=int, default=1000, help="with --photos: this many photos at most (default 1000)")
    ap.add_argument(
        "--http-latency-ms",
        type=float,
        default=None,
        help="serve the photos over HTTP on 127.0.0.1 with this latency per image (needs --photos)",
    )
    ap.add_argument(
        "--json",
        nargs="?",
        const="-",
        default=None,
        metavar="PATH",
        help="write JSON results to PATH, or to stdout (tables then go to stderr)",
    )
    args = ap.parse_args(argv)

    started = time.perf_counter()
    from visearch.core.config import load_settings
    from visearch.core.runtime.devices import describe_device

    if args.http_latency_ms is not None and args.photos is None:
        ap.error("--http-latency-ms serves the photos of --photos")
    configured = load_settings(_env_file=None)
    info = machine_info(backend=configured.backend, device=describe_device(configured.backend, configured.device))
    with tempfile.TemporaryDirectory(prefix="visearch-bench-index-") as tmp, contextlib.ExitStack() as stack:
        base_url = None
        if args.http_latency_ms is not None:
            base_url = stack.enter_context(slow_file_server(args.photos.resolve(), args.http_latency_ms))
        result = asyncio.run(run(args, Path(tmp), base_url))
    result.update(
        {"benchmark": "index", "quick": args.quick, "machine": info, "runtime_s": time.perf_counter() - started}
    )
    stream = sys.stderr if args.json == "-" else sys.stdout
    with contextlib.redirect_stdout(stream):
        print_machine(info)
        print(render(result))
    if args.json is not None:
        dump_json(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
