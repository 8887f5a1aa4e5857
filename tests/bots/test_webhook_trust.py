"""What the webhook server trusts and keeps: the Viber token goes to Viber's API only (never to a
media host), and delivery ids outlive a restart, so a platform's retry is never answered twice.

Over real HTTP on 127.0.0.1 with the fake Viber and WhatsApp servers (tests/fakes/messengers.py)
and the server under uvicorn, as in tests/bots/test_server.py; the delivery-id file's rules (TTL,
bound, a file that cannot be used) are checked on `PersistentSeenIds` itself.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path

import pytest
from aiohttp import web

from tests.bots.test_server import Served, card_titles, photo, serve, served
from tests.conftest import copy_collection
from tests.fakes.messengers import VIBER_TOKEN, viber_message
from visearch.bots.webhooks.work import DELIVERIES_FILE, PersistentSeenIds
from visearch.core.config import Settings

# delivery tokens of this module; tests/bots/test_server.py uses 1001-1010 on the same data directory
TOKENS = iter(range(9_100_001, 9_100_100))


async def test_viber_media_is_downloaded_without_the_auth_token(served: Served) -> None:
    media = served.viber.add_media(photo("granny-smith.jpg"))
    body = viber_message("viber-trust-1", {"type": "picture", "media": media, "text": ""}, next(TOKENS))
    assert (await served.viber_post(body)).status_code == 200
    [answer] = await served.viber.wait_for_messages("viber-trust-1")
    assert answer.body["type"] == "rich_media"  # the photo was downloaded and searched
    [download] = served.viber.media_headers
    assert not any(name.lower() == "x-viber-auth-token" for name in download), download
    assert VIBER_TOKEN not in repr(download)


async def test_whatsapp_media_still_gets_the_bearer_token_meta_requires(served: Served) -> None:
    from tests.fakes.messengers import whatsapp_payload

    media_id = served.whatsapp.add_media(photo("granny-smith.jpg"))
    body = whatsapp_payload("46709100001", {"id": "wamid.trust1", "type": "image", "image": {"id": media_id}})
    assert (await served.whatsapp_post(body)).status_code == 200
    await served.whatsapp.wait_for_messages("46709100001")
    [download] = served.whatsapp.media_headers
    assert download.get("Authorization", "").startswith("Bearer ")


async def test_a_viber_retry_after_a_restart_is_answered_once_even_after_a_corrupted_file(
    bot_catalog: Settings, offline_encoder, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = copy_collection(bot_catalog, tmp_path / "data")
    (settings.data_dir / DELIVERIES_FILE).write_bytes(b"not a database, just bytes " * 100)
    body = viber_message("viber-restart", {"type": "text", "text": "green apple"}, next(TOKENS))
    with caplog.at_level(logging.WARNING, logger="visearch.server"):
        async for first in serve(settings, offline_encoder):  # the unreadable file does not stop it
            assert (await first.viber_post(body)).status_code == 200
            assert len(await first.viber.wait_for_messages("viber-restart")) == 1
    assert "is unreadable" in caplog.text and (settings.data_dir / f"{DELIVERIES_FILE}.unreadable").is_file()

    async for second in serve(settings, offline_encoder):  # a new app and uvicorn, the same data directory
        retried = await second.viber_post(body)
        assert retried.status_code == 200
        probe = viber_message("viber-restart-probe", {"type": "text", "text": "banana"}, next(TOKENS))
        await second.viber_post(probe)
        await second.viber.wait_for_messages("viber-restart-probe")  # the new server does answer...
        await second.viber.settle()
        assert second.viber.to("viber-restart") == []  # ...but not the retried delivery
        metrics = (await second.http.get("/metrics")).text
        assert 'visearch_webhook_requests_total{outcome="duplicate",platform="viber"} 1.0' in metrics


async def test_ids_older_than_the_ttl_are_forgotten_and_the_file_stays_bounded(tmp_path: Path) -> None:
    now = [1_000.0]
    path = tmp_path / DELIVERIES_FILE
    seen = await PersistentSeenIds.open(path, ttl=60, max_items=3, clock=lambda: now[0])
    assert seen.first_time(("viber", "old"))
    seen.finished(("viber", "old"))
    now[0] += 30
    for n in range(4):
        now[0] += 1
        assert seen.first_time(("viber", f"new{n}"))
        seen.finished(("viber", f"new{n}"))
    assert not seen.first_time(("viber", "new3")) and not seen.first_time(("viber", "new1"))
    assert seen.first_time(("viber", "unfinished"))  # accepted, its job never finished: not kept
    await seen.close()

    now[0] += 36  # "old" is 70 s old (past the TTL); the newest three fit max_items
    again = await PersistentSeenIds.open(path, ttl=60, max_items=3, clock=lambda: now[0])
    assert len(again) == 3
    assert not again.first_time(("viber", "new3")) and not again.first_time(("viber", "new1"))
    assert again.first_time(("viber", "new0"))  # pushed out by the bound
    assert again.first_time(("viber", "old"))  # forgotten after the TTL
    assert again.first_time(("viber", "unfinished"))
    await again.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM seen").fetchone()[0] <= 5


async def test_without_a_usable_file_ids_are_remembered_in_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("the data directory cannot be created under a file")
    with caplog.at_level(logging.WARNING, logger="visearch.server"):
        seen = await PersistentSeenIds.open(blocker / DELIVERIES_FILE, ttl=60)
    assert "in memory only" in caplog.text
    assert seen.first_time(("telegram", 5)) and not seen.first_time(("telegram", 5))
    await seen.close()


class MediaHost:
    """A media host on 127.0.0.1. `url` holds every download until `release()`: a search job that
    is running but cannot finish, as when the server is killed in the middle of it. `streamed_url`
    sends the bytes in chunks without a Content-Length (the size is known only by counting)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.requests = 0
        self.arrived = asyncio.Event()
        self._released = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/photo.jpg", self._photo)
        app.router.add_get("/streamed.jpg", self._streamed)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        root = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        self.url, self.streamed_url = f"{root}/photo.jpg", f"{root}/streamed.jpg"

    def release(self) -> None:
        self._released.set()

    async def stop(self) -> None:
        self.release()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _photo(self, request: web.Request) -> web.Response:
        self.requests += 1
        self.arrived.set()
        await self._released.wait()
        return web.Response(body=self.data, content_type="image/jpeg")

    async def _streamed(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(self.data), 16 * 1024):
            await response.write(self.data[start : start + 16 * 1024])
        await response.write_eof()
        return response


