"""The Telegram adapter of the one conversation (`visearch.bots.conversation`), independent of the framework.

Both adapters (`aiogram_router`, `ptb_handlers`) read the same facts from an update (user, text,
photo file ids, document type and size) with `route_message`, call the platform-neutral
`Conversation` through `TelegramConversation`, and send the replies `presentation` renders from its
typed answer with `deliver`. Nothing here decides *what to say*: that is the conversation's job.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol, TypeVar

from visearch.bots.conversation import (
    COMMANDS,
    OWN_COMMANDS,
    AlbumCollector,
    Answer,
    Cards,
    Channel,
    ContentKind,
    Conversation,
    ConversationSettings,
    IncomingFile,
    Metrics,
    Notice,
)
from visearch.bots.conversation.i18n import LocaleSettings, load_locale_settings
from visearch.bots.conversation.metrics import ConversationMetrics
from visearch.bots.conversation.wording import Wordings
from visearch.bots.ratelimit import RateLimiter
from visearch.bots.telegram import presentation as ui
from visearch.bots.telegram.config import TelegramSettings, load_telegram_settings
from visearch.core.config import Settings, load_settings
from visearch.core.search import SearchService

log = logging.getLogger("visearch.telegram")

CHANNEL = "telegram"
#: gets a file's bytes by its Telegram file id
Download = Callable[[str], Awaitable[bytes]]
Progress = Callable[[], Awaitable[object]]
T = TypeVar("T")
FloodError = TypeVar("FloodError", bound=Exception)

#: message content we cannot search by (Bot API field names)
UNSUPPORTED_CONTENT = MappingProxyType(
    {
        "sticker": ContentKind.STICKER,
        "voice": ContentKind.VOICE,
        "audio": ContentKind.AUDIO,
        "video": ContentKind.VIDEO,
        "video_note": ContentKind.VIDEO_NOTE,
        "animation": ContentKind.ANIMATION,
        "location": ContentKind.LOCATION,
        "venue": ContentKind.VENUE,
        "contact": ContentKind.CONTACT,
        "poll": ContentKind.POLL,
        "dice": ContentKind.DICE,
    }
)

__all__ = ["AlbumCollector", "IncomingFile", "PhotoIdCache", "TelegramConversation", "deliver", "route_message"]


class PhotoIdCache:
    """Telegram file ids of product photos already uploaded: each image is uploaded once, then reused."""

    def __init__(self, max_items: int = 10_000) -> None:
        self.max_items = max_items
        self._ids: OrderedDict[str, str] = OrderedDict()

    def get(self, key: str) -> str | None:
        """The file id for this image, if it was uploaded before."""
        file_id = self._ids.get(key)
        if file_id is not None:
            self._ids.move_to_end(key)
        return file_id

    def put(self, key: str, file_id: str) -> None:
        """Remember an upload's file id (least recently used dropped beyond `max_items`)."""
        self._ids[key] = file_id
        self._ids.move_to_end(key)
        while len(self._ids) > self.max_items:
            self._ids.popitem(last=False)

    def forget(self, key: str) -> None:
        """Drop a file id Telegram no longer accepts."""
        self._ids.pop(key, None)


#: the Telegram settings that, set explicitly, give Telegram its own rate limit inside `visearch serve`
TELEGRAM_RATE_SETTINGS = frozenset({"rate_limit", "rate_window"})


def telegram_channel(telegram: TelegramSettings, *, own_rate_limit: bool = False) -> Channel:
    """Telegram as the conversation sees it: 20 MB downloads, admins by user id, cards per page, and
    (`own_rate_limit`) the VISEARCH_TELEGRAM_RATE_* limit instead of the conversation's shared one."""
    return Channel(
        CHANNEL,
        telegram.max_file_bytes,
        admins=frozenset(str(i) for i in telegram.admin_ids),
        cards_per_answer=telegram.cards_per_page,
        limiter=RateLimiter(telegram.rate_limit, telegram.rate_window) if own_rate_limit else None,
    )


def keeps_own_rate_limit(telegram: TelegramSettings) -> bool:
    """True when the operator set VISEARCH_TELEGRAM_RATE_LIMIT / _WINDOW: inside `visearch serve` they
    still limit Telegram (as before one rate limit served every channel), with a deprecation line."""
    return bool(TELEGRAM_RATE_SETTINGS & telegram.model_fields_set)


