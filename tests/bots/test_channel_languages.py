"""Each channel answers in the customer's language, driven through its fake platform on 127.0.0.1:
Telegram by the user's `language_code` (both frameworks, and the command menu per language), Viber
by `sender.language`, WhatsApp by the sender's calling code (VISEARCH_WHATSAPP_LOCALES); an
unknown language gets the shop's default (VISEARCH_DEFAULT_LOCALE, else English)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from tests.bots.test_server import Served, card_titles, serve
from tests.bots.test_telegram import buttons, caption_of, sent_message, start_bot
from tests.fakes.messengers import viber_message, whatsapp_payload
from visearch.bots.conversation import Notice, NoticeReason, SearchKind
from visearch.bots.conversation.i18n import Locales
from visearch.bots.conversation.wording import ENGLISH, Wording, Wordings
from visearch.core.config import Settings
from visearch.core.domain import Filters

LANGUAGES = ["uk", "es", "de", "ar"]
#: words nothing in the sample catalog matches
NONSENSE = "zzqxv"


def words_of(locale: str) -> Wording:
    return Wordings(Locales()).of(locale)


def no_match_line(words: Wording) -> str:
    """The first sentence of the no-match answer to NONSENSE, as plain text."""
    notice = Notice(NoticeReason.NO_MATCH, search=SearchKind.TEXT, words=NONSENSE, filters=Filters())
    return words.words(notice).splitlines()[0]


@pytest.fixture
async def served(bot_catalog: Settings, offline_encoder, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Served]:
    monkeypatch.setenv("VISEARCH_WHATSAPP_LOCALES", "380=uk,34=es,49=de,966=ar")
    async for running in serve(bot_catalog, offline_encoder):
        yield running


def viber_started(user: str, language: str) -> bytes:
    return json.dumps(
        {
            "event": "conversation_started",
            "timestamp": 1,
            "message_token": 9,
            "type": "open",
            "user": {"id": user, "name": "C", "language": language, "country": "UA", "api_version": 10},
            "subscribed": False,
        }
    ).encode()


@pytest.mark.parametrize("language", [*LANGUAGES, "zz"])
async def test_viber_welcome_no_match_and_buttons_in_the_senders_language(served: Served, language: str) -> None:
    words = words_of(language if language != "zz" else "en")
    welcome = (await served.viber_post(viber_started(f"v-{language}", language))).json()["text"]
    assert welcome.startswith("👋") and words.filter_examples()[0] in welcome
    assert (ENGLISH.filter_examples()[0] in welcome) is (language == "zz")

    user = f"viber-{language}"
    token = 3000 + 10 * [*LANGUAGES, "zz"].index(language)  # delivery ids stay unique across the servers
    await served.viber_post(viber_message(user, {"type": "text", "text": NONSENSE}, token, language))
    await served.viber_post(viber_message(user, {"type": "text", "text": "apple"}, token + 1, language))
    sent = [m.body for m in await served.viber.wait_for_messages(user, 2)]
    texts = [m.get("text", "") for m in sent if m["type"] == "text"]
    assert any(no_match_line(words) in text for text in texts), texts
    carousel = next(m for m in sent if m["type"] == "rich_media")
    assert card_titles(carousel)
    labels = {b.get("Text") for b in carousel["rich_media"]["Buttons"]}
    assert f"<b>{words.more_like_this}</b>" in labels and f"<b>{words.open}</b>" in labels
    if language != "zz":
        assert words.more_like_this != ENGLISH.more_like_this


@pytest.mark.parametrize(("number", "language"), [("380501234567", "uk"), ("34600111222", "es"),
                                                  ("4915112345678", "de"), ("966501234567", "ar"),
                                                  ("15551234567", "en")])  # fmt: skip
async def test_whatsapp_speaks_the_language_of_the_senders_calling_code(
    served: Served, number: str, language: str
) -> None:
    words = words_of(language)
    await served.whatsapp_post(
        whatsapp_payload(number, {"id": f"w1{number}", "type": "text", "text": {"body": NONSENSE}})
    )
    notice = (await served.whatsapp.wait_for_messages(number, 1))[0].body
    assert no_match_line(words).replace("<i>", "").replace("</i>", "") in notice["text"]["body"].replace("_", "")
    await served.whatsapp_post(
        whatsapp_payload(number, {"id": f"w2{number}", "type": "text", "text": {"body": "apple"}})
    )
    await served.whatsapp.wait_for_messages(number, 3)
    await served.whatsapp.settle()
    sent = [s.body for s in served.whatsapp.to(number)][1:]
    shop_buttons = {c["interactive"]["action"]["parameters"]["display_text"] for c in sent[:-1]}
    assert shop_buttons == {words.open_in_shop}
    reply_buttons = [b["reply"]["title"] for b in sent[-1]["interactive"]["action"]["buttons"]]
    assert reply_buttons[0] == words.more_like_this and all(len(t) <= 20 for t in reply_buttons)


@pytest.mark.parametrize("framework", ["aiogram", "ptb"])
async def test_telegram_answers_in_the_users_language_code(
    framework: str, bot_catalog: Settings, offline_encoder
) -> None:
    async for bot in start_bot(framework, bot_catalog, offline_encoder):
        menus = {c.params.get("language_code"): c.params for c in bot.fake.calls_of("setMyCommands")}
        assert {None, "uk", "es", "de", "ar", "pt", "ru"} <= set(menus)  # the default, then one per locale
        uk_menu = (
            json.loads(menus["uk"]["commands"]) if isinstance(menus["uk"]["commands"], str) else menus["uk"]["commands"]
        )
        assert {c["command"]: c["description"] for c in uk_menu}["filters"] == words_of("uk").command_description(
            "filters"
        )

        for chat, language in zip((8101, 8102, 8103, 8104, 8105), [*LANGUAGES, "zz"], strict=True):
            words = words_of(language if language != "zz" else "en")
            bot.fake.languages[chat] = language
            bot.fake.send_text_from_user(chat, "/start")
            welcome = caption_of((await bot.answer(chat))[0])
            assert welcome.startswith("👋") and words.filter_examples()[0] in welcome
            bot.fake.send_text_from_user(chat, NONSENSE)
            no_match = caption_of((await bot.answer(chat, since=1))[0])
            assert no_match_line(words).replace("<i>", "").replace("</i>", "") in no_match
            bot.fake.send_text_from_user(chat, "apple")
            cards = await bot.answer(chat, since=2)
            labels = {b["text"] for b in buttons(cards[0])}
            assert f"🔍 {words.more_like_this}" in labels and f"🛒 {words.open_in_shop}" in labels
            more = next(b for b in buttons(cards[0]) if b["text"].startswith("🔍"))
            bot.fake.press_button(chat, sent_message(bot, cards[0]), more["callback_data"])
            similar = await bot.answer(chat, since=2 + len(cards))
            assert any(f"🔍 {words.more_like_this}" == b["text"] for b in buttons(similar[0]))
