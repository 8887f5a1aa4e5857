"""The Telegram bot's behaviour, independent of the framework: update facts in, replies out.

Both adapters (`aiogram_router`, `ptb_handlers`) extract the same facts from an update (user,
text, photo file ids, document type and size), call one `handle_*` method here, and send the
returned replies. Search itself is the core `SearchService`; this module only decides *what to
say*: rate limiting, album collection, bad-input checks, error wording, pagination buttons.
"""

from __future__ import annotations

from types import MappingProxyType
import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Protocol

from visearch.bots.ratelimit import RateLimiter
from visearch.bots.telegram import presentation as ui
from visearch.bots.telegram.config import TelegramSettings
from visearch.core.config import Settings, load_settings
from visearch.core.domain import Filters, Query, SearchResult
from visearch.core.errors import EncoderBusyError, ImageError, StoreError, VisearchError
from visearch.core.query_syntax import parse_query_text
from visearch.core.search import CursorExpiredError, PointNotFoundError, SearchService

log = logging.getLogger("visearch.telegram")

Download = Callable[[str], Awaitable[bytes]]
Progress = Callable[[], Awaitable[object]]

#: message content we cannot search by, and how the reply names it (Bot API field names)
UNSUPPORTED_CONTENT = MappingProxyType({
    "sticker": "stickers",
    "voice": "voice messages",
    "audio": "audio",
    "video": "videos",
    "video_note": "video messages",
    "animation": "GIFs",
    "location": "locations",
    "venue": "places",
    "contact": "contacts",
    "poll": "polls",
    "dice": "dice",
})

#: common document types that are certainly not photos, with how the reply names them
NOT_IMAGE_TYPES = MappingProxyType({
    "application/pdf": "a PDF document",
    "application/zip": "a ZIP archive",
    "application/msword": "a Word document",
    "text/plain": "a text file",
    "video/mp4": "a video",
})


@dataclass(frozen=True)
class IncomingFile:
    """A photo size or a document, as Telegram describes it in the update."""

    file_id: str
    file_size: int | None = None
    mime_type: str | None = None
    file_name: str | None = None


@dataclass
class _Album:
    items: list[IncomingFile] = field(default_factory=list)
    caption: str | None = None
    last_added: float = 0.0


class AlbumCollector:
    """Gathers the photos of one album (one `media_group_id`) so it is answered once.

    Telegram delivers an album as separate updates. The first update's handler becomes the leader:
    it waits until no photo has arrived for `wait` seconds and gets the whole album; the handlers
    of the other updates get None and send nothing. Needs updates handled concurrently (aiogram's
    default; python-telegram-bot handlers registered with `block=False`).
    """

    def __init__(self, wait: float, max_items: int = 10) -> None:
        self.wait = wait
        self.max_items = max_items
        self._albums: dict[Hashable, _Album] = {}

    async def collect(self, group_id: Hashable, item: IncomingFile, caption: str | None) -> _Album | None:
        """Add a photo; the leader gets the complete album back, the others None."""
        album = self._albums.get(group_id)
        now = time.monotonic()
        if album is not None:
            if len(album.items) < self.max_items:
                album.items.append(item)
            album.caption = album.caption or caption
            album.last_added = now
            return None
        album = _Album([item], caption, now)
        self._albums[group_id] = album
        try:
            while (quiet := time.monotonic() - album.last_added) < self.wait:
                await asyncio.sleep(self.wait - quiet)
        finally:
            del self._albums[group_id]
        return album


async def _notify(progress: Progress | None) -> None:
    """Show 'sending photo...' in the chat; a failure to do so never stops the search."""
    if progress is None:
        return
    try:
        await progress()
    except Exception as exc:
        log.debug("chat action failed: %s", type(exc).__name__)


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


