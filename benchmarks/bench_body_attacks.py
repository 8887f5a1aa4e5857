"""What oversized and anonymous request bodies cost `visearch serve`: the server's RSS and the
latency of /healthz while the attack runs, and the status the attacker gets.

The server is a real `visearch serve` process (offline encoder, embedded store, the bundled
sample) on 127.0.0.1, with Viber enabled and API keys set; the attacks come from this process:

* unsigned POST /webhooks/viber declaring Content-Length 1 GB, then streaming until refused
* unsigned POST /webhooks/viber, chunked (no length), streaming up to 1 GB until refused
* signed POST /webhooks/viber of 200 MB
* 4 keyless POST /api/v1/products:batch of 21 MB each, at once
* 1 keyed POST /api/v1/products:batch of 21 MB (parsed, then refused: too many products)

No timing is asserted: it prints a table (and JSON with --json).

    python benchmarks/bench_body_attacks.py
    python benchmarks/bench_body_attacks.py --gb 0.25     # smaller streamed bodies
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import REPO_ROOT, build_sample_collection, dump_json, machine_info, print_machine, table

os.environ.setdefault("HF_HUB_OFFLINE", "1")

VIBER_TOKEN = "bench-viber-token"
API_KEY = "bench-key-1"
CHUNK = b"x" * (1 << 20)


def rss_mb(pid: int) -> float:
    """Resident memory of a process, MB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def raw_post(
    port: int, path: str, headers: dict[str, str], body_chunks: Any, chunked: bool
) -> tuple[int | None, float]:
    """POST over a raw socket, sending chunks until the server answers or closes; (status, seconds)."""
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    if chunked:
        head += "Transfer-Encoding: chunked\r\n"
    writer.write((head + "\r\n").encode())
    answer: asyncio.Task[bytes] = asyncio.ensure_future(reader.read(65536))
    await asyncio.wait([answer], timeout=0.2)  # a server that answers the head alone is heard before the body goes
    try:
        async for chunk in body_chunks:
            if answer.done():
                break
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            try:
                await writer.drain()
            except (ConnectionError, OSError):
                break
        else:
            if chunked:
                writer.write(b"0\r\n\r\n")
                with contextlib.suppress(ConnectionError, OSError):
                    await writer.drain()
        data = await asyncio.wait_for(answer, timeout=300)
    except (TimeoutError, ConnectionError, OSError):
        data = answer.result() if answer.done() and not answer.exception() else b""
    finally:
        writer.close()
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else None
    return status, time.perf_counter() - start


async def repeat(chunk: bytes, total: int) -> Any:
    sent = 0
    while sent < total:
        yield chunk
        sent += len(chunk)


async def once(data: bytes) -> Any:
    for i in range(0, len(data), 1 << 20):
        yield data[i : i + (1 << 20)]


async def watch(port: int, pid: int, stop: asyncio.Event) -> dict[str, float]:
    """/healthz latency and the server's RSS, sampled every 50 ms until `stop`."""
    import httpx

    worst, peak, samples = 0.0, 0.0, 0
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:
        while not stop.is_set():
            start = time.perf_counter()
            await http.get("/healthz")
            worst = max(worst, time.perf_counter() - start)
            peak = max(peak, rss_mb(pid))
            samples += 1
            await asyncio.sleep(0.05)
    return {"healthz_max_ms": worst * 1000, "rss_peak_mb": peak, "samples": samples}


async def attack(name: str, port: int, pid: int, jobs: list[Any]) -> dict[str, Any]:
    before = rss_mb(pid)
    stop = asyncio.Event()
    watcher = asyncio.ensure_future(watch(port, pid, stop))
    start = time.perf_counter()
    answers = await asyncio.gather(*jobs)
    took = time.perf_counter() - start
    await asyncio.sleep(0.3)
    stop.set()
    seen = await watcher
    return {
        "attack": name,
        "statuses": sorted({str(s) for s, _ in answers}),
        "answer_s": max(t for _, t in answers),
        "total_s": took,
        "rss_before_mb": before,
        **seen,
        "rss_after_mb": rss_mb(pid),
    }