def conversation_settings(
    telegram: TelegramSettings, shop_name: str, locales: LocaleSettings | None = None
) -> ConversationSettings:
    """The conversation knobs of a Telegram-only bot (`visearch bot telegram`)."""
    locales = locales or load_locale_settings()
    return ConversationSettings(
        rate_limit=telegram.rate_limit,
        rate_window=telegram.rate_window,
        album_wait=telegram.album_wait,
        shop_name=shop_name,
        default_locale=locales.default_locale,
        locales_dir=locales.locales_dir,
    )


class TelegramConversation:
    """The conversation as Telegram's adapters call it (Telegram ids and replies). One instance
    serves every chat; share it between adapters if you like. `visearch serve` passes the
    `conversation` it shares with its other channels; alone, one is built from the Telegram settings."""

    def __init__(
        self,
        telegram: TelegramSettings,
        settings: Settings | None = None,
        service: SearchService | None = None,
        shop_name: str = "Shop",
        *,
        conversation: Conversation | None = None,
        metrics: ConversationMetrics | None = None,
    ) -> None:
        self.telegram = telegram
        self.settings = settings
        self.shop_name = shop_name
        self._service = service
        self._owns_service = service is None
        self._opening = asyncio.Lock()
        self.metrics: ConversationMetrics = metrics or (conversation.metrics if conversation else Metrics())
        self.conversation = conversation or Conversation(
            self.start, conversation_settings(telegram, shop_name), self.metrics
        )
        # inside `visearch serve` (a shared conversation) the Telegram limit applies only when set explicitly
        self.channel = telegram_channel(
            telegram, own_rate_limit=conversation is not None and keeps_own_rate_limit(telegram)
        )
        self.photo_ids = PhotoIdCache()

    @property
    def albums(self) -> AlbumCollector:
        return self.conversation.albums

    @property
    def counters(self) -> dict[str, int]:
        """Searches, rate-limited messages and errors of this channel (what /stats shows)."""
        return self.metrics.counts(CHANNEL)

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> SearchService:
        """Open the search service (load the encoder, open the store) once; later calls reuse it."""
        if self._service is None:
            async with self._opening:
                if self._service is None:
                    self._service = await SearchService.open(self.settings or load_settings())
                    await self._service.check_collection()
        return self._service

    async def close(self) -> None:
        """Close the service if this conversation opened it."""
        if self._service is not None and self._owns_service:
            await self._service.close()
            self._service = None

    # --- what a user sends ------------------------------------------------------------------------

    def _render(self, answer: Answer) -> list[ui.Reply]:
        return ui.render(answer, self.conversation.wording(_locale_of(answer)))

    async def handle_command(self, command: str, user_id: int | None, language: str | None = None) -> list[ui.Reply]:
        """/start, /help, /filters and the admin-only /stats (`language`: the user's `language_code`)."""
        user = "" if user_id is None else str(user_id)
        return self._render(await self.conversation.command(self.channel, user, command, language))

    async def handle_text(
        self, user_id: int, text: str, progress: Progress | None = None, language: str | None = None
    ) -> list[ui.Reply]:
        """Words (and filters) in, cards out."""
        return self._render(await self.conversation.text(self.channel, str(user_id), text, progress, language))

    async def handle_photo(
        self,
        user_id: int,
        photo: IncomingFile,
        caption: str | None,
        media_group_id: str | None,
        download: Download,
        progress: Progress | None = None,
        language: str | None = None,
    ) -> list[ui.Reply]:
        """A photo (the largest size) or an image document, alone or as part of an album."""
        answer = await self.conversation.photos(
            self.channel, str(user_id), photo, caption, _by_file_id(download), media_group_id, progress, language
        )
        return self._render(answer)

    async def handle_document(
        self,
        user_id: int,
        document: IncomingFile,
        caption: str | None,
        media_group_id: str | None,
        download: Download,
        progress: Progress | None = None,
        language: str | None = None,
    ) -> list[ui.Reply]:
        """A file sent as a document: an image is searched like a photo, anything else is refused."""
        answer = await self.conversation.document(
            self.channel, str(user_id), document, caption, _by_file_id(download), media_group_id, progress, language
        )
        return self._render(answer)

    def handle_unsupported(self, content: ContentKind, language: str | None = None) -> list[ui.Reply]:
        """Stickers, voice, video, contacts...: say what works."""
        return self._render(self.conversation.unsupported(self.channel, content, language))

    async def handle_callback(self, user_id: int, data: str, language: str | None = None) -> ui.CallbackAnswer:
        """'More like this' and 'Show more' taps."""
        answer = await self.conversation.button(self.channel, str(user_id), data, language)
        return ui.callback_answer(answer, self.conversation.wording(_locale_of(answer)))

    def reply_failed(self) -> None:
        """An answer could not be sent (counted in /stats errors)."""
        self.metrics.reply_failed(CHANNEL)

    async def send_replies(self, replies: list[ui.Reply], sender: Sender) -> None:
        """Deliver replies to one chat; a failure is logged and counted, never raised into the framework."""
        try:
            await deliver(replies, sender, self.photo_ids)
        except Exception:
            self.reply_failed()
            log.exception("could not send the answer to a Telegram chat")