class TelegramConversation:
    """What the bot answers. One instance serves every chat; share it between adapters if you like."""

    def __init__(self, telegram: TelegramSettings, settings: Settings | None = None,
                 service: SearchService | None = None, shop_name: str = "Shop") -> None:
        self.telegram = telegram
        self.settings = settings
        self.shop_name = shop_name
        self._service = service
        self._owns_service = service is None
        self._opening = asyncio.Lock()
        self.limiter = RateLimiter(telegram.rate_limit, telegram.rate_window)
        self.albums = AlbumCollector(telegram.album_wait)
        self.photo_ids = PhotoIdCache()
        self.counters = {"searches": 0, "rate_limited": 0, "errors": 0}

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

    # --- commands --------------------------------------------------------------------------------

    async def handle_command(self, command: str, user_id: int | None) -> list[ui.Reply]:
        """/start, /help, /filters and the admin-only /stats."""
        command = command.lower()
        if command in ("start", "help"):
            return [ui.TextReply(ui.start_text(self.shop_name))]
        if command == "filters":
            return await self._guarded(self._filters)
        if command == "stats":
            if user_id is None or user_id not in self.telegram.admin_ids:
                return [ui.TextReply(ui.admin_only_text())]
            return await self._guarded(self._stats)
        return []

    async def _filters(self) -> list[ui.Reply]:
        service = await self.start()
        return [ui.TextReply(ui.filters_text(await service.facets()))]

    async def _stats(self) -> list[ui.Reply]:
        service = await self.start()
        stats = await service.stats()
        stats.update(self.counters)
        return [ui.TextReply(ui.stats_text(stats))]

    # --- text ------------------------------------------------------------------------------------

    async def handle_text(self, user_id: int, text: str, progress: Progress | None = None) -> list[ui.Reply]:
        """Words (and filters) in, cards out."""
        parsed = parse_query_text(text)
        if not parsed.has_words:
            if parsed.filters.is_empty():
                return [ui.TextReply(ui.start_text(self.shop_name))]
            return [ui.TextReply(ui.filters_only_text(parsed.filters))]
        if (refusal := self._throttle(user_id)) is not None:
            return refusal
        query = Query(text=parsed.text, filters=parsed.filters, limit=self.telegram.cards_per_page)
        await _notify(progress)
        return await self._guarded(self._search, query, parsed.text)

    # --- photos and documents --------------------------------------------------------------------

    async def handle_photo(self, user_id: int, photo: IncomingFile, caption: str | None,
                           media_group_id: str | None, download: Download,
                           progress: Progress | None = None) -> list[ui.Reply]:
        """A photo (the largest size) or an image document, alone or as part of an album."""
        if problem := self._check_size(photo):
            return [problem]
        files, album_caption = [photo], caption
        if media_group_id:
            album = await self.albums.collect((user_id, media_group_id), photo, caption)
            if album is None:
                return []  # another handler answers the album
            files, album_caption = [f for f in album.items if not self._check_size(f)], album.caption
        if (refusal := self._throttle(user_id)) is not None:
            return refusal
        parsed = parse_query_text(album_caption or "")
        await _notify(progress)
        try:
            images = await asyncio.gather(*(download(f.file_id) for f in files))
        except Exception as exc:  # a network or API error while downloading: tell the user, log it
            log.warning("could not download a photo from Telegram: %s", type(exc).__name__)
            return [ui.TextReply(ui.image_problem_text("it could not be downloaded from Telegram"))]
        for data in images:
            if len(data) > self.telegram.max_file_bytes:
                return [ui.TextReply(ui.too_large_text(self.telegram.max_file_bytes))]
        query = Query(images=list(images), filters=parsed.filters, limit=self.telegram.cards_per_page)
        return await self._guarded(self._search, query, None)

    async def handle_document(self, user_id: int, document: IncomingFile, caption: str | None,
                              media_group_id: str | None, download: Download,
                              progress: Progress | None = None) -> list[ui.Reply]:
        """A file sent as a document: an image is searched like a photo, anything else is refused."""
        mime = (document.mime_type or "").lower()
        if mime in NOT_IMAGE_TYPES or (mime and not mime.startswith("image/") and mime != "application/octet-stream"):
            return [ui.TextReply(ui.not_an_image_text(NOT_IMAGE_TYPES.get(mime, f"a {mime} file")))]
        return await self.handle_photo(user_id, document, caption, media_group_id, download, progress)

    def handle_unsupported(self, what: str) -> list[ui.Reply]:
        """Stickers, voice, video, contacts...: say what works."""
        return [ui.TextReply(ui.unsupported_message_text(what))]

    def _check_size(self, file: IncomingFile) -> ui.TextReply | None:
        if file.file_size is not None and file.file_size > self.telegram.max_file_bytes:
            return ui.TextReply(ui.too_large_text(self.telegram.max_file_bytes))
        return None

    # --- buttons ---------------------------------------------------------------------------------

    async def handle_callback(self, user_id: int, data: str) -> ui.CallbackAnswer:
        """'More like this' and 'Show more' taps."""
        if data.startswith(ui.MORE_LIKE_THIS):
            query = Query(similar_to=data[len(ui.MORE_LIKE_THIS):], limit=self.telegram.cards_per_page)
            drop = False
        elif data.startswith(ui.NEXT_PAGE):
            query = Query(cursor=data[len(ui.NEXT_PAGE):], limit=self.telegram.cards_per_page)
            drop = True
        else:
            return ui.CallbackAnswer()  # a button of the shop's own bot: not ours
        if wait := self.limiter.hit(("telegram", user_id)):
            self.counters["rate_limited"] += 1
            return ui.CallbackAnswer(notice=ui.rate_limited_text(wait))
        replies = await self._guarded(self._search, query, None)
        notice = None
        if len(replies) == 1 and isinstance(replies[0], ui.TextReply) and replies[0].text in (
                ui.expired_text(), ui.product_gone_text()):
            notice, replies, drop = replies[0].text, [], False
        return ui.CallbackAnswer(notice=notice, replies=replies, drop_page_button=drop)

    # --- search and errors -----------------------------------------------------------------------

    def _throttle(self, user_id: int) -> list[ui.Reply] | None:
        """None when the user may search; else a polite reply (once per blocked stretch) or silence."""
        wait = self.limiter.hit(("telegram", user_id))
        if not wait:
            return None
        self.counters["rate_limited"] += 1
        if self.limiter.should_warn(("telegram", user_id)):
            return [ui.TextReply(ui.rate_limited_text(wait))]
        return []  # already told: stay quiet

    async def _search(self, query: Query, words: str | None) -> list[ui.Reply]:
        service = await self.start()
        self.counters["searches"] += 1
        result: SearchResult = await service.search(query)
        if result.no_match:
            kind = "image" if query.kind in ("image", "page") else query.kind
            return [ui.TextReply(ui.no_match_text(kind, words, query.filters if query.kind != "similar" else Filters()))]
        return ui.card_replies(result.cards, result.next_cursor)

    async def _guarded(self, fn: Callable[..., Awaitable[list[ui.Reply]]], *args: object) -> list[ui.Reply]:
        """Turn every expected failure into a friendly reply; unexpected ones are logged, never raised."""
        try:
            return await fn(*args)
        except ImageError as exc:
            return [ui.TextReply(ui.image_problem_text(str(exc)))]
        except CursorExpiredError:
            return [ui.TextReply(ui.expired_text())]
        except PointNotFoundError:
            return [ui.TextReply(ui.product_gone_text())]
        except EncoderBusyError as exc:  # too many queries waiting for the encoder (VISEARCH_MAX_PENDING)
            log.warning("search refused: %s", exc)
            return [ui.TextReply(ui.busy_text())]
        except (StoreError, VisearchError) as exc:
            self.counters["errors"] += 1
            log.error("search unavailable: %s", exc)
            return [ui.TextReply(ui.busy_text())]
        except Exception:
            self.counters["errors"] += 1
            log.exception("unexpected error while answering a Telegram update")
            return [ui.TextReply(ui.failure_text())]


