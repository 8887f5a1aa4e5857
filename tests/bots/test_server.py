"""`visearch serve` over real HTTP on 127.0.0.1: the app runs under uvicorn, fake Viber, WhatsApp
and Telegram servers record what it sends, webhooks are signed like the platforms sign them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import free_port
from tests.fakes.messengers import (
    GRAPH_VERSION,
    PHONE_NUMBER_ID,
    VIBER_TOKEN,
    WHATSAPP_APP_SECRET,
    WHATSAPP_TOKEN,
    WHATSAPP_VERIFY_TOKEN,
    FakeViber,
    FakeWhatsApp,
    viber_message,
    viber_signature,
    whatsapp_payload,
    whatsapp_signature,
)
from tests.fakes.telegram import TOKEN, FakeTelegram
from tests.serving import cli_env
from visearch.bots.server.app import create_app
from visearch.bots.server.config import load_server_settings
from visearch.bots.telegram.config import load_telegram_settings
from visearch.core.config import Settings
from visearch.core.search import SearchService
from visearch.core.store.factory import open_store

SAMPLE = Path(__file__).resolve().parents[2] / "indexer" / "demo_data" / "grocery"
TG_SECRET = "tg-webhook-secret_1"


@dataclass
class Served:
    url: str
    http: httpx.AsyncClient
    viber: FakeViber
    whatsapp: FakeWhatsApp
    telegram: FakeTelegram
    service: SearchService

    async def viber_post(self, body: bytes, signature: str | None = None) -> httpx.Response:
        headers = {"X-Viber-Content-Signature": viber_signature(body) if signature is None else signature}
        return await self.http.post("/webhooks/viber", content=body, headers=headers)

    async def whatsapp_post(self, body: bytes, signature: str | None = None) -> httpx.Response:
        headers = {
            "X-Hub-Signature-256": whatsapp_signature(body) if signature is None else signature,
            "Content-Type": "application/json",
        }
        return await self.http.post("/webhooks/whatsapp", content=body, headers=headers)


async def serve(settings: Settings, offline_encoder, **server_overrides: object) -> AsyncIterator[Served]:
    viber, whatsapp, telegram = FakeViber(), FakeWhatsApp(), FakeTelegram()
    for fake in (viber, whatsapp, telegram):
        await fake.start()
    port = free_port()
    options: dict = {
        "viber_token": VIBER_TOKEN,
        "viber_api_url": viber.api_url,
        "whatsapp_token": WHATSAPP_TOKEN,
        "whatsapp_app_secret": WHATSAPP_APP_SECRET,
        "whatsapp_verify_token": WHATSAPP_VERIFY_TOKEN,
        "whatsapp_phone_number_id": PHONE_NUMBER_ID,
        "whatsapp_api_url": whatsapp.url,
        "whatsapp_api_version": GRAPH_VERSION,
        "public_url": f"http://127.0.0.1:{port}",
        "rate_limit": 0,
    }
    options.update(server_overrides)
    server = load_server_settings(**options)
    tg = load_telegram_settings(token=TOKEN, api_url=telegram.api_url, webhook_secret=TG_SECRET)
    service = SearchService(offline_encoder, open_store(settings), settings)
    app = create_app(settings, server, tg, service=service)
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(uv.serve())
    while not uv.started:
        await asyncio.sleep(0.02)
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            yield Served(url, http, viber, whatsapp, telegram, service)
    finally:
        uv.should_exit = True
        await task
        await service.close()
        for fake in (viber, whatsapp, telegram):
            await fake.stop()


@pytest.fixture
async def served(bot_catalog: Settings, offline_encoder) -> AsyncIterator[Served]:
    async for running in serve(bot_catalog, offline_encoder):
        yield running


def photo(name: str) -> bytes:
    return (SAMPLE / "queries" / name).read_bytes()


def card_titles(message: dict) -> list[str]:
    """Titles in a Viber carousel (the bold line of each text block)."""
    texts = [b["Text"] for b in message["rich_media"]["Buttons"] if b.get("ActionType") == "none" and "Text" in b]
    return [t.split("</b>")[0].removeprefix("<b>") for t in texts]


# --- health --------------------------------------------------------------------------------------------


async def test_health_and_readiness(served: Served) -> None:
    assert (await served.http.get("/healthz")).json() == {"status": "ok"}
    ready = (await served.http.get("/readyz")).json()
    assert ready["status"] == "ready" and ready["points"] == 82
    assert set(ready["platforms"]) == {"telegram", "viber", "whatsapp"}


async def test_readyz_turns_unready_when_the_store_is_gone(served: Served) -> None:
    await served.service.store.close()
    response = await served.http.get("/readyz")
    assert response.status_code == 503 and "store" in response.json()["reason"]
    assert (await served.http.get("/healthz")).status_code == 200


async def test_platforms_without_credentials_are_not_served(bot_catalog: Settings, offline_encoder) -> None:
    async for running in serve(bot_catalog, offline_encoder, viber_token="", whatsapp_token=""):
        assert (await running.http.post("/webhooks/viber", content=b"{}")).status_code == 404
        assert (await running.http.get("/webhooks/whatsapp")).status_code in (404, 405)
        assert (await running.http.get("/readyz")).json()["platforms"] == ["telegram"]


# --- Viber ----------------------------------------------------------------------------------------------


async def test_viber_photo_gets_a_carousel_with_the_product(served: Served) -> None:
    media = served.viber.add_media(photo("arla-standard-milk.jpg"))
    body = viber_message("viber-user-1", {"type": "picture", "media": media, "text": ""}, 1001)
    assert (await served.viber_post(body)).status_code == 200
    sent = (await served.viber.wait_for_messages("viber-user-1"))[0].body
    assert sent["type"] == "rich_media" and sent["min_api_version"] >= 2
    assert "Arla Standard Milk" in card_titles(sent)
    images = [b["Image"] for b in sent["rich_media"]["Buttons"] if "Image" in b]
    assert images and all(i.startswith(served.url + "/media/") for i in images)
    served_photo = await served.http.get(images[0])
    assert served_photo.status_code == 200 and served_photo.headers["content-type"] == "image/jpeg"
    more = [b["ActionBody"] for b in sent["rich_media"]["Buttons"] if b.get("Text") == "<b>More like this</b>"]
    assert more and all(m.startswith("more:") for m in more)


async def test_viber_text_with_filter_and_more_like_this(served: Served) -> None:
    body = viber_message("viber-user-2", {"type": "text", "text": "apple category:apple in stock"}, 1002)
    await served.viber_post(body)
    sent = (await served.viber.wait_for_messages("viber-user-2"))[0].body
    titles = card_titles(sent)
    assert titles and set(titles) <= {"Golden Delicious", "Pink Lady", "Red Delicious", "Royal Gala"}
    first_more = next(
        b["ActionBody"] for b in sent["rich_media"]["Buttons"] if b.get("Text") == "<b>More like this</b>"
    )
    await served.viber_post(viber_message("viber-user-2", {"type": "text", "text": first_more}, 1003))
    similar = (await served.viber.wait_for_messages("viber-user-2", 2))[1].body
    assert titles[0] not in card_titles(similar)


async def test_viber_bad_or_missing_signature_is_refused_and_nothing_is_sent(served: Served) -> None:
    body = viber_message("viber-user-3", {"type": "text", "text": "apple"}, 1004)
    assert (await served.viber_post(body, signature="0" * 64)).status_code == 403
    assert (await served.viber_post(body, signature="")).status_code == 403
    assert (await served.viber_post(body, signature=viber_signature(body, "other-token"))).status_code == 403
    probe = viber_message("viber-user-3", {"type": "text", "text": "banana"}, 1011)  # signed: answered
    assert (await served.viber_post(probe)).status_code == 200
    await served.viber.wait_for_messages("viber-user-3")  # posted last: a refused body would have been answered too
    await served.viber.settle()
    assert len(served.viber.to("viber-user-3")) == 1, "only the signed probe is answered"


async def test_viber_replayed_delivery_is_answered_once(served: Served) -> None:
    body = viber_message("viber-user-4", {"type": "text", "text": "green apple"}, 1005)
    for _ in range(3):
        assert (await served.viber_post(body)).status_code == 200
    await served.viber.wait_for_messages("viber-user-4")
    await served.viber.settle()
    assert len(served.viber.to("viber-user-4")) == 1
    metrics = (await served.http.get("/metrics")).text
    assert 'visearch_webhook_requests_total{outcome="duplicate",platform="viber"} 2.0' in metrics


async def test_viber_events_other_than_messages(served: Served) -> None:
    started = json.dumps(
        {
            "event": "conversation_started",
            "timestamp": 1,
            "message_token": 9,
            "type": "open",
            "user": {"id": "viber-user-5", "name": "C"},
            "subscribed": False,
        }
    ).encode()
    welcome = await served.viber_post(started)
    assert welcome.status_code == 200 and "Send a photo" in welcome.json()["text"]
    for event in ("delivered", "seen", "subscribed", "unsubscribed", "webhook", "something_new"):
        body = json.dumps({"event": event, "timestamp": 1, "message_token": 10, "user_id": "viber-user-5"}).encode()
        assert (await served.viber_post(body)).status_code == 200
    probe = viber_message("viber-user-5", {"type": "text", "text": "banana"}, 1012)
    assert (await served.viber_post(probe)).status_code == 200
    await served.viber.wait_for_messages("viber-user-5")  # posted last: an answer to an event would be here by now
    await served.viber.settle()
    assert len(served.viber.to("viber-user-5")) == 1, "only the probe message is answered"


async def test_viber_sticker_and_broken_picture_get_friendly_replies(served: Served) -> None:
    await served.viber_post(viber_message("viber-user-6", {"type": "sticker", "sticker_id": 40100}, 1006))
    broken = served.viber.add_media(photo("banana.jpg")[:300])
    await served.viber_post(viber_message("viber-user-7", {"type": "picture", "media": broken}, 1007))
    sticker = (await served.viber.wait_for_messages("viber-user-6"))[0].body
    assert sticker["type"] == "text" and "stickers" in sticker["text"]
    picture = (await served.viber.wait_for_messages("viber-user-7"))[0].body
    assert "couldn't use this image" in picture["text"]


async def test_viber_api_errors_are_retried(served: Served) -> None:
    served.viber.fail_next(503, {"status": 99})
    served.viber.fail_next(200, {"status": 12, "status_message": "tooManyRequests"})
    await served.viber_post(viber_message("viber-user-8", {"type": "text", "text": "green apple"}, 1008))
    sent = await served.viber.wait_for_messages("viber-user-8", timeout=30)
    assert sent[0].body["type"] == "rich_media"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.one_of(
        st.binary(max_size=200),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=20),
            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
            max_leaves=12,
        ).map(lambda v: json.dumps(v).encode()),
        st.fixed_dictionaries(
            {
                "event": st.sampled_from(["message", "seen", "conversation_started", "x"]),
                "message_token": st.integers() | st.none(),
                "sender": st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
                "message": st.dictionaries(
                    st.sampled_from(["type", "text", "media"]), st.text(max_size=10) | st.integers(), max_size=3
                ),
            }
        ).map(lambda v: json.dumps(v).encode()),
    )
)
async def test_fuzzed_signed_bodies_never_cause_a_500(served: Served, body: bytes) -> None:
    viber = await served.viber_post(body)
    whatsapp = await served.whatsapp_post(body)
    assert viber.status_code in (200, 400), viber.text
    assert whatsapp.status_code in (200, 400), whatsapp.text


# --- WhatsApp ---------------------------------------------------------------------------------------------


async def test_whatsapp_verification(served: Served) -> None:
    ok = await served.http.get(
        "/webhooks/whatsapp",
        params={"hub.mode": "subscribe", "hub.verify_token": WHATSAPP_VERIFY_TOKEN, "hub.challenge": "1158201444"},
    )
    assert ok.status_code == 200 and ok.text == "1158201444"
    bad = await served.http.get(
        "/webhooks/whatsapp",
        params={"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1158201444"},
    )
    assert bad.status_code == 403


async def test_whatsapp_photo_gets_cards_and_a_more_like_this_button(served: Served) -> None:
    media_id = served.whatsapp.add_media(photo("arla-standard-milk.jpg"))
    body = whatsapp_payload(
        "46700000001", {"id": "wamid.in1", "type": "image", "image": {"id": media_id, "mime_type": "image/jpeg"}}
    )
    assert (await served.whatsapp_post(body)).status_code == 200
    await served.whatsapp.wait_for_messages("46700000001", 2)
    await served.whatsapp.settle()
    sent = [s.body for s in served.whatsapp.to("46700000001")]
    cards, last = sent[:-1], sent[-1]
    assert any("Arla Standard Milk" in c["interactive"]["body"]["text"] for c in cards)
    first = cards[0]["interactive"]
    assert first["type"] == "cta_url" and first["header"]["image"]["link"].startswith(served.url + "/media/")
    assert first["action"]["parameters"]["display_text"] == "Open in shop"
    assert last["interactive"]["type"] == "button"
    assert last["interactive"]["action"]["buttons"][0]["reply"]["id"].startswith("more:")


async def test_whatsapp_text_filter_and_button_reply(served: Served) -> None:
    await served.whatsapp_post(
        whatsapp_payload("46700000002", {"id": "wamid.in2", "type": "text", "text": {"body": "apple under 12"}})
    )
    await served.whatsapp.wait_for_messages("46700000002", 2)
    await served.whatsapp.settle()
    sent = [s.body for s in served.whatsapp.to("46700000002")]
    for card in sent[:-1]:
        facts = card["interactive"]["body"]["text"].splitlines()[1]
        assert float(facts.removeprefix("SEK\u00a0").split(" ")[0]) <= 12, facts
    more_id = sent[-1]["interactive"]["action"]["buttons"][0]["reply"]["id"]
    reply = {
        "id": "wamid.in3",
        "type": "interactive",
        "interactive": {"type": "button_reply", "button_reply": {"id": more_id, "title": "More like this"}},
    }
    await served.whatsapp_post(whatsapp_payload("46700000002", reply))
    await served.whatsapp.wait_for_messages("46700000002", len(sent) + 1)


async def test_whatsapp_bad_signature_replay_and_statuses(served: Served) -> None:
    body = whatsapp_payload("46700000003", {"id": "wamid.in4", "type": "text", "text": {"body": "green apple"}})
    assert (await served.whatsapp_post(body, signature="sha256=" + "0" * 64)).status_code == 401
    assert (await served.whatsapp_post(body, signature="")).status_code == 401
    for _ in range(2):
        assert (await served.whatsapp_post(body)).status_code == 200
    statuses = json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "W",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "statuses": [{"id": "wamid.out", "status": "delivered", "recipient_id": "46700000003"}],
                            },
                        }
                    ],
                }
            ],
        }
    ).encode()
    assert (await served.whatsapp_post(statuses)).status_code == 200
    await served.whatsapp.wait_for_messages("46700000003")
    await served.whatsapp.settle()
    searches = [
        s
        for s in served.whatsapp.to("46700000003")
        if s.body["type"] == "interactive" and s.body["interactive"]["type"] == "button"
    ]
    assert len(searches) == 1, "the replayed delivery is not searched twice"


async def test_whatsapp_media_over_the_limit_and_non_images(served: Served) -> None:
    big = served.whatsapp.add_media(b"\xff\xd8" + b"0" * (5 * 1024 * 1024 + 10))
    await served.whatsapp_post(
        whatsapp_payload("46700000004", {"id": "wamid.in5", "type": "image", "image": {"id": big}})
    )
    pdf = served.whatsapp.add_media(b"%PDF-1.7", "application/pdf")
    await served.whatsapp_post(
        whatsapp_payload("46700000005", {"id": "wamid.in6", "type": "image", "image": {"id": pdf}})
    )
    await served.whatsapp_post(
        whatsapp_payload("46700000006", {"id": "wamid.in7", "type": "audio", "audio": {"id": "1"}})
    )
    assert "larger than 5 MB" in (await served.whatsapp.wait_for_messages("46700000004"))[0].body["text"]["body"]
    assert "not an image" in (await served.whatsapp.wait_for_messages("46700000005"))[0].body["text"]["body"]
    assert "voice messages" in (await served.whatsapp.wait_for_messages("46700000006"))[0].body["text"]["body"]


async def test_whatsapp_rate_limit_error_is_retried(served: Served) -> None:
    served.whatsapp.fail_next(429, {"error": {"message": "Rate limit hit", "code": 130429}})
    await served.whatsapp_post(
        whatsapp_payload("46700000007", {"id": "wamid.in8", "type": "text", "text": {"body": "green apple"}})
    )
    assert await served.whatsapp.wait_for_messages("46700000007", 2)


# --- queue, metrics, Telegram ------------------------------------------------------------------------------


async def test_full_queue_answers_busy(bot_catalog: Settings, offline_encoder) -> None:
    async for running in serve(bot_catalog, offline_encoder, queue_size=1, workers=1):
        running.whatsapp.media_delay = 0.5  # the first search holds the only worker for a while
        users = [f"4670000010{i}" for i in range(4)]
        for i, user in enumerate(users):
            media_id = running.whatsapp.add_media(photo("banana.jpg"))
            body = whatsapp_payload(user, {"id": f"wamid.busy{i}", "type": "image", "image": {"id": media_id}})
            assert (await running.whatsapp_post(body)).status_code == 200
        for user in users:
            await running.whatsapp.wait_for_messages(user)
        first_texts = {u: running.whatsapp.to(u)[0].body for u in users}
        busy = [u for u, m in first_texts.items() if m["type"] == "text" and "busy" in m["text"]["body"]]
        assert busy, first_texts
        assert len(first_texts) == len(users), "every user got an answer or a busy reply"
        metrics = (await running.http.get("/metrics")).text
        assert 'visearch_webhook_requests_total{outcome="busy",platform="whatsapp"}' in metrics


async def test_metrics_count_requests_and_search_latency(served: Served) -> None:
    await served.viber_post(viber_message("viber-user-9", {"type": "text", "text": "green apple"}, 1009))
    await served.viber.wait_for_messages("viber-user-9")
    await served.viber_post(b"{}", signature="bad")
    text = (await served.http.get("/metrics")).text
    assert 'visearch_webhook_requests_total{outcome="queued",platform="viber"} 1.0' in text
    assert 'visearch_webhook_requests_total{outcome="bad_signature",platform="viber"} 1.0' in text
    assert 'visearch_search_latency_seconds_count{platform="viber"} 1.0' in text
    assert "visearch_queue_depth" in text
    assert 'visearch_replies_total{outcome="sent",platform="viber"} 1.0' in text


async def test_telegram_webhook_checks_the_secret_and_answers(served: Served) -> None:
    update = {"update_id": 777, "message": served.telegram.user_message(6001, text="/help")}
    wrong = await served.http.post("/webhooks/telegram", json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "no"})
    assert wrong.status_code == 401
    for _ in range(2):  # Telegram retries: the second delivery is acknowledged, not answered again
        ok = await served.http.post(
            "/webhooks/telegram", json=update, headers={"X-Telegram-Bot-Api-Secret-Token": TG_SECRET}
        )
        assert ok.status_code == 200
    await served.telegram.wait_for(lambda: served.telegram.replies_to(6001), what="the /help answer")
    await served.telegram.settle()
    assert len(served.telegram.replies_to(6001)) == 1
    bad = await served.http.post(
        "/webhooks/telegram", content=b"[1,2]", headers={"X-Telegram-Bot-Api-Secret-Token": TG_SECRET}
    )
    assert bad.status_code == 400


async def test_media_route_serves_only_catalog_photos(served: Served) -> None:
    assert (await served.http.get("/media/00000000-0000-0000-0000-000000000000")).status_code == 404
    assert (await served.http.get("/media/..%2F..%2Fetc%2Fpasswd")).status_code == 404


async def test_viber_falls_back_to_pictures_when_rich_media_is_refused(served: Served) -> None:
    served.viber.fail_next(200, {"status": 3, "status_message": "badData"})
    await served.viber_post(viber_message("viber-user-10", {"type": "text", "text": "green apple"}, 1010))
    await served.viber.wait_for_messages("viber-user-10", 2)
    await served.viber.settle()
    sent = [s.body for s in served.viber.to("viber-user-10")]
    assert [m["type"] for m in sent[:-1]] == ["picture"] * (len(sent) - 1)
    assert all(m["media"].startswith(served.url + "/media/") for m in sent[:-1])
    assert sent[-1]["keyboard"]["Buttons"][0]["ActionBody"].startswith("more:")


async def _cli(env: dict[str, str], *args: str) -> tuple[int, str]:
    import os
    import sys

    full = {k: v for k, v in os.environ.items() if not k.startswith("VISEARCH_")}
    full.update(env, PYTHONPATH=str(SAMPLE.parents[2]))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "visearch.indexer.cli",
        *args,
        env=full,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    return process.returncode or 0, out.decode()


async def test_set_webhook_commands(served: Served) -> None:
    code, out = await _cli(
        {"VISEARCH_VIBER_TOKEN": VIBER_TOKEN, "VISEARCH_VIBER_API_URL": served.viber.api_url},
        "bot",
        "viber",
        "--set-webhook",
        f"{served.url}/webhooks/viber",
    )
    assert code == 0, out
    assert served.viber.sent[-1].path == "set_webhook"
    code, out = await _cli(
        {"VISEARCH_TELEGRAM_TOKEN": TOKEN, "VISEARCH_TELEGRAM_API_URL": served.telegram.api_url},
        "bot",
        "telegram",
        "--set-webhook",
        "https://shop.example/webhooks/telegram",
    )
    assert code == 0, out
    assert served.telegram.webhook["url"] == "https://shop.example/webhooks/telegram"
    assert f"VISEARCH_TELEGRAM_WEBHOOK_SECRET={served.telegram.webhook['secret_token']}" in out
    assert TOKEN not in out and VIBER_TOKEN not in out


async def test_serve_command_starts_reports_ready_and_stops_on_sigterm(bot_catalog: Settings) -> None:
    """`visearch serve` as the README runs it after `make demo` (embedded store, no platform configured,
    no encoder named: the offline encoder that built the collection is used, CLIP is never tried)."""
    import os
    import signal
    import sys

    port = free_port()
    env = cli_env(bot_catalog)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "visearch.indexer.cli",
        "serve",
        "--port",
        str(port),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            for _ in range(600):
                try:
                    ready = await http.get("/readyz")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            assert ready.status_code == 200 and ready.json()["platforms"] == []
            assert (await http.post("/webhooks/viber", content=b"{}")).status_code == 404
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), timeout=30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    # uvicorn shuts down gracefully, then re-raises SIGTERM (exit by the signal, as Docker expects)
    assert process.returncode in (0, -signal.SIGTERM), err.decode()
    assert "Traceback" not in err.decode()
