"""Viber message bodies: a rich_media carousel of product cards, with a picture + text fallback.

Limits (Viber REST bot API): a carousel holds at most 6 blocks of ButtonsGroupColumns (1-6) x
ButtonsGroupRows (1-7); rich media needs `min_api_version` 2; a message is at most 30 KB of
JSON; a picture caption at most 512 characters, a text message 7000. Catalog text in rich media
is escaped (it understands a few HTML tags).
"""

from __future__ import annotations

import html
import json
from typing import Any

from visearch.bots.conversation import MORE_LIKE_THIS, NEXT_PAGE
from visearch.bots.conversation.text import cut as cut_text
from visearch.bots.conversation.wording import ENGLISH, Wording
from visearch.bots.media import public_photo_url
from visearch.core.domain import Card

MAX_MESSAGE_BYTES = 30_000
MAX_CAROUSEL = 6
PICTURE_CAPTION_LIMIT = 512
TEXT_LIMIT = 7000
RICH_MEDIA_API_VERSION = 2
#: a button's Text, in characters (Viber's keyboard and rich media docs)
BUTTON_TEXT_LIMIT = 250


def cut(text: str, limit: int) -> str:
    """Plain text cut to `limit` characters (line breaks kept)."""
    return cut_text(text, limit, keep_lines=True)


def text_message(receiver: str, sender_name: str, text: str, keyboard: dict[str, Any] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {
        "receiver": receiver,
        "sender": {"name": sender_name},
        "type": "text",
        "text": cut(text, TEXT_LIMIT),
    }
    if keyboard:
        message["keyboard"] = keyboard
        message["min_api_version"] = 3
    return message


def _card_blocks(card: Card, public_url: str | None, wording: Wording) -> list[dict[str, Any]]:
    """One carousel block (6 columns x 6 rows): photo, title + price, Open / More like this."""
    image = public_photo_url(card.point_id, card.photo, public_url)
    facts = wording.card_facts(card)
    text = f"<b>{html.escape(cut(card.title, 80))}</b>"
    if facts:
        text += f"<br>{html.escape(cut(facts, 60))}"
    blocks: list[dict[str, Any]] = []
    if image:
        blocks.append(
            {
                "Columns": 6,
                "Rows": 3,
                "ActionType": "open-url" if card.url else "none",
                "ActionBody": card.url or "none",
                "Image": image,
            }
        )
    blocks.append(
        {
            "Columns": 6,
            "Rows": 2 if image else 5,
            "Text": text,
            "ActionType": "none",
            "TextSize": "medium",
            "TextVAlign": "middle",
            "TextHAlign": "left",
        }
    )
    more = {
        "Columns": 3 if card.url else 6,
        "Rows": 1,
        "ActionType": "reply",
        "ActionBody": MORE_LIKE_THIS + card.point_id,
        "Text": f"<b>{html.escape(wording.more_like_this)}</b>",
        "Silent": True,
    }
    if card.url:
        blocks.append(
            {
                "Columns": 3,
                "Rows": 1,
                "ActionType": "open-url",
                "ActionBody": card.url,
                "Text": f"<b>{html.escape(wording.open)}</b>",
            }
        )
    blocks.append(more)
    return blocks


def reply_button(token: str, text: str) -> dict[str, Any]:
    """A full-width keyboard button that sends `token` back silently (our reply tokens)."""
    return {"Columns": 6, "Rows": 1, "ActionType": "reply", "ActionBody": token, "Text": text, "Silent": True}


def keyboard(buttons: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Type": "keyboard", "DefaultHeight": False, "Buttons": buttons}


def show_more_keyboard(next_cursor: str | None, wording: Wording = ENGLISH) -> dict[str, Any] | None:
    """A keyboard under the carousel with 'Show more' when there is a next page."""
    if not next_cursor:
        return None
    return keyboard([reply_button(NEXT_PAGE + next_cursor, wording.show_more)])


def carousel(
    receiver: str,
    sender_name: str,
    cards: list[Card],
    next_cursor: str | None,
    public_url: str | None,
    wording: Wording = ENGLISH,
) -> dict[str, Any] | None:
    """The cards as one rich_media message, or None when it cannot fit Viber's 30 KB limit."""
    buttons = [block for card in cards[:MAX_CAROUSEL] for block in _card_blocks(card, public_url, wording)]
    message: dict[str, Any] = {
        "receiver": receiver,
        "sender": {"name": sender_name},
        "type": "rich_media",
        "min_api_version": RICH_MEDIA_API_VERSION,
        "alt_text": "; ".join(f"{c.title} {wording.card_price(c)}".strip() for c in cards)[:500],
        "rich_media": {
            "Type": "rich_media",
            "ButtonsGroupColumns": 6,
            "ButtonsGroupRows": 6,
            "BgColor": "#FFFFFF",
            "Buttons": buttons,
        },
    }
    keyboard = show_more_keyboard(next_cursor, wording)
    if keyboard:
        message["keyboard"] = keyboard
        message["min_api_version"] = max(RICH_MEDIA_API_VERSION, 3)
    if len(json.dumps(message, ensure_ascii=False).encode()) > MAX_MESSAGE_BYTES:
        return None
    return message


def fallback(
    receiver: str,
    sender_name: str,
    cards: list[Card],
    next_cursor: str | None,
    public_url: str | None,
    wording: Wording = ENGLISH,
) -> list[dict[str, Any]]:
    """Picture (or text) messages, one per card, and a keyboard with the card buttons at the end."""
    messages: list[dict[str, Any]] = []
    for card in cards:
        lines = [cut(card.title, 200), wording.card_facts(card)]
        if card.url:
            lines.append(card.url)
        caption = "\n".join(line for line in lines if line)
        image = public_photo_url(card.point_id, card.photo, public_url)
        if image:
            messages.append(
                {
                    "receiver": receiver,
                    "sender": {"name": sender_name},
                    "type": "picture",
                    "text": cut(caption, PICTURE_CAPTION_LIMIT),
                    "media": image,
                }
            )
        else:
            messages.append(text_message(receiver, sender_name, caption))
    buttons = [reply_button(MORE_LIKE_THIS + c.point_id, wording.more_like(cut(c.title, 30))) for c in cards]
    if next_cursor:
        buttons.append(reply_button(NEXT_PAGE + next_cursor, wording.show_more))
    messages.append(text_message(receiver, sender_name, wording.more_like_one_of_these, keyboard(buttons)))
    return messages