def conversation_or_default(conversation: TelegramConversation | None) -> TelegramConversation:
    """The given conversation, or one built from the `VISEARCH_*` settings (a shop's bot adding our handlers)."""
    return conversation if conversation is not None else TelegramConversation(load_telegram_settings())


def answered_commands(with_commands: bool) -> tuple[str, ...]:
    """The commands the adapters answer: all, or without /start and /help when the shop's bot has its own."""
    return COMMANDS if with_commands else tuple(c for c in COMMANDS if c not in OWN_COMMANDS)


def command_menus(
    wordings: Wordings, commands: tuple[str, ...] = COMMANDS
) -> list[tuple[str | None, list[tuple[str, str]]]]:
    """What setMyCommands registers: `(language_code, [(command, description)])`, first the shop's
    default locale for every user (`None`: no language_code), then one menu per other locale on
    offer under its two-letter language (Telegram's `language_code` is ISO 639-1: `pt_BR` -> `pt`)."""

    def menu(locale: str) -> list[tuple[str, str]]:
        words = wordings.of(locale)
        return [(command, words.command_description(command)) for command in commands]

    locales = wordings.locales
    menus: list[tuple[str | None, list[tuple[str, str]]]] = [(None, menu(locales.default))]
    languages: dict[str, str] = {}
    for locale in sorted(locales.available, key=lambda code: (len(code), code)):
        languages.setdefault(locale.split("_")[0], locale)  # `pt` before `pt_BR` when both are on offer
    menus += [(language, menu(locale)) for language, locale in sorted(languages.items())]
    return menus


async def register_commands(bot: Any, wordings: Wordings, bot_command: Callable[[str, str], Any]) -> None:
    """setMyCommands for the default and every locale on offer, so each user's command menu is in
    their language (`bot_command` builds the framework's BotCommand). Best effort: a refusal is
    logged and the bot still answers."""
    for language, menu in command_menus(wordings):
        commands = [bot_command(name, description[:256]) for name, description in menu]
        try:
            await bot.set_my_commands(commands, language_code=language)
        except Exception as exc:
            log.warning("Telegram refused the command menu for %s: %s", language or "the default", exc)
            return


def command_name(text: str | None) -> str:
    """'/help@ShopBot more words' -> 'help'."""
    return (text or "/").split()[0][1:].split("@")[0]


def carries_unsupported_content(message: Any) -> bool:
    """The adapters' filter for content we cannot search by (the one table, `UNSUPPORTED_CONTENT`)."""
    return unsupported_content(message) is not None


async def with_flood_retries(
    send: Callable[[], Awaitable[T]],
    flood: type[FloodError],
    seconds: Callable[[FloodError], float],
    *,
    attempts: int,
    max_wait: float,
    what: str,
) -> T:
    """Honour HTTP 429 `retry_after`: wait as long as Telegram asks (up to `max_wait`), then send again."""
    for attempt in range(attempts):
        try:
            return await send()
        except flood as exc:
            wait = seconds(exc)
            if attempt == attempts - 1 or wait > max_wait:
                raise
            log.warning("Telegram flood control: waiting %s s before %s", wait, what)
            await asyncio.sleep(wait)
    raise AssertionError("unreachable")


def _locale_of(answer: Answer) -> str:
    """The locale an answer is worded in (silence has none: nothing is rendered)."""
    return answer.locale if isinstance(answer, Cards | Notice) else "en"


