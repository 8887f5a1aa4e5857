"""Webhook -> reply latency of `visearch serve` for Viber and WhatsApp, and throughput with 50 senders.

The app runs under uvicorn on 127.0.0.1 with the offline encoder, the embedded store and the
bundled sample; fake Viber and WhatsApp API servers (`tests/fakes/messengers.py`) serve the
customers' photos (real in-store photos from `../shared/datasets/grocery/val`) and record the
replies. Latency = arrival of the answer's last message at the fake server minus the moment the
signed webhook was posted. All of it (app, fakes, load) runs in one process; its RSS is printed
before and after the load. No timing is asserted.

    python benchmarks/webhooks_e2e.py            # 40 sequential + 200 from 50 concurrent senders, per platform
    python benchmarks/webhooks_e2e.py --quick    # 10 + 50
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

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

from tests.fakes.messengers import viber_message, whatsapp_payload
from tests.test_server import Served, serve
from visearch.core.config import Settings, load_settings
from visearch.core.domain import Query
from visearch.core.search import SearchService

SAMPLE = REPO_ROOT / "indexer" / "demo_data" / "grocery"


def rss_mb() -> float:
    """Resident memory of this process, MB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def cards_per_photo(service: SearchService, photos: Sequence[bytes], limit: int) -> list[int]:
    return [len((await service.search(Query(images=[p], limit=limit))).cards) for p in photos]


class Sender:
    """Posts signed photo webhooks as one user and times the answers."""

    def __init__(self, served: Served, platform: str, photos: Sequence[bytes], cards: Sequence[int]) -> None:
        self.served, self.platform, self.photos, self.cards = served, platform, photos, cards
        self.counter = 0

    def expected(self, i: int) -> int:
        if self.platform == "viber":
            return 1
        return self.cards[i] + 1 if self.cards[i] else 1

    async def user(self, user: str, indexes: Sequence[int], latencies: list[float]) -> None:
        fake = self.served.viber if self.platform == "viber" else self.served.whatsapp
        for i in indexes:
            self.counter += 1
            before = len(fake.to(user))
            if self.platform == "viber":
                body = viber_message(
                    user,
                    {"type": "picture", "media": fake.add_media(self.photos[i])},
                    int(time.time() * 1e6) + self.counter,
                )
                started = time.monotonic()
                await self.served.viber_post(body)
            else:
                media = fake.add_media(self.photos[i])
                body = whatsapp_payload(
                    user, {"id": f"wamid.b{self.counter}-{user}", "type": "image", "image": {"id": media}}
                )
                started = time.monotonic()
                await self.served.whatsapp_post(body)
            want = before + self.expected(i)
            found = await fake.wait_for_messages(user, want, timeout=300)
            latencies.append(found[want - 1].at - started)


async def run(
    settings: Settings, encoder, photos: Sequence[bytes], sequential: int, senders: int, total: int
) -> list[dict]:
    results = []
    async for served in serve(settings, encoder, queue_size=max(64, senders * 2), workers=8):
        cards = await cards_per_photo(served.service, photos, 3)
        for platform in ("viber", "whatsapp"):
            load = Sender(served, platform, photos, cards)
            await load.user(f"{platform}-warm", [0], [])
            one: list[float] = []
            started = time.monotonic()
            await load.user(f"{platform}-solo", [i % len(photos) for i in range(sequential)], one)
            one_wall = time.monotonic() - started
            rss_before = rss_mb()
            many: list[float] = []
            per = total // senders
            started = time.monotonic()
            await asyncio.gather(
                *(
                    load.user(f"{platform}-{u}", [(u * per + k) % len(photos) for k in range(per)], many)
                    for u in range(senders)
                )
            )
            many_wall = time.monotonic() - started
            results.append(
                {
                    "platform": platform,
                    "one": {
                        **latency_stats_ms(one),
                        "p95_ms": percentile([x * 1000 for x in one], 95),
                        "per_s": len(one) / one_wall,
                    },
                    "many": {
                        **latency_stats_ms(many),
                        "p95_ms": percentile([x * 1000 for x in many], 95),
                        "per_s": len(many) / many_wall,
                        "senders": senders,
                    },
                    "rss_before_mb": rss_before,
                    "rss_after_mb": rss_mb(),
                }
            )
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--senders", type=int, default=50)
    ap.add_argument("--json", nargs="?", const="-", default=None, help="write JSON to PATH (no PATH: stdout)")
    args = ap.parse_args(argv)
    sequential, total = (10, 50) if args.quick else (40, 200)
    logging.basicConfig(level=logging.ERROR)
    from visearch.core.encoders.offline import OfflineEncoder

    encoder = OfflineEncoder()
    tmp = Path(tempfile.mkdtemp(prefix="visearch-webhook-bench-"))
    try:
        settings = load_settings(data_dir=tmp / "data", encoder="offline", collection="bench")
        asyncio.run(build_sample_collection(settings, encoder))
        rss_start = rss_mb()
        results = asyncio.run(run(settings, encoder, grocery_val_photos(40), sequential, args.senders, total))
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp)
    info = machine_info(encoder=encoder.model_id, rss_at_start_mb=round(rss_start))
    out = sys.stderr if args.json == "-" else sys.stdout
    with contextlib.redirect_stdout(out):
        print_machine(info)
    rows = [
        [
            r["platform"],
            f"{r['one']['p50_ms']:.0f}",
            f"{r['one']['p95_ms']:.0f}",
            f"{r['one']['per_s']:.1f}",
            r["many"]["n"],
            f"{r['many']['p50_ms']:.0f}",
            f"{r['many']['p95_ms']:.0f}",
            f"{r['many']['per_s']:.1f}",
            f"{r['many']['per_s'] / r['one']['per_s']:.2f}x",
            f"{r['rss_before_mb']:.0f} -> {r['rss_after_mb']:.0f}",
        ]
        for r in results
    ]
    print(
        table(
            [
                "platform",
                "1 sender p50 ms",
                "p95 ms",
                "answers/s",
                f"{args.senders} senders: n",
                "p50 ms",
                "p95 ms",
                "answers/s",
                "ratio",
                "RSS MB before -> after",
            ],
            rows,
        ),
        file=out,
    )
    if args.json:
        dump_json({"machine": info, "results": results}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
