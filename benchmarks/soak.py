"""Soak: the real `visearch serve` under mixed load, killed with SIGKILL and restarted; no
acknowledged write may be lost.

What it does, on 127.0.0.1 only, bounded in time and count:

1. copies nothing from your data: indexes the bundled 81-product grocery sample with the offline
   encoder into a fresh temporary data directory (the real CLI: `visearch index`, the same work
   as `_common.build_sample_collection`);
2. starts `visearch serve` (the real CLI, `.venv/bin/visearch`) on a free port, with one API key;
3. runs `--clients` concurrent clients for `--duration` seconds: photo searches (the sample's
   query photos), text searches, keyed writes (POST /api/v1/products as multipart uploads: new
   ids, upserts of ids other clients write too, so the same id is sometimes written concurrently,
   upserts of the sample's own products) and deletes; `/healthz` is polled every ~100 ms;
4. kills the server with SIGKILL `--kills` times during the load (evenly spaced) and restarts it,
   then once more after the load, and restarts it for the check;
5. checks every product a write touched: its final state (GET /api/v1/products/{id}: absent, or
   the title and photo count of one write) must be one a linearizable store could end in: the
   last acknowledged write, or a write that overlapped it, or one whose answer never came (the
   kill cut it off, so it may or may not have been applied). Anything else is a lost write.

It prints: writes acknowledged and found, lost writes (each: id, what was acknowledged, what was
found), the server's RSS per run (at ready, at the kill), the slowest /healthz, request counts and
errors by status, latency per operation. Exit code 1 when a write was lost, 2 when the server
would not start.

    python benchmarks/soak.py                          # 120 s, 4 clients, 3 kills
    python benchmarks/soak.py --duration 60 --clients 8 --kills 5 --json soak.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
from _common import SAMPLE_CATALOG, dump_json, latency_stats_ms, machine_info, percentile, print_machine, table

VISEARCH = Path(sys.executable).with_name("visearch")
KEY = "soak-key-0123456789"
WRITE = {"Authorization": f"Bearer {KEY}"}
TEXTS = ("banana", "milk", "green apple", "juice", "yoghurt", "orange", "red pepper", "oat milk")
SHARED_IDS = 24  # ids every client writes and deletes: concurrent writes of one id happen
SAMPLE_IDS = ("granny-smith", "banana", "avocado", "vine-tomato")  # the sample's own products, upserted too
MAX_DURATION, MAX_CLIENTS, MAX_KILLS = 3600.0, 64, 50

#: an operation's weight in the mix
MIX = {"search_photo": 30, "search_text": 20, "upsert_new": 15, "upsert_shared": 25, "delete": 10}

State = tuple[Literal["absent", "present"], str | None, int | None]  # (kind, title, photos)


@dataclass
class Write:
    """One write the load sent: what it would leave, when it ran, what the server answered."""

    product_id: str
    result: State
    start: float
    end: float
    outcome: Literal["acked", "refused", "unknown"]  # unknown: no answer (killed, timeout) or 5xx


@dataclass
class Run:
    """One life of the server process."""

    pid: int
    ready_s: float
    rss_ready_mb: float
    rss_end_mb: float | None = None
    peak_rss_mb: float | None = None


@dataclass
class Tally:
    """What the load saw."""

    statuses: Counter[str] = field(default_factory=Counter)  # "op status" -> count
    latency: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    healthz: list[float] = field(default_factory=list)
    healthz_down: int = 0
    writes: list[Write] = field(default_factory=list)


# --- the server process ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(data_dir: Path, encoder: str) -> dict[str, str]:
    """The server's settings: this data directory, one key, no per-user rate limit, loopback images."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VISEARCH_")}
    env.update(
        {
            "VISEARCH_DATA_DIR": str(data_dir),
            "VISEARCH_COLLECTION": "products",
            "VISEARCH_ENCODER": encoder,
            "VISEARCH_API_KEYS": KEY,
            "VISEARCH_RATE_LIMIT": "0",
            "VISEARCH_API_FETCH_ALLOW": "127.0.0.1/32",
        }
    )
    return env