async def run(port: int, pid: int, gigabytes: float) -> list[dict[str, Any]]:
    total = int(gigabytes * (1 << 30))
    results = [
        await attack(
            "unsigned viber, Content-Length 1 GB",
            port,
            pid,
            [raw_post(port, "/webhooks/viber", {"Content-Length": str(total)}, repeat(CHUNK, total), chunked=False)],
        )
    ]
    results.append(
        await attack(
            "unsigned viber, chunked 1 GB",
            port,
            pid,
            [raw_post(port, "/webhooks/viber", {}, repeat(CHUNK, total), chunked=True)],
        )
    )
    signed = b'{"event": "webhook", "pad": "' + b"x" * (200 << 20) + b'"}'
    sig = hmac.new(VIBER_TOKEN.encode(), signed, hashlib.sha256).hexdigest()
    results.append(
        await attack(
            "signed viber, 200 MB",
            port,
            pid,
            [
                raw_post(
                    port,
                    "/webhooks/viber",
                    {"Content-Length": str(len(signed)), "X-Viber-Content-Signature": sig},
                    once(signed),
                    chunked=False,
                )
            ],
        )
    )
    del signed
    item = {"id": "p", "title": "t", "tags": ["a", "b"]}  # many small products: the most parsing per byte
    batch = json.dumps({"products": [item] * ((21 << 20) // (len(json.dumps(item)) + 2))}).encode()
    results.append(
        await attack(
            f"4 keyless batches of {len(batch) >> 20} MB",
            port,
            pid,
            [
                raw_post(
                    port,
                    "/api/v1/products:batch",
                    {"Content-Length": str(len(batch)), "Content-Type": "application/json"},
                    once(batch),
                    chunked=False,
                )
                for _ in range(4)
            ],
        )
    )
    results.append(
        await attack(
            f"1 keyed batch of {len(batch) >> 20} MB (parsed)",
            port,
            pid,
            [
                raw_post(
                    port,
                    "/api/v1/products:batch",
                    {
                        "Content-Length": str(len(batch)),
                        "Content-Type": "application/json",
                        "Authorization": f"Bearer {API_KEY}",
                    },
                    once(batch),
                    chunked=False,
                )
            ],
        )
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gb", type=float, default=1.0, help="size of the streamed webhook bodies, GB")
    parser.add_argument("--json", default=None, help="write the results as JSON here ('-' = stdout)")
    args = parser.parse_args()

    from tests.conftest import free_port
    from visearch.core.config import load_settings
    from visearch.core.encoders.offline import OfflineEncoder

    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(data_dir=Path(tmp) / "data", encoder="offline", collection="bench")
        asyncio.run(build_sample_collection(settings, OfflineEncoder()))
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("VISEARCH_")}
        env.update(
            VISEARCH_DATA_DIR=str(settings.data_dir),
            VISEARCH_COLLECTION="bench",
            VISEARCH_ENCODER="offline",
            VISEARCH_VIBER_TOKEN=VIBER_TOKEN,
            VISEARCH_API_KEYS=API_KEY,
            PYTHONPATH=str(REPO_ROOT),
        )
        import subprocess

        import httpx

        server = subprocess.Popen(
            [sys.executable, "-m", "visearch.indexer.cli", "serve", "--port", str(port)],
            env=env,
            stderr=subprocess.PIPE,
        )
        try:
            for _ in range(1200):
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            results = asyncio.run(run(port, server.pid, args.gb))
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                _, err = server.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                _, err = server.communicate()
    print_machine(machine_info())
    print(
        table(
            ["attack", "status", "answer s", "rss before MB", "rss peak MB", "rss after MB", "healthz max ms"],
            [
                [
                    r["attack"],
                    ",".join(r["statuses"]),
                    r["answer_s"],
                    r["rss_before_mb"],
                    r["rss_peak_mb"],
                    r["rss_after_mb"],
                    r["healthz_max_ms"],
                ]
                for r in results
            ],
        )
    )
    tracebacks = err.decode(errors="replace").count("Traceback")
    print(f"server log: {tracebacks} tracebacks")
    if args.json:
        dump_json({"results": results, "server_tracebacks": tracebacks}, args.json)


if __name__ == "__main__":
    main()
