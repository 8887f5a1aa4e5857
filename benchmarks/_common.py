"""Helpers shared by the benchmark scripts: machine info, timing statistics, tables, JSON.

Not a benchmark itself. Every script puts the repository root on `sys.path`, so they run
as `python benchmarks/<name>.py` from anywhere (no PYTHONPATH needed, though it does no harm).
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

_NUMERIC = re.compile(r"^(-|[-+]?[\d,]*\.?\d+\s*(x|%|ms|s)?)$")

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


SAMPLE_CATALOG = REPO_ROOT / "indexer" / "demo_data" / "grocery" / "catalog.csv"


async def build_sample_collection(settings: Any, encoder: Any) -> None:
    """Index the bundled 81-product grocery sample into `settings`' collection (stops on a failure)."""
    from visearch.core.ingest import index_catalog
    from visearch.core.store.factory import open_store

    store = open_store(settings)
    try:
        summary = await index_catalog(SAMPLE_CATALOG, encoder, store, settings)
        if not summary.ok:
            raise SystemExit(f"indexing the sample failed: {summary.problems}")
    finally:
        await store.close()


def grocery_val_photos(count: int) -> list[bytes]:
    """Real in-store photos from the GroceryStoreDataset's val split, spread over its classes."""
    dataset = REPO_ROOT.parent / "shared" / "datasets" / "grocery"
    listed = [line.split(",")[0].strip() for line in (dataset / "val.txt").read_text().splitlines() if line.strip()]
    step = max(1, len(listed) // count)
    return [(dataset / rel).read_bytes() for rel in listed[::step][:count]]


def package_version(name: str) -> str | None:
    """Installed version of a distribution, without importing it (importing torch costs seconds)."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info(**extra: Any) -> dict[str, Any]:
    """What the numbers were measured on; `extra` adds script-specific fields (threads, ...)."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "loadavg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }
    for dist in ("torch", "sentence-transformers", "transformers", "qdrant-edge-py", "qdrant-client", "numpy"):
        info[dist] = package_version(dist)
    info.update(extra)
    return info


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), without needing numpy here."""
    if not values:
        return float("nan")
    data = sorted(values)
    pos = (len(data) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def latency_stats_ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50 / p99 / mean / min / max in milliseconds of per-call durations given in seconds."""
    ms = [s * 1000.0 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": percentile(ms, 50),
        "p99_ms": percentile(ms, 99),
        "mean_ms": sum(ms) / len(ms) if ms else float("nan"),
        "min_ms": min(ms) if ms else float("nan"),
        "max_ms": max(ms) if ms else float("nan"),
    }


def fmt(value: Any, digits: int = 2) -> str:
    """Numbers for tables: fixed decimals for small values, thousands separators for big ones."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 100:
            return f"{value:.1f}"
        return f"{value:.{digits}f}"
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], numeric_right: bool = True) -> str:
    """A plain-text table with aligned columns (numbers right-aligned, text left-aligned)."""
    cells = [[h for h in headers]] + [[c if isinstance(c, str) else fmt(c) for c in row] for row in rows]
    raw = [list(headers)] + [list(row) for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def numeric(cell: Any) -> bool:
        return cell is None or isinstance(cell, (int, float)) or bool(_NUMERIC.match(str(cell)))

    def is_num(col: int) -> bool:
        return numeric_right and len(raw) > 1 and all(numeric(r[col]) for r in raw[1:])

    aligned = [is_num(i) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        parts = [
            cell.rjust(w) if aligned[i] and n > 0 else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(parts).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def print_machine(info: dict[str, Any]) -> None:
    keys = ", ".join(f"{k}={v}" for k, v in info.items() if v is not None)
    print(f"machine: {keys}")


def dump_json(result: dict[str, Any], path: str | None) -> None:
    """Write the result as JSON to stdout ('-') or to a file."""
    text = json.dumps(result, indent=2, default=str)
    if path in (None, "-"):
        print(text)
    else:
        Path(path).write_text(text + "\n", encoding="utf-8")
        print(f"wrote {path}", file=sys.stderr)


def log(msg: str) -> None:
    """A progress line on stderr, named after the running script, so tables on stdout stay clean."""
    print(f"[{Path(sys.argv[0]).stem} {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass
class Watched:
    """How a child process ended, what it printed and the memory peaks polled from outside."""

    returncode: int
    stdout: str
    seconds: float
    timed_out: bool = False
    peaks_mb: dict[str, int] = field(default_factory=dict)


def run_watched(command: Sequence[str], env: dict[str, str] | None = None, timeout_s: float | None = None) -> Watched:
    """Run `command` to its end (killed past `timeout_s`), its stdout captured, while
    `watch_memory` polls its peaks."""
    peaks: dict[str, int] = {}
    stop = threading.Event()
    started = time.perf_counter()
    proc = subprocess.Popen(list(command), env=env, stdout=subprocess.PIPE, text=True)
    watcher = threading.Thread(target=watch_memory, args=(proc.pid, peaks, stop), daemon=True)
    watcher.start()
    timed_out = False
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        timed_out = True
    finally:
        stop.set()
        watcher.join()
    return Watched(proc.returncode, out, time.perf_counter() - started, timed_out, peaks)


def watch_memory(pid: int, peaks: dict[str, int], stop: threading.Event) -> None:
    """Peak VmRSS / RssAnon / RssFile (MB) of another process, polled every 0.2 s until it exits
    or `stop` is set; from outside, so an engine call that holds the child's GIL cannot hide a peak."""
    while not stop.is_set():
        try:
            with open(f"/proc/{pid}/status", encoding="ascii") as fh:
                for line in fh:
                    key = line.split(":", 1)[0]
                    if key in ("VmRSS", "RssAnon", "RssFile"):
                        peaks[key] = max(peaks.get(key, 0), int(line.split()[1]) // 1024)
        except (FileNotFoundError, ProcessLookupError):
            return
        stop.wait(0.2)