# --- framework-neutral message routing and delivery ------------------------------------------------
# aiogram and python-telegram-bot both model messages on the Bot API field names (`photo`,
# `document`, `caption`, `media_group_id`, `from_user`...), so one function reads either.


def unsupported_content(message: Any) -> str | None:
    """What kind of unsearchable content a message carries (e.g. 'stickers'), or None."""
    for field_name, what in UNSUPPORTED_CONTENT.items():
        if getattr(message, field_name, None):
            return what
    return None


async def route_message(conversation: TelegramConversation, message: Any, download: Download,
                        progress: Progress | None = None) -> list[ui.Reply]:
    """Answer a message of either framework: photo, image document, text, or unsupported content."""
    user = getattr(message, "from_user", None)
    user_id = user.id if user else message.chat.id
    caption = getattr(message, "caption", None)
    group = getattr(message, "media_group_id", None)
    if getattr(message, "animation", None):  # a GIF also carries a `document`: name it properly
        return conversation.handle_unsupported(UNSUPPORTED_CONTENT["animation"])
    if message.photo:
        largest = max(message.photo, key=lambda p: (p.width * p.height, p.file_size or 0))
        photo = IncomingFile(largest.file_id, largest.file_size, "image/jpeg")
        return await conversation.handle_photo(user_id, photo, caption, group, download, progress)
    if message.document:
        doc = message.document
        document = IncomingFile(doc.file_id, doc.file_size, doc.mime_type, doc.file_name)
        return await conversation.handle_document(user_id, document, caption, group, download, progress)
    if getattr(message, "text", None):
        return await conversation.handle_text(user_id, message.text, progress)
    what = unsupported_content(message)
    return conversation.handle_unsupported(what) if what else []


class PhotoRejected(Exception):
    """Telegram refused a photo (stale file id, unreachable URL, file gone): send the fallback."""


def is_photo_problem(description: str) -> bool:
    """Bad Request descriptions that mean 'this photo', not 'this caption or keyboard'."""
    text = description.lower()
    return any(s in text for s in ("file identifier", "http url", "wrong type of the web page content",
                                   "image_process_failed", "photo_invalid_dimensions", "failed to get",
                                   "wrong remote file", "file must be non-empty"))


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
