"""End-to-end latency and throughput of the Telegram bot, on aiogram and on python-telegram-bot.

What is timed: the update is queued on a fake Bot API server on 127.0.0.1 (the same one the tests
use, `tests/fakes/telegram.py`) -> the bot long-polls it, downloads the photo through getFile,
searches (offline encoder, embedded Qdrant engine, the bundled 81-product grocery catalog) and
sends its cards -> the last card reaches the fake server. Latency = arrival time of the last
message of the answer minus the time the update was queued. Photos are real in-store photos from
`../shared/datasets/grocery/val` (not the catalog's own images).

Two loads, per framework, in the same run:

* one user: N photos one after another (each sent when the previous answer is complete);
* 20 users: each sends its photos one after another, all users at once (closed loop), 200 updates
  in all; throughput = answered updates per second of wall time, and the ratio to one user's.

The fake server runs in the bot's process and event loop, so its (small) cost is included.
No timing is asserted; figures are printed.

    python benchmarks/telegram_e2e.py              # 40 sequential + 200 concurrent updates per framework
    python benchmarks/telegram_e2e.py --quick      # 10 + 40
    python benchmarks/telegram_e2e.py --json out.json
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

from tests.fakes.telegram import TOKEN, FakeTelegram
from visearch.bots.telegram.config import load_telegram_settings
from visearch.bots.telegram.conversation import TelegramConversation
from visearch.bots.telegram.runner import make_runner
from visearch.core.config import Settings, load_settings
from visearch.core.domain import Query
from visearch.core.encoders.base import Encoder
from visearch.core.search import SearchService
from visearch.core.store.factory import open_store

SAMPLE = REPO_ROOT / "indexer" / "demo_data" / "grocery"
CARDS = 3


async def expected_replies(service: SearchService, photos: Sequence[bytes]) -> list[int]:
    """How many messages answer each photo (cards, or one no-match message): the end of an answer."""
    counts = []
    for data in photos:
        result = await service.search(Query(images=[data], limit=CARDS))
        counts.append(max(1, len(result.cards)))
    return counts


class Load:
    """Sends photos as users and times each answer from the fake server's records."""

    def __init__(self, fake: FakeTelegram, photos: Sequence[bytes], replies: Sequence[int]) -> None:
        self.fake, self.photos, self.replies = fake, photos, replies

    async def user(self, chat_id: int, indexes: Sequence[int], latencies: list[float]) -> None:
        for i in indexes:
            before = len(self.fake.replies_to(chat_id))
            pushed = time.monotonic()
            self.fake.send_photo_from_user(chat_id, self.photos[i])
            want = before + self.replies[i]
            await self.fake.wait_for(
                lambda want=want: len(self.fake.replies_to(chat_id)) >= want,
                timeout=120,
                what=f"answer to chat {chat_id}",
            )
            latencies.append(self.fake.replies_to(chat_id)[want - 1].at - pushed)


async def run_framework(
    framework: str,
    settings: Settings,
    encoder: Encoder,
    photos: Sequence[bytes],
    sequential: int,
    users: int,
    total: int,
) -> dict:
    fake = FakeTelegram()
    await fake.start()
    telegram = load_telegram_settings(
        token=TOKEN, api_url=fake.api_url, poll_timeout=5, rate_limit=0, cards_per_page=CARDS
    )
    service = SearchService(encoder, open_store(settings), settings)
    runner = make_runner(framework, telegram, TelegramConversation(telegram, settings, service=service))  # type: ignore[arg-type]
    await runner.start()
    try:
        load = Load(fake, photos, await expected_replies(service, photos))
        await load.user(900, [0], [])  # warm-up: first upload of product photos, first search
        one: list[float] = []
        started = time.monotonic()
        await load.user(1000, [i % len(photos) for i in range(sequential)], one)
        one_wall = time.monotonic() - started

        many: list[float] = []
        per_user = total // users
        started = time.monotonic()
        await asyncio.gather(
            *(
                load.user(2000 + u, [(u * per_user + k) % len(photos) for k in range(per_user)], many)
                for u in range(users)
            )
        )
        many_wall = time.monotonic() - started
    finally:
        await runner.stop()
        await service.close()
        await fake.stop()
    return {
        "framework": framework,
        "one_user": {**stats(one), "updates": len(one), "per_s": len(one) / one_wall},
        "concurrent": {**stats(many), "users": users, "updates": len(many), "per_s": len(many) / many_wall},
    }


def stats(seconds: Sequence[float]) -> dict[str, float]:
    """p50 / p95 / p99 and friends in milliseconds."""
    return {**latency_stats_ms(seconds), "p95_ms": percentile([s * 1000 for s in seconds], 95)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="10 sequential + 40 concurrent updates")
    ap.add_argument("--frameworks", default="aiogram,ptb")
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--json", nargs="?", const="-", default=None, help="write JSON to PATH (no PATH: stdout)")
    args = ap.parse_args(argv)
    sequential, total = (10, 40) if args.quick else (40, 200)
    logging.basicConfig(level=logging.ERROR)

    from visearch.core.encoders.offline import OfflineEncoder

    encoder = OfflineEncoder()
    photos = grocery_val_photos(40)
    tmp = Path(tempfile.mkdtemp(prefix="visearch-tg-bench-"))
    results = []
    try:
        settings = load_settings(data_dir=tmp / "data", encoder="offline", collection="bench")
        asyncio.run(build_sample_collection(settings, encoder))
        for framework in args.frameworks.split(","):
            print(f"running {framework}...", file=sys.stderr)
            results.append(
                asyncio.run(run_framework(framework, settings, encoder, photos, sequential, args.users, total))
            )
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp)

    info = machine_info(encoder=encoder.model_id, catalog="bundled grocery sample (81 products)")
    out = sys.stderr if args.json == "-" else sys.stdout
    with contextlib.redirect_stdout(out):
        print_machine(info)
    rows = []
    for r in results:
        one, many = r["one_user"], r["concurrent"]
        rows.append(
            [
                r["framework"],
                one["updates"],
                f"{one['p50_ms']:.0f}",
                f"{one['p95_ms']:.0f}",
                f"{one['per_s']:.2f}",
                many["updates"],
                f"{many['p50_ms']:.0f}",
                f"{many['p95_ms']:.0f}",
                f"{many['per_s']:.2f}",
                f"{many['per_s'] / one['per_s']:.2f}x",
            ]
        )
    print(
        table(
            [
                "framework",
                "1 user: n",
                "p50 ms",
                "p95 ms",
                "upd/s",
                f"{args.users} users: n",
                "p50 ms",
                "p95 ms",
                "upd/s",
                "throughput ratio",
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
