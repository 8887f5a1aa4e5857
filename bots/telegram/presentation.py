"""How the conversation's answers look on Telegram, for both adapters (aiogram and python-telegram-bot).

`render` turns `Cards` / `Notice` / `Silence` into plain-data replies (`TextReply`, `PhotoReply`,
`Button`); the adapters only translate them into their framework's calls, so the two bots answer
the same update identically. Every word comes from the answer's locale (`Wording`: notices in its
HTML style, button labels, prices). Everything is HTML parse mode; every
piece of catalog text goes through `escape` and is cut to Telegram's limits *before* escaping, so
a title with `<`, `&`, `*`, `_` or emoji never breaks a message.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Any

from visearch.bots.conversation import (
    MORE_LIKE_THIS,
    NEXT_PAGE,
    TOAST_REASONS,
    Answer,
    Cards,
    Notice,
    NoticeReason,
)
from visearch.bots.conversation import text as common
from visearch.bots.conversation.wording import ENGLISH, HTML, Wording
from visearch.core.domain import Card, Facets

PARSE_MODE = "HTML"
CAPTION_LIMIT = 1024  # characters after entity parsing (Bot API)
TEXT_LIMIT = 4096
CALLBACK_DATA_LIMIT = 64  # bytes
CALLBACK_ANSWER_LIMIT = 200

# reply tokens (MORE_LIKE_THIS + a 36-character point id, NEXT_PAGE + a 12-character cursor) come from the conversation

TITLE_LIMIT = 200
DESCRIPTION_LIMIT = 300


@dataclass(frozen=True)
class Button:
    """An inline button: a callback (`callback_data`) or a link (`url`)."""

    text: str
    callback_data: str | None = None
    url: str | None = None


Keyboard = tuple[tuple[Button, ...], ...]


@dataclass(frozen=True)
class TextReply:
    """A message in HTML parse mode, with optional inline buttons."""

    text: str
    buttons: Keyboard = ()


@dataclass(frozen=True)
class PhotoReply:
    """A product card: a photo (local file or URL) with an HTML caption and inline buttons.

    `fallback` is sent instead when the photo cannot be sent (file gone, URL unreachable).
    """

    caption: str
    buttons: Keyboard
    photo_file: str | None = None
    photo_url: str | None = None
    fallback: TextReply = field(default_factory=lambda: TextReply(""))

    @property
    def photo_key(self) -> str:
        """What identifies the photo for the uploaded-file cache."""
        return self.photo_file or self.photo_url or ""


Reply = TextReply | PhotoReply


@dataclass(frozen=True)
class CallbackAnswer:
    """The answer to a button tap: a short notice (or none) and the messages to send."""

    notice: str | None = None
    replies: list[Reply] = field(default_factory=list)
    drop_page_button: bool = False

    @property
    def toast(self) -> str | None:
        """The notice as answerCallbackQuery shows it (cut to its limit), or None for no toast."""
        return cut(self.notice, CALLBACK_ANSWER_LIMIT) if self.notice else None


# --- text helpers --------------------------------------------------------------------------------


utf16_len = common.utf16_len


def cut(text: str, limit: int) -> str:
    """Cut plain text to `limit` UTF-16 units at a word boundary when one is near, with an ellipsis."""
    return common.cut(text, limit, length=utf16_len)


def escape(text: str) -> str:
    """Escape catalog text for HTML parse mode (`<`, `>`, `&` and quotes)."""
    return html.escape(text, quote=True)


_is_web_url = common.is_web_url


# --- cards -----------------------------------------------------------------------------------------


def card_caption(card: Card, wording: Wording = ENGLISH) -> str:
    """Title in bold, then price and category, then a short description; within the caption limit."""
    title = cut(card.title, TITLE_LIMIT)
    facts = cut(wording.card_facts(card, "" if card.in_stock else wording.out_of_stock), 200)
    used = utf16_len(title) + utf16_len(facts) + 2
    description = cut(card.description, min(DESCRIPTION_LIMIT, CAPTION_LIMIT - used - 1)) if card.description else ""
    lines = [f"<b>{escape(title)}</b>"]
    if facts:
        lines.append(escape(facts))
    if description:
        lines.append(escape(description))
    return "\n".join(lines)


def card_buttons(card: Card, next_cursor: str | None = None, wording: Wording = ENGLISH) -> Keyboard:
    """'More like this' and 'Open in shop' for a card; a 'Show more' row when a next page exists."""
    row = []
    if len((MORE_LIKE_THIS + card.point_id).encode()) <= CALLBACK_DATA_LIMIT:
        row.append(Button(f"🔍 {wording.more_like_this}", callback_data=MORE_LIKE_THIS + card.point_id))
    if _is_web_url(card.url):
        row.append(Button(f"🛒 {wording.open_in_shop}", url=card.url))
    rows: list[tuple[Button, ...]] = [tuple(row)] if row else []
    if next_cursor:
        rows.append((Button(f"{wording.show_more} ▸", callback_data=NEXT_PAGE + next_cursor),))
    return tuple(rows)


def card_replies(cards: list[Card], next_cursor: str | None, wording: Wording = ENGLISH) -> list[Reply]:
    """One photo card per product; the last one carries the 'Show more' button."""
    replies: list[Reply] = []
    for i, card in enumerate(cards):
        buttons = card_buttons(card, next_cursor if i == len(cards) - 1 else None, wording)
        caption = card_caption(card, wording)
        fallback = TextReply(caption, buttons)
        photo = card.photo  # the local file is uploaded; Telegram fetches a catalog URL itself
        if photo.file is not None or _is_web_url(photo.url):
            replies.append(
                PhotoReply(
                    caption,
                    buttons,
                    photo_file=str(photo.file) if photo.file else None,
                    photo_url=None if photo.file else photo.url,
                    fallback=fallback,
                )
            )
        else:
            replies.append(fallback)
    return replies


def without_page_button(rows: list[list[dict[str, Any]]]) -> list[list[dict[str, Any]]]:
    """A message's keyboard (as Bot API dicts) with the 'Show more' button removed (page was shown)."""
    kept = [[b for b in row if not str(b.get("callback_data") or "").startswith(NEXT_PAGE)] for row in rows]
    return [row for row in kept if row]


