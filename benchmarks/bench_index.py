"""Indexing throughput: the bundled sample catalog, offline encoder, temp embedded store.

Runs `visearch.core.ingest.index_catalog` (what `visearch index` calls) twice on
indexer/demo_data/grocery/catalog.csv (81 products, one photo each):

* first run  - empty store: fetch/decode, embed, upsert everything (products/s, images/s, wall s);
* second run - same catalog again, store closed and reopened in between (as a second
  `visearch index` would): unchanged products should be skipped, so almost no work (wall s).

    python benchmarks/bench_index.py             # full sample (81 products)
    python benchmarks/bench_index.py --quick     # first 10 products
    python benchmarks/bench_index.py --catalog my.csv --threads 2 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import dataclasses
import io
import sys
import tempfile
import time
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


def pick(d: dict[str, Any], *names: str) -> Any:
    for name in names:
        if isinstance(d.get(name), (int, float)) and not isinstance(d.get(name), bool):
            return d[name]
    return None


def load_offline(settings: Any) -> Any:
    """As the CLI loads it (the factory); the class directly if the factory is not there yet."""
    try:
        from visearch.core.encoders.factory import load_encoder
    except ImportError:
        from visearch.core.encoders.offline import OfflineEncoder

        return OfflineEncoder(device=settings.device, batch_size=settings.batch_size)
    return load_encoder(settings)


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from visearch.core.config import load_settings
    from visearch.core.ingest import index_catalog
    from visearch.core.store.factory import open_store

    catalog = args.catalog if not args.quick else subset_catalog(args.catalog, tmp, 10)
    products, images = catalog_counts(catalog)
    settings = load_settings(
        encoder="offline", data_dir=tmp / "data", collection="bench", torch_threads=args.threads, _env_file=None
    )
    t0 = time.perf_counter()
    encoder = await asyncio.to_thread(load_offline, settings)
    load_s = time.perf_counter() - t0
    import torch

    torch.set_num_threads(args.threads or torch.get_num_threads())
    threads = torch.get_num_threads()
    log(f"encoder {encoder.model_id} loaded in {load_s:.1f}s, torch threads {threads}")

    runs = []
    for label in ("first", "second"):
        store = open_store(settings)
        t0 = time.perf_counter()
        summary = await index_catalog(catalog, encoder, store, settings)
        wall = time.perf_counter() - t0
        tc = time.perf_counter()
        await store.close()
        close_s = time.perf_counter() - tc
        s = summary_dict(summary)
        embedded = pick(
            s, "indexed", "images_embedded", "embedded", "images_encoded", "encoded", "points_written", "upserted"
        )
        runs.append(
            {
                "run": label,
                "wall_s": wall,
                "close_s": close_s,
                "products": products,
                "images_in_catalog": images,
                "images_embedded": embedded,
                "summary": s,
            }
        )
        log(f"{label} run: {wall:.2f}s wall; summary {s}")
    return {
        "catalog": str(catalog if not args.quick else f"{args.catalog} (first 10 rows)"),
        "products": products,
        "images": images,
        "encoder": encoder.model_id,
        "encoder_load_s": load_s,
        "torch_threads": threads,
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
        f"indexing {result['catalog']}: {result['products']} products, {result['images']} images; "
        f"encoder {result['encoder']} (loaded in {result['encoder_load_s']:.1f}s, not in wall), "
        f"torch threads {result['torch_threads']}",
        file=out,
    )
    print(table(["run", "wall s", "products", "products/s", "images embedded", "images/s", "close s"], rows), file=out)
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
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1, the project default)")
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

    configured = load_settings(_env_file=None)
    info = machine_info(
        torch_threads=args.threads,
        backend=configured.backend,
        device=describe_device(configured.backend, configured.device),
    )
    with tempfile.TemporaryDirectory(prefix="visearch-bench-index-") as tmp:
        result = asyncio.run(run(args, Path(tmp)))
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
