"""Run every benchmark in turn: search, encoders, index, telegram, webhooks, e2e (each in its own process).

    python benchmarks/run_all.py                  # full runs
    python benchmarks/run_all.py --quick          # smoke test of all three
    python benchmarks/run_all.py --json-dir out/  # also write out/search.json, encoders.json, index.json
    python benchmarks/run_all.py --only search,index

Each script runs in a fresh interpreter so one's threads, caches and memory do not skew the next.
Exit status: non-zero if any benchmark failed (no timing is ever asserted).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = {
    "search": "bench_search.py",
    "encoders": "bench_encoders.py",
    "index": "bench_index.py",
    "telegram": "telegram_e2e.py",
    "webhooks": "webhooks_e2e.py",
    "e2e": "bench_e2e.py",
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="pass --quick to every benchmark")
    ap.add_argument(
        "--only",
        type=lambda s: s.split(","),
        default=list(SCRIPTS),
        help=f"comma-separated subset of {','.join(SCRIPTS)}",
    )
    ap.add_argument("--json-dir", type=Path, default=None, help="write each benchmark's JSON into this folder")
    args = ap.parse_args(argv)

    unknown = [n for n in args.only if n not in SCRIPTS]
    if unknown:
        ap.error(f"unknown benchmark(s): {', '.join(unknown)}")
    if args.json_dir:
        args.json_dir.mkdir(parents=True, exist_ok=True)
    failed, times = [], {}
    started = time.perf_counter()
    for name in args.only:
        cmd = [sys.executable, str(HERE / SCRIPTS[name])]
        if args.quick:
            cmd.append("--quick")
        if args.json_dir:
            cmd += ["--json", str(args.json_dir / f"{name}.json")]
        print(f"\n===== {name}: {' '.join(cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call(cmd)
        times[name] = time.perf_counter() - t0
        if rc != 0:
            failed.append(f"{name} (exit {rc})")
    print("\n===== summary")
    for name, seconds in times.items():
        print(f"{name:9s} {seconds:7.1f}s")
    print(f"{'total':9s} {time.perf_counter() - started:7.1f}s")
    if failed:
        print("failed: " + ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