async def test_a_delivery_whose_job_never_finished_is_answered_after_a_restart(
    bot_catalog: Settings, offline_encoder, tmp_path: Path
) -> None:
    settings = copy_collection(bot_catalog, tmp_path / "data")
    held = MediaHost(photo("granny-smith.jpg"))
    await held.start()
    body = viber_message("viber-held", {"type": "picture", "media": held.url, "text": ""}, next(TOKENS))
    try:
        async for first in serve(settings, offline_encoder):
            assert (await first.viber_post(body)).status_code == 200
            await asyncio.wait_for(held.arrived.wait(), 30)  # the job runs; its download is held
            assert (await first.viber_post(body)).status_code == 200  # a retry meanwhile is not searched again
            # the data directory as a kill -9 leaves it now, with the job unfinished
            after_kill = await asyncio.to_thread(copy_collection, settings, tmp_path / "after-kill")
            held.release()  # this process may finish now (quickly); what it does no longer matters
            await first.viber.wait_for_messages("viber-held")
            assert held.requests == 1
            metrics = (await first.http.get("/metrics")).text
            assert 'visearch_webhook_requests_total{outcome="duplicate",platform="viber"} 1.0' in metrics

        async for second in serve(after_kill, offline_encoder):  # restarted on what the kill left
            assert (await second.viber_post(body)).status_code == 200  # the platform's retry
            [answer] = await second.viber.wait_for_messages("viber-held")
            assert answer.body["type"] == "rich_media" and "Granny Smith" in card_titles(answer.body)
            assert (await second.viber_post(body)).status_code == 200  # answered now: a later retry is not
            await second.viber.settle()
            assert len(second.viber.to("viber-held")) == 1 and held.requests == 2
    finally:
        await held.stop()


async def test_viber_media_over_the_limit_gets_the_size_reply_declared_or_counted(
    bot_catalog: Settings, offline_encoder
) -> None:
    big = b"\xff\xd8" + b"0" * (2 * 1024 * 1024)  # over the 1 MB limit set below
    host = MediaHost(big)
    await host.start()
    try:
        async for running in serve(bot_catalog, offline_encoder, viber_max_media_bytes=1024 * 1024):
            declared = running.viber.add_media(big)  # the fake sends a Content-Length
            for user, media in (("viber-big-declared", declared), ("viber-big-streamed", host.streamed_url)):
                body = viber_message(user, {"type": "picture", "media": media, "text": ""}, next(TOKENS))
                assert (await running.viber_post(body)).status_code == 200
                [reply] = await running.viber.wait_for_messages(user)
                assert reply.body["type"] == "text"
                assert reply.body["text"] == "This file is larger than 1 MB. Please send a smaller photo."
    finally:
        await host.stop()
