"""The one conversation every channel talks to: a message's facts in, a typed answer out.

Telegram, Viber, WhatsApp (and the HTTP API's search, through `search_outcome`) only translate
their input into calls here and render the `Cards` / `Notice` / `Silence` that come back. The
same situation gets the same answer on every channel: rate limiting, the filter syntax, albums,
reply tokens, bad input, and one mapping from errors to notice reasons.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from visearch.bots.conversation.answers import (
    COMMANDS,
    MORE_LIKE_THIS,
    NEXT_PAGE,
    Answer,
    Cards,
    ContentKind,
    Notice,
    NoticeReason,
    SearchKind,
    Silence,
)
from visearch.bots.conversation.i18n import SOURCE_LOCALE, Locales
from visearch.bots.conversation.incoming import (
    AlbumCollector,
    Download,
    IncomingFile,
    MediaTooLargeError,
    NotAnImageError,
    Progress,
)
from visearch.bots.conversation.metrics import ConversationMetrics
from visearch.bots.conversation.wording import DOCUMENT_NAMES, Wording, Wordings
from visearch.bots.ratelimit import RateLimiter
from visearch.core.domain import Filters, Query, SearchResult
from visearch.core.errors import EncoderBusyError, ImageError, VisearchError
from visearch.core.query_syntax import parse_query_text
from visearch.core.search import CursorExpiredError, PointNotFoundError, SearchService

log = logging.getLogger("visearch.conversation")

OpenService = Callable[[], Awaitable[SearchService]]


@dataclass(frozen=True)
class Channel:
    """One channel as the conversation sees it: its name (metrics, rate-limit keys), the largest
    media it may download, its admins (by the channel's user id), cards per answer."""

    name: str
    max_media_bytes: int
    admins: frozenset[str] = frozenset()
    cards_per_answer: int = 3
    #: this channel's own rate limit, when it has one (else the conversation's, shared by every channel)
    limiter: RateLimiter | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ConversationSettings:
    """The knobs every channel shares (one rate limit for all of them)."""

    rate_limit: int = 10
    rate_window: float = 60.0
    album_wait: float = 0.8
    shop_name: str = "Shop"
    #: the language of a customer whose platform tells none, or one not on offer (VISEARCH_DEFAULT_LOCALE)
    default_locale: str = SOURCE_LOCALE
    #: the shop's own catalogs, adding locales or overriding our wording (VISEARCH_LOCALES_DIR)
    locales_dir: Path | None = None


def search_outcome_of(exc: Exception) -> Notice:
    """The notice reason of a failed search: the one error mapping of every channel."""
    if isinstance(exc, ImageError):
        return Notice(NoticeReason.BAD_IMAGE, detail=str(exc), image_problem=exc.problem, error=exc)
    if isinstance(exc, CursorExpiredError):
        return Notice(NoticeReason.EXPIRED, error=exc)
    if isinstance(exc, PointNotFoundError):
        return Notice(NoticeReason.PRODUCT_GONE, error=exc)
    if isinstance(exc, EncoderBusyError):  # too many queries waiting for the encoder (VISEARCH_MAX_PENDING)
        return Notice(NoticeReason.BUSY, error=exc)
    if isinstance(exc, VisearchError):  # StoreError and the rest: no collection, store unreachable
        return Notice(NoticeReason.UNAVAILABLE, error=exc)
    return Notice(NoticeReason.FAILURE, error=exc)


async def search_outcome(service: SearchService, query: Query) -> SearchResult | Notice:
    """Run a search; a failure becomes its notice (never raised). Nothing is logged here."""
    try:
        return await service.search(query)
    except Exception as exc:
        return search_outcome_of(exc)


def log_notice(channel: str, notice: Notice) -> None:
    """Failures are logged once, where they become a notice: unexpected ones with their traceback."""
    if notice.reason is NoticeReason.FAILURE:
        error = notice.error
        log.error(
            "unexpected error while answering a %s user",
            channel,
            exc_info=(type(error), error, error.__traceback__) if error is not None else None,
        )
    elif notice.reason is NoticeReason.UNAVAILABLE:
        log.error("%s search unavailable: %s", channel, notice.error)
    elif notice.reason is NoticeReason.BUSY:
        log.warning("%s search refused: %s", channel, notice.error)


async def _notify(progress: Progress | None) -> None:
    """Show 'sending photo...'; a failure to do so never stops the search."""
    if progress is None:
        return
    try:
        await progress()
    except Exception as exc:
        log.debug("progress notice failed: %s", type(exc).__name__)


def command_name(text: str) -> str | None:
    """`filters` for "/filters" or "/filters@shop_bot"; None when the text is not one of our commands."""
    if not text.startswith("/") or len(text) < 2:
        return None
    name = text[1:].split(maxsplit=1)[0].split("@")[0].lower()
    return name if name in COMMANDS else None


def is_document_image(mime_type: str | None) -> bool:
    """A document we may search by: an image type, or an unnamed binary (phones send some photos so)."""
    mime = (mime_type or "").lower()
    if mime in DOCUMENT_NAMES:
        return False
    return not mime or mime.startswith("image/") or mime == "application/octet-stream"


class Conversation:
    """What visearch answers, on any channel. One instance serves every user of every channel."""

    def __init__(
        self,
        service: SearchService | OpenService,
        settings: ConversationSettings,
        metrics: ConversationMetrics,
        wordings: Wordings | None = None,
    ) -> None:
        self._service = service
        self.settings = settings
        self.metrics = metrics
        self.limiter = RateLimiter(settings.rate_limit, settings.rate_window)
        self.albums = AlbumCollector(settings.album_wait)
        #: the catalogs, loaded once (`visearch serve` shares its page's and API's with the conversation)
        self.wordings = wordings or Wordings(Locales(settings.default_locale, settings.locales_dir))
        self.locales = self.wordings.locales

    async def service(self) -> SearchService:
        """The search service (opened on first use when the conversation was given an opener)."""
        if isinstance(self._service, SearchService):
            return self._service
        return await self._service()

    # --- the customer's language ---------------------------------------------------------------

    def locale_for(self, language: str | None) -> str:
        """The locale on offer that best fits the channel's hint (`uk`, `pt-BR`), else the shop's default."""
        return self.locales.negotiate(language)

    def wording(self, locale: str) -> Wording:
        """The words of one locale (loaded once): what a channel renders an answer with."""
        return self.wordings.of(locale)

    def _in(self, language: str | None, answer: Answer) -> Answer:
        """The answer stamped with the customer's locale (silence has no words)."""
        if isinstance(answer, Notice | Cards):
            return replace(answer, locale=self.locale_for(language))
        return answer

    # --- what a user can send -------------------------------------------------------------------

    async def command(self, channel: Channel, user: str, command: str, language: str | None = None) -> Answer:
        """/start, /help, /filters and the admin-only /stats; an unknown command is not ours: silence."""
        return self._in(language, await self._guarded(channel, self._command(channel, user, command.lower())))

    async def text(
        self, channel: Channel, user: str, text: str, progress: Progress | None = None, language: str | None = None
    ) -> Answer:
        """Typed words with filters; on channels whose buttons reply with text, a reply token or a /command."""
        text = text.strip()
        if text.startswith((MORE_LIKE_THIS, NEXT_PAGE)):
            return await self.button(channel, user, text, language)
        if (name := command_name(text)) is not None:
            return await self.command(channel, user, name, language)
        return self._in(language, await self._guarded(channel, self._words(channel, user, text, progress)))

    async def button(self, channel: Channel, user: str, token: str, language: str | None = None) -> Answer:
        """A tap on "More like this" (`more:<point>`) or "Show more" (`page:<cursor>`); other data is not ours."""
        limit = channel.cards_per_answer
        if token.startswith(MORE_LIKE_THIS):
            query, kind = Query(similar_to=token[len(MORE_LIKE_THIS) :], limit=limit), SearchKind.SIMILAR
        elif token.startswith(NEXT_PAGE):
            query, kind = Query(cursor=token[len(NEXT_PAGE) :], limit=limit), SearchKind.IMAGE
        else:
            return Silence()
        if (refusal := self._throttle(channel, user)) is not None:
            return self._in(language, refusal)
        return self._in(language, await self._guarded(channel, self._search(channel, query, kind, None)))

    async def photos(
        self,
        channel: Channel,
        user: str,
        file: IncomingFile,
        caption: str | None,
        download: Download,
        album: str | None = None,
        progress: Progress | None = None,
        language: str | None = None,
    ) -> Answer:
        """A photo, alone or one of an album (`album`: the channel's id of the album, answered once)."""
        step = self._photos(channel, user, file, caption, download, album, progress)
        return self._in(language, await self._guarded(channel, step))

    async def document(
        self,
        channel: Channel,
        user: str,
        file: IncomingFile,
        caption: str | None,
        download: Download,
        album: str | None = None,
        progress: Progress | None = None,
        language: str | None = None,
    ) -> Answer:
        """A file sent as a document: an image is searched like a photo, anything else is refused."""
        if not is_document_image(file.mime_type):
            notice = Notice(NoticeReason.NOT_AN_IMAGE, document=(file.mime_type or "").lower())
            return self._in(language, self._answered(channel, notice))
        return await self.photos(channel, user, file, caption, download, album, progress, language)

    def unsupported(self, channel: Channel, content: ContentKind, language: str | None = None) -> Answer:
        """Stickers, voice, video, contacts...: say what works."""
        return self._in(language, self._answered(channel, Notice(NoticeReason.UNSUPPORTED, content=content)))

    def refused(self, channel: Channel, reason: NoticeReason, language: str | None = None) -> Notice:
        """A notice decided outside the conversation (the webhook queue is full: BUSY), counted like the others."""
        notice = Notice(reason, locale=self.locale_for(language))
        self._answered(channel, notice)
        return notice

    def welcome(self, language: str | None = None) -> Notice:
        """The welcome a channel shows unasked (Viber's conversation_started), not counted as an answer."""
        return Notice(NoticeReason.WELCOME, shop_name=self.settings.shop_name, locale=self.locale_for(language))

    # --- the steps ------------------------------------------------------------------------------

    async def _command(self, channel: Channel, user: str, command: str) -> Answer:
        if command in ("start", "help"):
            return Notice(NoticeReason.WELCOME, shop_name=self.settings.shop_name)
        if command == "filters":
            return Notice(NoticeReason.FILTERS_LIST, facets=await (await self.service()).facets())
        if command == "stats":
            if user not in channel.admins:
                return Notice(NoticeReason.ADMIN_ONLY)
            stats = dict(await (await self.service()).stats())
            stats.update(self.metrics.counts(channel.name))
            return Notice(NoticeReason.STATS, stats=stats)
        return Silence()

    async def _words(self, channel: Channel, user: str, text: str, progress: Progress | None) -> Answer:
        parsed = parse_query_text(text)
        if not parsed.has_words:
            if parsed.filters.is_empty():
                return Notice(NoticeReason.WELCOME, shop_name=self.settings.shop_name)
            return Notice(NoticeReason.FILTERS_ONLY, filters=parsed.filters)
        if (refusal := self._throttle(channel, user)) is not None:
            return refusal
        query = Query(text=parsed.text, filters=parsed.filters, limit=channel.cards_per_answer)
        await _notify(progress)
        return await self._search(channel, query, SearchKind.TEXT, parsed.text)

    async def _photos(
        self,
        channel: Channel,
        user: str,
        file: IncomingFile,
        caption: str | None,
        download: Download,
        album: str | None,
        progress: Progress | None,
    ) -> Answer:
        if self._over_limit(channel, file.file_size):
            return Notice(NoticeReason.TOO_LARGE, limit_bytes=channel.max_media_bytes)
        files = [file]
        if album:
            collected = await self.albums.collect((channel.name, user, album), file, caption)
            if collected is None:
                return Silence()  # the album's first message answers for all of it
            files = [f for f in collected.items if not self._over_limit(channel, f.file_size)]
            caption = collected.caption
        if (refusal := self._throttle(channel, user)) is not None:
            return refusal
        parsed = parse_query_text(caption or "")
        await _notify(progress)
        fetched = await self._download(channel, files, download)
        if isinstance(fetched, Notice):
            return fetched
        query = Query(images=fetched, filters=parsed.filters, limit=channel.cards_per_answer)
        return await self._search(channel, query, SearchKind.IMAGE, None)

    async def _download(
        self, channel: Channel, files: Sequence[IncomingFile], download: Download
    ) -> list[bytes] | Notice:
        try:
            images = await asyncio.gather(*(download(f) for f in files))
        except MediaTooLargeError:
            return Notice(NoticeReason.TOO_LARGE, limit_bytes=channel.max_media_bytes)
        except NotAnImageError as exc:
            return Notice(NoticeReason.NOT_AN_IMAGE, document=exc.mime_type.lower(), error=exc)
        except Exception as exc:
            log.warning("could not download a photo from %s: %s", channel.name, type(exc).__name__)
            return Notice(NoticeReason.DOWNLOAD_FAILED, error=exc)
        if any(self._over_limit(channel, len(data)) for data in images):
            return Notice(NoticeReason.TOO_LARGE, limit_bytes=channel.max_media_bytes)
        return list(images)

    @staticmethod
    def _over_limit(channel: Channel, size: int | None) -> bool:
        return size is not None and size > channel.max_media_bytes

    def _throttle(self, channel: Channel, user: str) -> Answer | None:
        """None when the user may search; else the polite notice once per blocked stretch, then silence."""
        key = (channel.name, user)
        limiter = channel.limiter or self.limiter
        wait = limiter.hit(key)
        if not wait:
            return None
        self.metrics.answered(channel.name, NoticeReason.RATE_LIMITED.value)
        if limiter.should_warn(key):
            return Notice(NoticeReason.RATE_LIMITED, wait_seconds=wait)
        return Silence()

    async def _search(self, channel: Channel, query: Query, kind: SearchKind, words: str | None) -> Answer:
        service = await self.service()
        started = time.perf_counter()
        outcome = await search_outcome(service, query)
        self.metrics.searched(channel.name, time.perf_counter() - started)
        if isinstance(outcome, Notice):
            return outcome
        if outcome.no_match:
            filters = query.filters if kind is not SearchKind.SIMILAR else Filters()
            return Notice(NoticeReason.NO_MATCH, search=kind, words=words, filters=filters)
        return Cards(outcome.cards, outcome.next_cursor, paged=query.kind == "page")

    async def _guarded(self, channel: Channel, step: Awaitable[Answer]) -> Answer:
        """Every answer goes out through here: counted, failures logged, nothing raised."""
        try:
            answer = await step
        except Exception as exc:
            answer = search_outcome_of(exc)
        if isinstance(answer, Notice) and answer.reason is NoticeReason.RATE_LIMITED:
            return answer  # counted when throttled
        return self._answered(channel, answer)

    def _answered(self, channel: Channel, answer: Answer) -> Answer:
        if isinstance(answer, Notice):
            log_notice(channel.name, answer)
            self.metrics.answered(channel.name, answer.reason.value)
        elif isinstance(answer, Cards):
            self.metrics.answered(channel.name, "cards")
        return answer


__all__ = ["Channel", "Conversation", "ConversationSettings", "IncomingFile", "search_outcome", "search_outcome_of"]