def language_of(user: Any) -> str | None:
    """A Telegram user's `language_code` (an IETF tag such as `uk` or `pt-br`), when the client tells it."""
    code = getattr(user, "language_code", None)
    return code if isinstance(code, str) and code else None


def _by_file_id(download: Download) -> Callable[[IncomingFile], Awaitable[bytes]]:
    async def fetch(file: IncomingFile) -> bytes:
        return await download(file.file_id)

    return fetch


# --- framework-neutral message routing and delivery ------------------------------------------------
# aiogram and python-telegram-bot both model messages on the Bot API field names (`photo`,
# `document`, `caption`, `media_group_id`, `from_user`...), so one function reads either.


def unsupported_content(message: Any) -> ContentKind | None:
    """What kind of unsearchable content a message carries, or None."""
    for field_name, kind in UNSUPPORTED_CONTENT.items():
        if getattr(message, field_name, None):
            return kind
    return None


async def route_message(
    conversation: TelegramConversation, message: Any, download: Download, progress: Progress | None = None
) -> list[ui.Reply]:
    """Answer a message of either framework: photo, image document, text, or unsupported content."""
    user = getattr(message, "from_user", None)
    user_id = user.id if user else message.chat.id
    caption = getattr(message, "caption", None)
    group = getattr(message, "media_group_id", None)
    language = language_of(user)
    if getattr(message, "animation", None):  # a GIF also carries a `document`: name it properly
        return conversation.handle_unsupported(ContentKind.ANIMATION, language)
    if message.photo:
        largest = max(message.photo, key=lambda p: (p.width * p.height, p.file_size or 0))
        photo = IncomingFile(largest.file_id, largest.file_size, "image/jpeg")
        return await conversation.handle_photo(user_id, photo, caption, group, download, progress, language)
    if message.document:
        doc = message.document
        document = IncomingFile(doc.file_id, doc.file_size, doc.mime_type, doc.file_name)
        return await conversation.handle_document(user_id, document, caption, group, download, progress, language)
    if getattr(message, "text", None):
        return await conversation.handle_text(user_id, message.text, progress, language)
    what = unsupported_content(message)
    return conversation.handle_unsupported(what, language) if what else []


class PhotoRejected(Exception):
    """Telegram refused a photo (stale file id, unreachable URL, file gone): send the fallback."""


def is_photo_problem(description: str) -> bool:
    """Bad Request descriptions that mean 'this photo', not 'this caption or keyboard'."""
    text = description.lower()
    return any(
        s in text
        for s in (
            "file identifier",
            "http url",
            "wrong type of the web page content",
            "image_process_failed",
            "photo_invalid_dimensions",
            "failed to get",
            "wrong remote file",
            "file must be non-empty",
        )
    )


@dataclass(frozen=True)
class PhotoInput:
    """How a photo is given to sendPhoto: a known file id, a local file to upload, or a URL."""

    file_id: str | None = None
    path: str | None = None
    url: str | None = None


class Sender(Protocol):
    """What an adapter provides to send replies to one chat."""

    async def send_text(self, reply: ui.TextReply) -> None: ...

    async def send_photo(self, reply: ui.PhotoReply, photo: PhotoInput) -> str:
        """Send the card; return the file id of the sent photo; raise PhotoRejected if refused."""
        ...


async def deliver(replies: list[ui.Reply], sender: Sender, photo_ids: PhotoIdCache) -> None:
    """Send replies in order. Product photos are uploaded once and reused by file id; a photo
    Telegram refuses falls back to an upload (stale id) or to the card as text."""
    for reply in replies:
        if isinstance(reply, ui.TextReply):
            await sender.send_text(reply)
            continue
        key = reply.photo_key
        cached = photo_ids.get(key)
        attempts: list[PhotoInput] = []
        if cached:
            attempts.append(PhotoInput(file_id=cached))
        if reply.photo_file:
            attempts.append(PhotoInput(path=reply.photo_file))
        elif reply.photo_url:
            attempts.append(PhotoInput(url=reply.photo_url))
        for attempt in attempts:
            try:
                photo_ids.put(key, await sender.send_photo(reply, attempt))
                break
            except (PhotoRejected, FileNotFoundError, PermissionError, IsADirectoryError) as exc:
                photo_ids.forget(key)
                log.warning("product photo not sent (%s), trying the next way", type(exc).__name__)
        else:
            await sender.send_text(reply.fallback)
