"""Cold start: how long each `visearch` command takes from the shell prompt to its answer.

Every command runs as a fresh process (what a shop owner types), on the bundled 81-product sample
indexed once into a temporary data directory. For each backend (`onnx`, the default, and `torch`,
the default before issue 18, as the baseline) and each command:

* cold - the first run with an empty VISEARCH_ONNX_CACHE (the ONNX exports are made then);
* warm - the median of `--repeat` runs once the cache holds the exports.

Commands: a text search, a photo search, `stats`, `delete` of one product (on a copy of the
collection), a search against a collection built by another encoder (the mismatch error), a photo
search naming a missing file, and `visearch serve` until /readyz answers 200 (polled over
127.0.0.1 every 20 ms). The OS file cache stays warm throughout (dropping it needs root): "cold"
means cold for visearch, not for the disk.

    python benchmarks/bench_cold_start.py              # both backends, 3 warm runs each
    python benchmarks/bench_cold_start.py --quick      # onnx only, 1 warm run
    python benchmarks/bench_cold_start.py --json cold.json
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import _common
from _common import dump_json, machine_info, print_machine, table

SAMPLE = _common.REPO_ROOT / "indexer" / "demo_data" / "grocery"
VISEARCH = [sys.executable, "-m", "visearch.indexer.cli"]


def log(msg: str) -> None:
    print(f"[bench_cold_start {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def timed(args: list[str], env: dict[str, str], expect: int = 0) -> float:
    """Seconds one `visearch` command takes; its exit status must be `expect`."""
    start = time.perf_counter()
    done = subprocess.run([*VISEARCH, *args], env=env, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - start
    if done.returncode != expect:
        raise SystemExit(f"`visearch {' '.join(args)}` exited {done.returncode}, expected {expect}:\n{done.stderr}")
    return elapsed


def serve_ready(env: dict[str, str]) -> float:
    """Seconds from starting `visearch serve` to its first 200 from /readyz."""
    port = free_port()
    # stderr to a file, not a pipe: a chatty server never blocks on it
    with tempfile.TemporaryFile() as errors:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [*VISEARCH, "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=errors
        )
        try:
            while time.perf_counter() - start < 300:
                if proc.poll() is not None:
                    errors.seek(0)
                    raise SystemExit(
                        f"visearch serve exited {proc.returncode}: {errors.read().decode(errors='replace')}"
                    )
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
                        if response.status == 200:
                            return time.perf_counter() - start
                except OSError:
                    pass
                time.sleep(0.02)
            raise SystemExit("visearch serve was not ready within 300 s")
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def commands(data: Path) -> dict[str, tuple[list[str], dict[str, str], int]]:
    """name -> (arguments, extra environment, expected exit status)."""
    photo = str(SAMPLE / "queries" / "banana.jpg")
    return {
        "search --text": (["search", "--text", "orange juice"], {}, 0),
        "search --image": (["search", "--image", photo], {}, 0),
        "stats": (["stats"], {}, 0),
        "delete (1 product)": (["delete", "arla-standard-milk"], {"VISEARCH_DATA_DIR": str(data / "copy")}, 0),
        "mismatch error": (["search", "--text", "milk", "--encoder", "clip"], {}, 2),
        "missing photo file": (["search", "--image", str(data / "no-such.jpg")], {}, 2),
    }


def measure_backend(backend: str, data: Path, repeat: int, base_env: dict[str, str]) -> list[dict[str, Any]]:
    """Cold and warm seconds of every command (and serve) for one backend."""
    cache = data / f"onnx-{backend}"
    env = {**base_env, "VISEARCH_BACKEND": backend, "VISEARCH_ONNX_CACHE": str(cache)}
    rows = []
    for name, (args, extra, expect) in [*commands(data).items(), ("serve until ready", ([], {}, 0))]:
        run_env = {**env, **extra}

        def once(
            name: str = name, args: list[str] = args, run_env: dict[str, str] = run_env, expect: int = expect
        ) -> float:
            if name.startswith("delete"):  # a fresh copy each time: every run deletes a stored product
                shutil.rmtree(data / "copy", ignore_errors=True)
                shutil.copytree(data / "main", data / "copy", ignore=shutil.ignore_patterns(".visearch.lock"))
            return serve_ready(run_env) if name == "serve until ready" else timed(args, run_env, expect)

        shutil.rmtree(cache, ignore_errors=True)
        cold = once()
        warm = [once() for _ in range(repeat)]
        rows.append({"backend": backend, "command": name, "cold_s": cold, "warm_s": statistics.median(warm)})
        log(f"{backend:9s} {name:20s} cold {cold:6.2f} s  warm {statistics.median(warm):6.2f} s")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="onnx,torch", help="comma-separated (onnx, onnx-int8, torch)")
    parser.add_argument("--repeat", type=int, default=3, help="warm runs per command (median reported)")
    parser.add_argument("--quick", action="store_true", help="onnx only, one warm run")
    parser.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH")
    args = parser.parse_args()
    backends = ["onnx"] if args.quick else [b.strip() for b in args.backends.split(",") if b.strip()]
    repeat = 1 if args.quick else max(1, args.repeat)

    with tempfile.TemporaryDirectory(prefix="visearch-cold-") as tmp:
        data = Path(tmp)
        base_env = {
            **os.environ,
            "VISEARCH_DATA_DIR": str(data / "main"),
            "VISEARCH_COLLECTION": "sample",
            "PYTHONPATH": str(_common.REPO_ROOT / "build" / "stage") + os.pathsep + os.environ.get("PYTHONPATH", ""),
        }
        base_env.pop("VISEARCH_ENCODER", None)
        log("indexing the sample (offline encoder)")
        index_env = {**base_env, "VISEARCH_ENCODER": "offline", "VISEARCH_ONNX_CACHE": str(data / "onnx-index")}
        timed(["index", str(SAMPLE / "catalog.csv"), "--quiet"], index_env)
        rows = []
        for backend in backends:
            rows.extend(measure_backend(backend, data, repeat, base_env))

    baseline = {r["command"]: r for r in rows if r["backend"] == "torch"}
    info = machine_info(repeat=repeat)
    print_machine(info)
    print(
        table(
            ["backend", "command", "cold s", "warm s", "warm vs torch"],
            [
                [
                    r["backend"],
                    r["command"],
                    r["cold_s"],
                    r["warm_s"],
                    f"{r['warm_s'] / baseline[r['command']]['warm_s']:.2f}x" if r["command"] in baseline else "-",
                ]
                for r in rows
            ],
        )
    )
    if args.json:
        dump_json({"machine": info, "rows": rows}, args.json)


if __name__ == "__main__":
    main()
