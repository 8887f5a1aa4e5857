"""The Telegram bot end to end: the real aiogram and python-telegram-bot clients against a fake
Bot API server on 127.0.0.1, a real indexed catalog, real photos, the offline encoder.

Every scenario runs on both frameworks and expects the same answers.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.conftest import SAMPLE_DIR, TRICKY_TITLE, free_port
from tests.fakes.telegram import TOKEN, Call, FakeTelegram
from tests.serving import cli_env
from visearch.bots.telegram.config import load_telegram_settings
from visearch.bots.telegram.conversation import TelegramConversation
from visearch.bots.telegram.runner import make_runner
from visearch.core.config import Settings
from visearch.core.search import SearchService
from visearch.core.store.factory import open_store

SAMPLE = Path(__file__).resolve().parents[2] / "indexer" / "demo_data" / "grocery"
FRAMEWORKS = ["aiogram", "ptb"]
ADMIN = 777
CARDS = 3


@dataclass
class Bot:
    fake: FakeTelegram
    conversation: TelegramConversation
    framework: str

    async def answer(self, chat_id: int, since: int = 0) -> list[Call]:
        """The messages the bot sends to a chat after the first `since` (waits until it is done)."""
        await self.fake.wait_for(lambda: len(self.fake.replies_to(chat_id)) > since, what=f"replies to chat {chat_id}")
        await self.fake.settle()
        return self.fake.replies_to(chat_id)[since:]

    async def only_reply(self, chat_id: int) -> Call:
        """The single message the bot answers with (waits for it, then checks no second one follows)."""
        replies = await self.answer(chat_id)
        assert len(replies) == 1, [c.params.get("text") or c.params.get("caption") for c in replies]
        return replies[0]


async def start_bot(
    framework: str,
    settings: Settings,
    offline_encoder,
    webhook_url: str | None = None,
    port: int = 0,
    **telegram_overrides: object,
) -> AsyncIterator[Bot]:
    fake = FakeTelegram()
    await fake.start()
    options = dict(
        token=TOKEN,
        api_url=fake.api_url,
        poll_timeout=1,
        admins=str(ADMIN),
        rate_limit=5,
        album_wait=0.5,
        cards_per_page=CARDS,
    )
    options.update(telegram_overrides)
    telegram = load_telegram_settings(**options)
    service = SearchService(offline_encoder, open_store(settings), settings)
    conversation = TelegramConversation(telegram, settings, service=service, shop_name="Test <Shop>")
    runner = make_runner(framework, telegram, conversation, webhook_url, "127.0.0.1", port)  # type: ignore[arg-type]
    await runner.start()
    try:
        yield Bot(fake, conversation, framework)
    finally:
        await runner.stop()
        await service.close()
        await fake.stop()


@pytest.fixture(params=FRAMEWORKS)
async def bot(request: pytest.FixtureRequest, bot_catalog: Settings, offline_encoder) -> AsyncIterator[Bot]:
    async for running in start_bot(request.param, bot_catalog, offline_encoder):
        yield running


def photo(name: str) -> bytes:
    return (SAMPLE / "queries" / name).read_bytes()


def buttons(call: Call) -> list[dict]:
    return [b for row in (call.params.get("reply_markup") or {}).get("inline_keyboard", []) for b in row]


def shown_price(facts: str) -> float:
    """The amount of a card's "SEK 11.44 · Apple" line (Babel's English: the code before the amount)."""
    found = re.search(r"SEK\u00a0(\d+(?:\.\d+)?)", facts)
    assert found, facts
    return float(found.group(1))


def caption_of(call: Call) -> str:
    return FakeTelegram.visible_text(
        call.params.get("caption") or call.params.get("text") or "", call.params.get("parse_mode")
    )


def sent_message(bot: Bot, call: Call) -> dict:
    """The message object the fake returned for a call (what a later callback query carries)."""
    chat = call.chat_id
    for (chat_id, _), message in bot.fake.messages.items():
        if (
            chat_id == chat
            and message.get("reply_markup") == call.params.get("reply_markup")
            and (message.get("caption", message.get("text")) == caption_of(call))
        ):
            return message
    raise AssertionError("message not found")


# --- photo in, cards out --------------------------------------------------------------------------


async def test_store_photo_returns_its_product_as_cards(bot: Bot) -> None:
    chat = 1001
    bot.fake.send_photo_from_user(chat, photo("arla-standard-milk.jpg"))
    cards = await bot.answer(chat)
    assert len(cards) == CARDS
    assert all(c.method == "sendPhoto" and c.params["parse_mode"] == "HTML" for c in cards)
    assert any("Arla Standard Milk" in caption_of(c) for c in cards), [caption_of(c) for c in cards]
    first = cards[0]
    assert "SEK" in caption_of(first)
    labels = {b["text"]: b for b in buttons(first)}
    assert labels["🔍 More like this"]["callback_data"].startswith("more:")
    assert len(labels["🔍 More like this"]["callback_data"].encode()) <= 64
    assert labels["🛒 Open in shop"]["url"].startswith("https://")
    assert first.uploads, "the product photo is uploaded from the catalog folder"
    assert bot.fake.sent_to(chat, "sendChatAction"), "the chat shows the bot is working"
    largest = bot.fake.calls_of("getFile")[-1].params["file_id"]
    assert bot.fake.files[largest].size == len(photo("arla-standard-milk.jpg")), "the largest size is downloaded"


async def test_product_photos_are_uploaded_once_then_sent_by_file_id(bot: Bot) -> None:
    chat = 1002
    bot.fake.send_photo_from_user(chat, photo("arla-standard-milk.jpg"))
    first = await bot.answer(chat)
    bot.fake.send_photo_from_user(chat, photo("arla-standard-milk.jpg"))
    second = await bot.answer(chat, since=len(first))
    assert [caption_of(c) for c in first] == [caption_of(c) for c in second]
    assert all(c.uploads for c in first)
    assert not any(c.uploads for c in second)
    assert all(str(c.params["photo"]).startswith("FILE") for c in second)


async def test_show_more_and_more_like_this(bot: Bot) -> None:
    chat = 1003
    bot.fake.send_text_from_user(chat, "green apple")
    page1 = await bot.answer(chat)
    assert len(page1) == CARDS
    last = page1[-1]
    show_more = next(b for b in buttons(last) if b["text"].startswith("Show more"))
    assert all(not any(b["text"].startswith("Show more") for b in buttons(c)) for c in page1[:-1])

    query_id = bot.fake.press_button(chat, sent_message(bot, last), show_more["callback_data"])
    page2 = await bot.answer(chat, since=CARDS)
    assert not {caption_of(c) for c in page1} & {caption_of(c) for c in page2}
    assert any(c.params["callback_query_id"] == query_id for c in bot.fake.calls_of("answerCallbackQuery"))
    edit = bot.fake.sent_to(chat, "editMessageReplyMarkup")
    assert edit and not any(b["text"].startswith("Show more") for b in buttons(edit[-1]))

    more = next(b for b in buttons(page1[0]) if b["text"] == "🔍 More like this")
    seen = len(bot.fake.replies_to(chat))
    bot.fake.press_button(chat, sent_message(bot, page1[0]), more["callback_data"])
    similar = await bot.answer(chat, since=seen)
    title = caption_of(page1[0]).splitlines()[0]
    assert similar and all(caption_of(c).splitlines()[0] != title for c in similar)


async def test_expired_show_more_says_so(bot: Bot) -> None:
    chat = 1004
    bot.fake.press_button(chat, bot.fake.user_message(chat, text="old"), "page:gone-cursor")
    answer = await bot.fake.wait_for(lambda: bot.fake.calls_of("answerCallbackQuery"), what="callback answer")
    assert "expired" in answer[-1].params["text"]
    await bot.fake.settle()
    assert not bot.fake.replies_to(chat)


async def test_album_is_answered_once(bot: Bot) -> None:
    chat = 1005
    for name in ("banana.jpg", "banana.jpg", "avocado.jpg"):
        bot.fake.send_photo_from_user(
            chat, photo(name), media_group_id="album-1", caption="under 100" if name == "avocado.jpg" else None
        )
    await bot.answer(chat)
    await asyncio.sleep(bot.conversation.telegram.album_wait + 0.3)
    await bot.fake.settle()
    replies = bot.fake.replies_to(chat)
    assert len(bot.fake.sent_to(chat, "sendChatAction")) == 1, "one search for the whole album"
    assert len({caption_of(c) for c in replies}) == len(replies), "no product shown twice"
    assert len(bot.fake.calls_of("getFile")) == 3, "every photo of the album is used"


# --- text in ----------------------------------------------------------------------------------------


async def test_text_query_with_price_filter_returns_only_matching_products(bot: Bot) -> None:
    chat = 1006
    bot.fake.send_text_from_user(chat, "apple category:apple in stock")
    cards = await bot.answer(chat)
    titles = [caption_of(c).splitlines()[0] for c in cards]
    assert titles and "Granny Smith" not in titles  # the one apple out of stock
    assert all(t in {"Golden Delicious", "Pink Lady", "Red Delicious", "Royal Gala"} for t in titles), titles
    assert cards[0].method == "sendPhoto"


async def test_text_with_price_ceiling(bot: Bot) -> None:
    chat = 1007
    bot.fake.send_text_from_user(chat, "apple under 12")
    for call in await bot.answer(chat):
        facts = caption_of(call).splitlines()[1]
        assert shown_price(facts) <= 12, facts


async def test_photo_caption_filters_the_cards(bot: Bot) -> None:
    chat = 1016
    bot.fake.send_photo_from_user(chat, photo("arla-standard-milk.jpg"), caption="under 15")
    replies = await bot.answer(chat)
    assert replies
    for call in replies:
        text = caption_of(call)
        if call.method == "sendPhoto":
            assert shown_price(text.splitlines()[1]) <= 15, text
        else:
            assert "under 15" in text  # nothing that cheap: the no-match names the filter


async def test_filters_without_words_ask_for_words(bot: Bot) -> None:
    bot.fake.send_text_from_user(1008, "category:milk")
    reply = await bot.only_reply(1008)
    assert "category:milk" in caption_of(reply) and "add a few words" in caption_of(reply)


async def test_nothing_relevant_is_an_honest_no_match(bot: Bot, clothing_dir: Path) -> None:
    shirt = sorted((clothing_dir / "images").glob("*.jpg"))[9].read_bytes()  # far from the T-shirt product
    bot.fake.send_photo_from_user(1009, shirt)
    reply = await bot.only_reply(1009)
    assert reply.method == "sendMessage" and "couldn't find this product" in caption_of(reply)


# --- escaping -----------------------------------------------------------------------------------------


async def test_catalog_text_with_html_and_markdown_specials_is_escaped(bot: Bot, clothing_dir: Path) -> None:
    chat = 1010
    bot.fake.send_photo_from_user(chat, sorted((clothing_dir / "images").glob("*.jpg"))[0].read_bytes())
    cards = await bot.answer(chat)
    assert cards[0].status == 200
    visible = caption_of(cards[0])
    assert visible.splitlines()[0] == TRICKY_TITLE
    assert "Shirts & <Tops>" in visible and "A & B <i>not a tag</i>" in visible
    assert FakeTelegram.utf16_len(visible) <= 1024
    shop = next(b for b in buttons(cards[0]) if b["text"] == "🛒 Open in shop")
    assert shop["url"] == "https://shop.example/p/tricky?a=1&b=2"


async def test_words_with_specials_are_echoed_safely(bot: Bot) -> None:
    bot.fake.send_text_from_user(1011, '<b>zzqx & "qqq" <unknown>')
    reply = await bot.only_reply(1011)
    assert reply.status == 200
    # nothing in the catalog matches these words: the no-match reply quotes them back, as plain text
    assert 'Nothing in the catalogue matches <b>zzqx & "qqq" <unknown>.' in caption_of(reply)


async def test_fake_server_rejects_unescaped_html_like_telegram() -> None:
    fake = FakeTelegram()
    await fake.start()
    try:
        async with httpx.AsyncClient(base_url=f"{fake.api_url}/bot{TOKEN}") as client:
            bad = await client.post("/sendMessage", data={"chat_id": 1, "text": "<Tom & Jerry>", "parse_mode": "HTML"})
            good = await client.post(
                "/sendMessage", data={"chat_id": 1, "text": "&lt;Tom &amp; Jerry&gt; & co", "parse_mode": "HTML"}
            )
    finally:
        await fake.stop()
    assert bad.status_code == 400 and "can't parse entities" in bad.json()["description"]
    assert good.status_code == 200 and good.json()["result"]["text"] == "<Tom & Jerry> & co"


# --- commands -----------------------------------------------------------------------------------------


async def test_start_and_help_explain_what_to_send(bot: Bot) -> None:
    for chat, command in ((1012, "/start"), (1013, "/help")):
        bot.fake.send_text_from_user(chat, command)
        text = caption_of(await bot.only_reply(chat))
        assert "Test <Shop>" in text and "photo" in text and "/filters" in text


async def test_filters_lists_categories_with_counts(bot: Bot) -> None:
    bot.fake.send_text_from_user(1014, "/filters")
    text = caption_of(await bot.only_reply(1014))
    apples = sum(
        row["category"] == "Apple" for row in csv.DictReader((SAMPLE_DIR / "catalog.csv").open(encoding="utf-8"))
    )
    assert apples > 1 and f"category:Apple ({apples})" in text
    assert "82 products" in text
    assert "in stock" in text


async def test_stats_only_for_admins(bot: Bot) -> None:
    bot.fake.send_text_from_user(ADMIN, "/stats")
    text = caption_of(await bot.only_reply(ADMIN))
    assert "images indexed: 82" in text and "offline:" in text and "uptime" in text
    bot.fake.send_text_from_user(1015, "/stats")
    assert "admins" in caption_of(await bot.only_reply(1015))


# --- bad input ------------------------------------------------------------------------------------------


def png(width: int, height: int, mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def huge_png() -> bytes:
    """20000 x 20000 pixels in about 50 KB: a decompression bomb for a naive decoder."""
    return png(20000, 20000, mode="1")


async def test_bad_input_gets_a_friendly_reply_and_the_bot_goes_on(bot: Bot, huge_png: bytes) -> None:
    fake = bot.fake
    jpeg = photo("banana.jpg")
    cases = {
        2001: (
            lambda c: fake.send_document_from_user(c, jpeg, "image/jpeg", "huge.jpg", size=25 * 1024 * 1024),
            "larger than 20 MB",
        ),
        2002: (lambda c: fake.send_photo_from_user(c, jpeg, size=21 * 1024 * 1024), "larger than 20 MB"),
        2003: (
            lambda c: fake.send_document_from_user(c, b"%PDF-1.7\n%\xe2\xe3\n1 0 obj", "application/pdf", "cat.pdf"),
            "PDF",
        ),
        2004: (
            lambda c: fake.send_content_from_user(
                c,
                sticker={
                    "file_id": "stk",
                    "file_unique_id": "ustk",
                    "type": "regular",
                    "width": 512,
                    "height": 512,
                    "is_animated": False,
                    "is_video": False,
                },
            ),
            "stickers",
        ),
        2005: (
            lambda c: fake.send_content_from_user(c, voice={"file_id": "v", "file_unique_id": "uv", "duration": 2}),
            "voice messages",
        ),
        2006: (lambda c: fake.send_photo_from_user(c, jpeg[: len(jpeg) // 3]), "couldn't use this image"),
        2007: (lambda c: fake.send_document_from_user(c, png(1, 1), "image/png", "dot.png"), "too small"),
        2008: (
            lambda c: fake.send_document_from_user(
                c, b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml", "logo.svg"
            ),
            "couldn't use this image",
        ),
        2009: (lambda c: fake.send_document_from_user(c, b"", "image/jpeg", "empty.jpg"), "couldn't use this image"),
        2016: (lambda c: fake.send_document_from_user(c, huge_png, "image/png", "bomb.png"), "too large"),
        2017: (lambda c: fake.send_document_from_user(c, b"PK\x03\x04zip", "application/zip", "photos.zip"), "ZIP"),
    }
    for chat, (send, _) in cases.items():
        send(chat)
    for chat, (_, expected) in cases.items():
        text = caption_of(await bot.only_reply(chat))
        assert expected in text, (chat, text)
    too_big = {c.params.get("file_id") for c in fake.calls_of("getFile")}
    assert not any(fake.files[f].size > 20 * 1024 * 1024 for f in too_big if f in fake.files), "never asked for"
    fake.send_photo_from_user(2010, photo("banana.jpg"))
    assert "Banana" in caption_of((await bot.answer(2010))[0])


async def test_error_in_one_update_never_stops_the_bot(bot: Bot) -> None:
    bot.fake.fail_next("sendMessage", status=500, description="Internal Server Error")
    bot.fake.send_text_from_user(2011, "/help")
    await bot.fake.wait_for(lambda: any(c.status == 500 for c in bot.fake.calls_of("sendMessage")), what="the 500")
    bot.fake.send_text_from_user(2012, "/help")
    assert "photo" in caption_of(await bot.only_reply(2012))


# --- flood control ----------------------------------------------------------------------------------------


async def test_429_is_retried_after_retry_after(bot: Bot) -> None:
    chat = 2013
    bot.fake.fail_next("sendPhoto", status=429, retry_after=1)
    bot.fake.send_photo_from_user(chat, photo("arla-standard-milk.jpg"))
    cards = await bot.answer(chat)
    attempts = [c for c in bot.fake.calls_of("sendPhoto") if c.chat_id == chat]
    assert attempts[0].status == 429 and len(cards) == CARDS
    assert attempts[1].at - attempts[0].at >= 0.95


async def test_per_user_rate_limit_replies_politely_once(bot: Bot) -> None:
    chat = 2014
    for _ in range(7):
        bot.fake.send_text_from_user(chat, "apple")
    await bot.fake.wait_for(
        lambda: any("sending a lot" in caption_of(c) for c in bot.fake.replies_to(chat)), what="the rate-limit reply"
    )
    await bot.fake.settle(quiet=1.0)
    polite = [c for c in bot.fake.replies_to(chat) if "sending a lot" in caption_of(c)]
    assert len(polite) == 1
    assert bot.conversation.counters["rate_limited"] == 2
    bot.fake.send_text_from_user(2015, "apple")  # another user is not affected
    assert await bot.answer(2015)


# --- webhook mode -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_webhook_mode_checks_the_secret(framework: str, bot_catalog: Settings, offline_encoder) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/webhooks/telegram"
    async for running in start_bot(framework, bot_catalog, offline_encoder, webhook_url=url, port=port):
        fake = running.fake
        assert fake.webhook["url"] == url and fake.webhook["secret_token"]
        assert not fake.calls_of("getUpdates")
        update = {"update_id": 1, "message": fake.user_message(3001, text="/help")}
        async with httpx.AsyncClient() as client:
            refused = await client.post(url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"})
            missing = await client.post(url, json=update)
            accepted = await client.post(
                url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": fake.webhook["secret_token"]}
            )
        assert refused.status_code in (401, 403) and missing.status_code in (401, 403)
        assert accepted.status_code == 200
        assert "photo" in caption_of(await running.only_reply(3001))


# --- plugged into a shop's existing bot -------------------------------------------------------------------


def conversation_for(fake: FakeTelegram, settings: Settings, offline_encoder) -> TelegramConversation:
    telegram = load_telegram_settings(token=TOKEN, api_url=fake.api_url, poll_timeout=1)
    return TelegramConversation(
        telegram, settings, service=SearchService(offline_encoder, open_store(settings), settings)
    )


async def test_aiogram_router_plugs_into_an_existing_dispatcher(bot_catalog: Settings, offline_encoder) -> None:
    from aiogram import Bot as AiogramBot
    from aiogram import Dispatcher, Router
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer
    from aiogram.filters import CommandStart
    from aiogram.types import Message

    from visearch.bots.telegram.aiogram_router import create_router

    fake = FakeTelegram()
    await fake.start()
    conversation = conversation_for(fake, bot_catalog, offline_encoder)
    shop = Router()

    @shop.message(CommandStart())
    async def welcome(message: Message) -> None:
        await message.answer("Welcome to my shop")

    dp = Dispatcher()
    dp.include_router(shop)
    dp.include_router(create_router(conversation, with_commands=False))  # the README's lines
    bot = AiogramBot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(fake.api_url)))
    polling = asyncio.create_task(dp.start_polling(bot, handle_signals=False, polling_timeout=1))
    try:
        fake.send_text_from_user(4001, "/start")
        fake.send_photo_from_user(4002, photo("banana.jpg"))
        running = Bot(fake, conversation, "aiogram")
        assert caption_of(await running.only_reply(4001)) == "Welcome to my shop"
        assert "Banana" in caption_of((await running.answer(4002))[0])
    finally:
        await dp.stop_polling()
        await polling
        await conversation._service.close()  # type: ignore[union-attr]
        await fake.stop()


async def test_ptb_handlers_plug_into_an_existing_application(bot_catalog: Settings, offline_encoder) -> None:
    from telegram import Update
    from telegram.ext import ApplicationBuilder, CommandHandler, ContextTypes

    from visearch.bots.telegram.ptb_handlers import add_visearch_handlers

    fake = FakeTelegram()
    await fake.start()
    conversation = conversation_for(fake, bot_catalog, offline_encoder)

    async def welcome(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.effective_message.reply_text("Welcome to my shop")

    application = (
        ApplicationBuilder()
        .token(TOKEN)
        .base_url(f"{fake.api_url}/bot")
        .base_file_url(f"{fake.api_url}/file/bot")
        .build()
    )
    application.add_handler(CommandHandler("start", welcome))
    add_visearch_handlers(application, conversation, with_commands=False)  # the README's lines
    async with application:
        await application.start()
        await application.updater.start_polling(timeout=1)
        try:
            fake.send_text_from_user(4003, "/start")
            fake.send_photo_from_user(4004, photo("banana.jpg"))
            running = Bot(fake, conversation, "ptb")
            assert caption_of(await running.only_reply(4003)) == "Welcome to my shop"
            assert "Banana" in caption_of((await running.answer(4004))[0])
        finally:
            await application.updater.stop()
            await application.stop()
    await conversation._service.close()  # type: ignore[union-attr]
    await fake.stop()


# --- configuration ------------------------------------------------------------------------------------------


def test_settings_errors_name_the_variable_and_never_show_the_token() -> None:
    from visearch.core.errors import ConfigError

    with pytest.raises(ConfigError, match="VISEARCH_TELEGRAM_ADMINS"):
        load_telegram_settings(admins="12,abc")
    with pytest.raises(ConfigError, match="VISEARCH_TELEGRAM_API_URL"):
        load_telegram_settings(api_url="api.telegram.org")
    settings = load_telegram_settings(token="999:SECRET-abc", admins="1, 2")
    assert "SECRET" not in repr(settings) and "SECRET" not in str(settings.model_dump())
    assert settings.admin_ids == {1, 2}
    with pytest.raises(ConfigError, match="@BotFather"):
        load_telegram_settings(token="").require_token()


def test_bot_command_without_a_token_says_where_to_get_one(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("VISEARCH_")}
    done = subprocess.run(
        [sys.executable, "-m", "visearch.indexer.cli", "bot", "telegram", "--framework", "ptb"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(SAMPLE.parents[2])},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "VISEARCH_TELEGRAM_TOKEN is not set" in done.stderr


async def test_cli_bot_answers_a_photo_and_stops_cleanly_on_sigterm(bot_catalog: Settings) -> None:
    """`visearch bot telegram` as a user runs it: token and API root from the environment."""
    import os
    import signal
    import sys

    fake = FakeTelegram()
    await fake.start()
    env = cli_env(
        bot_catalog,
        VISEARCH_TELEGRAM_TOKEN=TOKEN,
        VISEARCH_TELEGRAM_API_URL=fake.api_url,
        VISEARCH_TELEGRAM_POLL_TIMEOUT="1",
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "visearch.indexer.cli",
        "bot",
        "telegram",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        fake.send_photo_from_user(5001, photo("banana.jpg"))
        await fake.wait_for(lambda: fake.replies_to(5001), timeout=90, what="the CLI bot's answer")
        await fake.settle()
        assert "Banana" in caption_of(fake.replies_to(5001)[0])
        process.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await fake.stop()
    assert process.returncode == 0, err.decode()
    assert TOKEN not in (out + err).decode()
