"""What a conversation answers, as typed data: cards, a notice with its reason, or silence.

Channels never see an exception or a sentence from the conversation: they get one of these and
render it (cards in their own layout, a notice through the one wording table `wording.py`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from visearch.core.domain import Card, Facets, Filters
from visearch.core.errors import ImageProblem

#: reply tokens of the buttons, the same on every channel: `more:<point id>`, `page:<cursor>`
MORE_LIKE_THIS = "more:"
NEXT_PAGE = "page:"

#: the commands every channel understands (Telegram registers them; others read `/help` in a text)
COMMANDS = ("start", "help", "filters", "stats")
#: the commands a shop's own bot may keep for itself (`with_commands=False`)
OWN_COMMANDS = ("start", "help")


class NoticeReason(enum.Enum):
    """Why the answer is a message instead of cards; `wording.py` words each one."""

    WELCOME = "welcome"  # /start, /help, an empty message
    FILTERS_LIST = "filters_list"  # /filters: what the catalog can be filtered by
    STATS = "stats"  # /stats for admins
    ADMIN_ONLY = "admin_only"
    FILTERS_ONLY = "filters_only"  # filters and no words
    NO_MATCH = "no_match"
    BAD_IMAGE = "bad_image"  # a photo that cannot be used (the detail says why)
    DOWNLOAD_FAILED = "download_failed"  # the channel would not give us the photo
    TOO_LARGE = "too_large"  # over the channel's size limit
    NOT_AN_IMAGE = "not_an_image"  # a document that is not a photo
    UNSUPPORTED = "unsupported"  # stickers, voice, video...
    RATE_LIMITED = "rate_limited"
    BUSY = "busy"  # too many searches waiting: try again in a minute
    UNAVAILABLE = "unavailable"  # no collection, store unreachable
    EXPIRED = "expired"  # a "Show more" whose results are gone
    PRODUCT_GONE = "product_gone"  # "More like this" for a product removed since
    FAILURE = "failure"  # an unexpected error (logged with its traceback)


#: reasons a button tap shows as a short toast on the tapped message rather than as a new message
TOAST_REASONS = frozenset({NoticeReason.EXPIRED, NoticeReason.PRODUCT_GONE, NoticeReason.RATE_LIMITED})


class ContentKind(enum.Enum):
    """Kinds of message content no search can use; each channel maps its own names onto these."""

    STICKER = "sticker"
    VOICE = "voice"
    AUDIO = "audio"
    VIDEO = "video"
    VIDEO_NOTE = "video_note"
    ANIMATION = "animation"
    LOCATION = "location"
    VENUE = "venue"
    CONTACT = "contact"
    POLL = "poll"
    DICE = "dice"
    FILE = "file"
    DOCUMENT = "document"
    LINK = "link"
    REACTION = "reaction"
    OTHER = "other"


class SearchKind(enum.Enum):
    """What a search was made from (the no-match wording differs)."""

    IMAGE = "image"
    TEXT = "text"
    SIMILAR = "similar"


@dataclass(frozen=True)
class Cards:
    """Products to show; `next_cursor` pages on (a `page:<cursor>` button); `paged` when this is a next page."""

    cards: list[Card]
    next_cursor: str | None = None
    paged: bool = False
    locale: str = "en"  # the customer's language: the buttons and prices are worded in it


@dataclass(frozen=True)
class Notice:
    """A message instead of cards: the reason, and the details its wording needs."""

    reason: NoticeReason
    wait_seconds: float | None = None  # RATE_LIMITED
    limit_bytes: int | None = None  # TOO_LARGE
    filters: Filters | None = None  # NO_MATCH, FILTERS_ONLY
    words: str | None = None  # NO_MATCH of words
    search: SearchKind | None = None  # NO_MATCH
    detail: str | None = None  # BAD_IMAGE: why (the engine's own sentence, English: for logs and the API)
    image_problem: ImageProblem | None = None  # BAD_IMAGE: why, as the customer is told it
    document: str | None = None  # NOT_AN_IMAGE: the document's MIME type
    content: ContentKind | None = None  # UNSUPPORTED
    shop_name: str | None = None  # WELCOME
    facets: Facets | None = None  # FILTERS_LIST
    stats: dict[str, Any] = field(default_factory=dict)  # STATS
    error: BaseException | None = field(default=None, compare=False, repr=False)  # what caused it, for logs and the API
    locale: str = "en"  # the customer's language, chosen by the conversation from the channel's hint


@dataclass(frozen=True)
class Silence:
    """Nothing to send: another message answers (an album's other photos), or the user was already told to wait."""


Answer = Cards | Notice | Silence
