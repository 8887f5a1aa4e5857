"""One platform-neutral conversation for every channel (Telegram, Viber, WhatsApp, the HTTP API's search).

Channels translate their input into calls on `Conversation` and render the typed answer it returns
(`Cards`, `Notice` with a `NoticeReason`, or `Silence`); every customer-facing sentence is in
`wording.py`.
"""

from visearch.bots.conversation.answers import (
    COMMANDS,
    MORE_LIKE_THIS,
    NEXT_PAGE,
    OWN_COMMANDS,
    TOAST_REASONS,
    Answer,
    Cards,
    ContentKind,
    Notice,
    NoticeReason,
    SearchKind,
    Silence,
)
from visearch.bots.conversation.conversation import (
    Channel,
    Conversation,
    ConversationSettings,
    search_outcome,
    search_outcome_of,
)
from visearch.bots.conversation.incoming import (
    AlbumCollector,
    Download,
    IncomingFile,
    MediaError,
    MediaTooLargeError,
    NotAnImageError,
    Progress,
)
from visearch.bots.conversation.metrics import ConversationMetrics, Metrics
from visearch.bots.conversation.text import price_text

__all__ = [
    "COMMANDS",
    "MORE_LIKE_THIS",
    "NEXT_PAGE",
    "OWN_COMMANDS",
    "TOAST_REASONS",
    "AlbumCollector",
    "Answer",
    "Cards",
    "Channel",
    "ContentKind",
    "Conversation",
    "ConversationMetrics",
    "ConversationSettings",
    "Download",
    "IncomingFile",
    "MediaError",
    "MediaTooLargeError",
    "Metrics",
    "NotAnImageError",
    "Notice",
    "NoticeReason",
    "Progress",
    "SearchKind",
    "Silence",
    "price_text",
    "search_outcome",
    "search_outcome_of",
]