def index_sample(workdir: Path, env: dict[str, str]) -> None:
    """The bundled sample into the data directory, by the real CLI (fails loudly)."""
    done = subprocess.run(
        [str(VISEARCH), "index", str(SAMPLE_CATALOG)], cwd=workdir, env=env, capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0:
        raise SystemExit(f"indexing the sample failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


def rss_mb(pid: int, key: str = "VmRSS") -> float | None:
    """A /proc/<pid>/status memory line in MB (VmRSS now, VmHWM the peak); None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class Server:
    """`visearch serve` as a child process: start, wait until ready, SIGKILL."""

    def __init__(self, workdir: Path, env: dict[str, str], port: int) -> None:
        self.workdir, self.env, self.port = workdir, env, port
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs: list[Run] = []
        self.log = workdir / "server.log"

    async def start(self, timeout: float = 180.0) -> Run:
        started = time.monotonic()
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(VISEARCH), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=self.workdir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        async with httpx.AsyncClient(base_url=self.url, timeout=5) as http:
            while time.monotonic() - started < timeout:
                if self.proc.poll() is not None:
                    raise SystemExit(
                        f"the server exited ({self.proc.returncode}) before it was ready; "
                        f"its log:\n{self.log.read_text()[-3000:]}"
                    )
                try:
                    if (await http.get("/readyz")).status_code == 200:
                        run = Run(self.proc.pid, round(time.monotonic() - started, 1), rss_mb(self.proc.pid) or 0.0)
                        self.runs.append(run)
                        return run
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        self.proc.kill()
        raise SystemExit(f"the server was not ready after {timeout:.0f} s; its log:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, nothing is flushed on the way out."""
        assert self.proc is not None
        run = self.runs[-1]
        run.rss_end_mb, run.peak_rss_mb = rss_mb(self.proc.pid), rss_mb(self.proc.pid, "VmHWM")
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        """On the way out, whatever happened: no server is left running."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


# --- the load ---------------------------------------------------------------------------------------


def photos() -> tuple[list[tuple[str, bytes]], list[bytes]]:
    """Product photos to upload (the sample's) and query photos to search with."""
    folder = SAMPLE_CATALOG.parent
    uploads = [(p.name, p.read_bytes()) for p in sorted((folder / "images").glob("*.jpg"))]
    queries = [p.read_bytes() for p in sorted((folder / "queries").glob("*.jpg"))]
    return uploads, queries


class Load:
    """The clients, the /healthz poller and the kills."""

    def __init__(self, server: Server, tally: Tally, clients: int, seed: int, t0: float) -> None:
        self.server, self.tally, self.clients, self.t0 = server, tally, clients, t0
        self.uploads, self.queries = photos()
        self.rng = random.Random(seed)
        self.down = asyncio.Event()  # set while the server is being killed and restarted
        self.serial = 0

    async def client(self, number: int, deadline: float) -> None:
        rng = random.Random(self.rng.random())
        ops, weights = zip(*MIX.items(), strict=True)
        async with httpx.AsyncClient(base_url=self.server.url, timeout=30) as http:
            while time.monotonic() < deadline:
                if self.down.is_set():
                    await asyncio.sleep(0.05)
                    continue
                op = rng.choices(ops, weights)[0]
                await getattr(self, op)(http, rng, number)

    async def send(self, op: str, request: Any) -> httpx.Response | None:
        """Send one request; count its status (or the transport error) and its latency."""
        started = time.perf_counter()
        try:
            response = await request
        except httpx.TimeoutException:
            self.tally.statuses[f"{op} timeout"] += 1
            return None
        except httpx.TransportError:
            self.tally.statuses[f"{op} connection-error"] += 1
            await asyncio.sleep(0.05)  # the server is down: do not spin
            return None
        self.tally.statuses[f"{op} {response.status_code}"] += 1
        self.tally.latency[op].append(time.perf_counter() - started)
        return response

    async def search_photo(self, http: httpx.AsyncClient, rng: random.Random, _: int) -> None:
        files = {"image": ("q.jpg", rng.choice(self.queries), "image/jpeg")}
        await self.send("search_photo", http.post("/api/v1/search", files=files, data={"limit": "5"}))

    async def search_text(self, http: httpx.AsyncClient, rng: random.Random, _: int) -> None:
        await self.send("search_text", http.post("/api/v1/search", json={"text": rng.choice(TEXTS), "limit": 5}))

    async def upsert_new(self, http: httpx.AsyncClient, rng: random.Random, number: int) -> None:
        self.serial += 1
        await self.upsert(http, rng, f"soak-c{number}-{self.serial}", "upsert_new")

    async def upsert_shared(self, http: httpx.AsyncClient, rng: random.Random, _: int) -> None:
        ids = [f"soak-shared-{k}" for k in range(SHARED_IDS)] + list(SAMPLE_IDS)
        await self.upsert(http, rng, rng.choice(ids), "upsert_shared")

    async def upsert(self, http: httpx.AsyncClient, rng: random.Random, product_id: str, op: str) -> None:
        """POST /api/v1/products, multipart: the product's JSON and 1-2 photos; recorded as a write."""
        self.serial += 1
        title = f"{product_id} soak #{self.serial}"
        chosen = rng.sample(self.uploads, rng.choice((1, 1, 2)))
        product = {"id": product_id, "title": title, "price": round(rng.uniform(1, 50), 2), "category": "Soak"}
        files = [("images", (name, data, "image/jpeg")) for name, data in chosen]
        start = self.now()
        response = await self.send(
            op, http.post("/api/v1/products", headers=WRITE, files=files, data={"product": json.dumps(product)})
        )
        self.record(product_id, ("present", title, len(chosen)), start, response)

    async def delete(self, http: httpx.AsyncClient, rng: random.Random, _: int) -> None:
        product_id = f"soak-shared-{rng.randrange(SHARED_IDS)}"
        start = self.now()
        response = await self.send("delete", http.delete(f"/api/v1/products/{product_id}", headers=WRITE))
        if response is not None and response.status_code == 404:  # already absent: the server said so
            self.tally.writes.append(Write(product_id, ("absent", None, None), start, self.now(), "acked"))
            return
        self.record(product_id, ("absent", None, None), start, response)

    def record(self, product_id: str, result: State, start: float, response: httpx.Response | None) -> None:
        if response is None or response.status_code >= 500:
            outcome = "unknown"
        elif response.status_code < 300 and (result[0] == "absent" or response.json().get("ok", True)):
            outcome = "acked"
        else:
            outcome = "refused"  # 4xx, or 200 with ok=false (nothing of it was stored as asked)
        self.tally.writes.append(Write(product_id, result, start, self.now(), outcome))

    def now(self) -> float:
        """Seconds since the load began (write times are printed so)."""
        return time.monotonic() - self.t0

    async def poll_health(self, deadline: float) -> None:
        """GET /healthz every ~100 ms; the time of each answer (a refused connection while down is counted apart)."""
        async with httpx.AsyncClient(base_url=self.server.url, timeout=30) as http:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                try:
                    if (await http.get("/healthz")).status_code == 200:
                        self.tally.healthz.append(time.perf_counter() - started)
                except httpx.TransportError:
                    self.tally.healthz_down += 1
                await asyncio.sleep(max(0.0, 0.1 - (time.perf_counter() - started)))

    async def kill_and_restart(self) -> None:
        self.down.set()
        self.server.kill()
        try:
            await self.server.start()
        finally:
            self.down.clear()

    async def run(self, duration: float, kills: int) -> None:
        deadline = time.monotonic() + duration
        tasks = [asyncio.create_task(self.client(n, deadline)) for n in range(self.clients)]
        tasks.append(asyncio.create_task(self.poll_health(deadline)))
        for k in range(kills):
            await asyncio.sleep(max(0.0, deadline - duration + duration * (k + 1) / (kills + 1) - time.monotonic()))
            print(f"  kill {k + 1}/{kills} at {self.now():.0f} s", file=sys.stderr)
            await self.kill_and_restart()
        await asyncio.gather(*tasks)


# --- the check --------------------------------------------------------------------------------------


def allowed_finals(writes: list[Write], initial: State) -> list[State]:
    """The states a product may end in: each acknowledged write no other acknowledged write began
    after (it may be last), and each unanswered write no acknowledged one began after (it may
    have been applied last); the initial state when nothing was acknowledged."""
    acked = [w for w in writes if w.outcome == "acked"]
    candidates = [
        w for w in writes if w.outcome in ("acked", "unknown") and not any(other.start > w.end for other in acked)
    ]
    finals = [w.result for w in candidates]
    if not acked:
        finals.append(initial)
    return finals


async def observe(http: httpx.AsyncClient, product_id: str) -> State:
    response = await http.get(f"/api/v1/products/{product_id}")
    if response.status_code == 404:
        return ("absent", None, None)
    response.raise_for_status()
    body = response.json()
    return ("present", body["title"], len(body["images"]))


def matches(found: State, allowed: State) -> bool:
    """A found state matches an allowed one; an initial sample product matches on presence only."""
    if allowed[0] != found[0]:
        return False
    return allowed[1] is None or (found[1], found[2]) == (allowed[1], allowed[2])


async def check(server: Server, tally: Tally, initial: dict[str, State]) -> tuple[int, int, list[dict[str, Any]]]:
    """(writes acknowledged, of those found in the final state or superseded, lost writes described)."""
    by_id: dict[str, list[Write]] = defaultdict(list)
    for write in tally.writes:
        by_id[write.product_id].append(write)
    lost: list[dict[str, Any]] = []
    acked_total = found_total = 0
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        for product_id, writes in sorted(by_id.items()):
            found = await observe(http, product_id)
            allowed = allowed_finals(writes, initial.get(product_id, ("absent", None, None)))
            acked = [w for w in writes if w.outcome == "acked"]
            acked_total += len(acked)
            if any(matches(found, a) for a in allowed):
                found_total += len(acked)
                continue
            lost.append(
                {
                    "id": product_id,
                    "found": found,
                    "allowed": allowed,
                    "writes": [asdict(w) for w in sorted(writes, key=lambda w: w.start)],
                }
            )
            found_total += max(0, len(acked) - 1)  # the last acknowledged write is the one missing
    return acked_total, found_total, lost


# --- report -----------------------------------------------------------------------------------------


def report(
    args: argparse.Namespace,
    server: Server,
    tally: Tally,
    acked: int,
    found: int,
    lost: list[dict[str, Any]],
    elapsed: float,
) -> dict[str, Any]:
    """Print the tables and lines of the run; return the same as a dict (for --json)."""
    print(
        f"\nsoak: {args.duration:.0f} s of load, {args.clients} clients, {args.kills} kills during the load "
        f"+ 1 after it, encoder {args.encoder}, {elapsed:.0f} s in all"
    )
    print_machine(machine_info())
    print(
        table(
            ["server run", "pid", "ready after s", "RSS at ready MB", "RSS at kill MB", "peak RSS MB"],
            [[i + 1, r.pid, r.ready_s, r.rss_ready_mb, r.rss_end_mb, r.peak_rss_mb] for i, r in enumerate(server.runs)],
        )
    )
    rows = []
    for op in sorted({key.rsplit(" ", 1)[0] for key in tally.statuses}):
        by_status = {key.rsplit(" ", 1)[1]: n for key, n in tally.statuses.items() if key.rsplit(" ", 1)[0] == op}
        lat = latency_stats_ms(tally.latency.get(op, []))
        rows.append(
            [
                op,
                sum(by_status.values()),
                ", ".join(f"{s}: {n}" for s, n in sorted(by_status.items())),
                lat["p50_ms"],
                percentile([x * 1000 for x in tally.latency.get(op, [])], 95),
                lat["max_ms"],
            ]
        )
    print(table(["operation", "requests", "by status", "p50 ms", "p95 ms", "max ms"], rows))
    health = latency_stats_ms(tally.healthz)
    print(
        f"/healthz every ~100 ms: {health['n']} answers, p50 {health['p50_ms']:.1f} ms, p99 {health['p99_ms']:.1f} ms, "
        f"slowest {health['max_ms']:.1f} ms; {tally.healthz_down} polls found the server down (killed/restarting)"
    )
    outcomes = Counter(w.outcome for w in tally.writes)
    print(
        f"writes: {len(tally.writes)} sent, {outcomes['acked']} acknowledged, {outcomes['refused']} refused (4xx), "
        f"{outcomes['unknown']} unanswered (cut off by a kill, 5xx, timeout: may or may not have been applied)"
    )
    verdict = "OK, none lost" if not lost else f"LOST: {len(lost)} product(s) not in a state any write left"
    print(
        f"acknowledged writes: {acked}; found after the final restart (or superseded by a later write): {found}; {verdict}"
    )
    for item in lost:
        print(f"  LOST {item['id']}: found {item['found']}; could have been one of {item['allowed']}; its writes:")
        for w in item["writes"]:
            print(f"      {w['outcome']:8} {w['result']}  sent t={w['start']:.2f} s, answered t={w['end']:.2f} s")
    return {
        "duration_s": args.duration,
        "clients": args.clients,
        "kills": args.kills,
        "encoder": args.encoder,
        "runs": [asdict(r) for r in server.runs],
        "statuses": dict(tally.statuses),
        "latency_ms": {op: latency_stats_ms(v) for op, v in tally.latency.items()},
        "healthz_ms": health,
        "healthz_down_polls": tally.healthz_down,
        "writes": dict(outcomes),
        "acknowledged": acked,
        "found": found,
        "lost": lost,
        "machine": machine_info(),
    }


async def soak(args: argparse.Namespace, workdir: Path) -> int:
    data_dir = workdir / "data"
    env = server_env(data_dir, args.encoder)
    print(f"indexing the sample into {data_dir} ...", file=sys.stderr)
    index_sample(workdir, env)
    server = Server(workdir, env, free_port())
    print(f"starting visearch serve on {server.url} ...", file=sys.stderr)
    try:
        await server.start()
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            initial: dict[str, State] = {pid: await observe(http, pid) for pid in SAMPLE_IDS}
    except BaseException:
        server.stop()
        raise
    initial = {pid: (state[0], None, None) for pid, state in initial.items()}  # present, any title
    tally = Tally()
    started = time.monotonic()
    try:
        await Load(server, tally, args.clients, args.seed, started).run(args.duration, args.kills)
        print("load over: one more SIGKILL, a restart, then the check", file=sys.stderr)
        server.kill()
        await server.start()
        acked, found, lost = await check(server, tally, initial)
        server.kill()
    finally:
        server.stop()
    result = report(args, server, tally, acked, found, lost, time.monotonic() - started)
    if args.json:
        dump_json(result, args.json)
    return 1 if lost else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=120.0, help="seconds of load (at most 3600)")
    ap.add_argument("--clients", type=int, default=4, help="concurrent clients (at most 64)")
    ap.add_argument("--kills", type=int, default=3, help="SIGKILLs during the load, evenly spaced (at most 50)")
    ap.add_argument("--encoder", default="offline", choices=["offline", "clip"], help="VISEARCH_ENCODER of the server")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (data directory, server.log)")
    ap.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH", help="write the results as JSON")
    args = ap.parse_args(argv)
    if not (0 < args.duration <= MAX_DURATION and 0 < args.clients <= MAX_CLIENTS and 0 <= args.kills <= MAX_KILLS):
        ap.error(f"--duration in (0, {MAX_DURATION:.0f}], --clients in [1, {MAX_CLIENTS}], --kills in [0, {MAX_KILLS}]")
    if not VISEARCH.is_file():
        ap.error(f"{VISEARCH} not found: run `make install` (the soak starts the real CLI)")
    workdir = Path(tempfile.mkdtemp(prefix="visearch-soak-"))
    try:
        return asyncio.run(soak(args, workdir))
    finally:
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
