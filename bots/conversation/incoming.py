"""What a user sends, as every channel can describe it: files (photos, documents), albums, and the
typed problems of getting a file's bytes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class IncomingFile:
    """A photo or a document as the channel describes it: its id there (a Telegram file id, a Viber
    media URL, a WhatsApp media id) and what the channel tells about it before any download."""

    file_id: str
    file_size: int | None = None
    mime_type: str | None = None
    file_name: str | None = None


#: gets a file's bytes from the channel; raises a `MediaError` (or any exception: "could not be downloaded")
Download = Callable[[IncomingFile], Awaitable[bytes]]
#: shows the user that the bot is working ("sending photo..."); a failure never stops the search
Progress = Callable[[], Awaitable[object]]


class MediaError(Exception):
    """A user's media cannot be had: the channel refused it or it is gone."""


class MediaTooLargeError(MediaError):
    """A user's media is over the channel's size limit (declared, or counted while downloading)."""

    def __init__(self) -> None:
        super().__init__("too large")


class NotAnImageError(MediaError):
    """The channel says the media is not an image (`mime_type` names what it is)."""

    def __init__(self, mime_type: str) -> None:
        super().__init__(f"not an image ({mime_type})")
        self.mime_type = mime_type


@dataclass
class Album:
    """The photos of one album gathered so far, and its caption (any photo's)."""

    items: list[IncomingFile] = field(default_factory=list)
    caption: str | None = None
    last_added: float = 0.0


class AlbumCollector:
    """Gathers the photos of one album (Telegram's `media_group_id`) so it is answered once.

    A channel delivers an album as separate messages. The first message's handler becomes the
    leader: it waits until no photo has arrived for `wait` seconds and gets the whole album; the
    handlers of the other messages get None and answer nothing. Needs messages handled
    concurrently (aiogram's default; python-telegram-bot handlers registered with `block=False`).
    """

    def __init__(self, wait: float, max_items: int = 10) -> None:
        self.wait = wait
        self.max_items = max_items
        self._albums: dict[Hashable, Album] = {}

    async def collect(self, group_id: Hashable, item: IncomingFile, caption: str | None) -> Album | None:
        """Add a photo; the leader gets the complete album back, the others None."""
        album = self._albums.get(group_id)
        now = time.monotonic()
        if album is not None:
            if len(album.items) < self.max_items:
                album.items.append(item)
            album.caption = album.caption or caption
            album.last_added = now
            return None
        album = Album([item], caption, now)
        self._albums[group_id] = album
        try:
            while (quiet := time.monotonic() - album.last_added) < self.wait:
                await asyncio.sleep(self.wait - quiet)
        finally:
            del self._albums[group_id]
        return album

    def __len__(self) -> int:
        """Albums being gathered now."""
        return len(self._albums)