# --- notices ---------------------------------------------------------------------------------------


def notice_text(notice: Notice, wording: Wording = ENGLISH) -> str:
    """A notice in HTML parse mode, within the message limit."""
    if notice.reason is NoticeReason.FILTERS_LIST:
        return cut_html_lines(wording.filters_lines(notice.facets or Facets(products=0), HTML), TEXT_LIMIT)
    return wording.words(notice, HTML)


def render(answer: Answer, wording: Wording) -> list[Reply]:
    """The replies that show an answer (worded by `wording`, the answer's locale): photo cards, one
    notice message, or nothing."""
    if isinstance(answer, Cards):
        return card_replies(answer.cards, answer.next_cursor, wording)
    if isinstance(answer, Notice):
        return [TextReply(notice_text(answer, wording))]
    return []


def callback_answer(answer: Answer, wording: Wording) -> CallbackAnswer:
    """A button tap's answer: a stale or throttled tap is a toast on the tapped card, not a new
    message; a next page removes the 'Show more' button it was tapped on."""
    if isinstance(answer, Notice) and answer.reason in TOAST_REASONS:
        return CallbackAnswer(notice=cut(wording.words(answer), CALLBACK_ANSWER_LIMIT))
    return CallbackAnswer(replies=render(answer, wording), drop_page_button=isinstance(answer, Cards) and answer.paged)


def cut_html_lines(lines: list[str], limit: int) -> str:
    """Join whole lines while the visible text stays within `limit` (lines are never cut inside a tag)."""
    out: list[str] = []
    for line in lines:
        candidate = "\n".join([*out, line])
        if visible_length(candidate) > limit:
            break
        out.append(line)
    return "\n".join(out)


def visible_length(html_text: str) -> int:
    """Length of HTML parse-mode text as Telegram counts it: tags removed, entities decoded."""
    return utf16_len(html.unescape(re.sub(r"<[^>]+>", "", html_text)))
