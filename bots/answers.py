"""What the webhook platforms (Viber, WhatsApp) share: a message in, a platform-neutral answer out.

Telegram has its own richer conversation (`bots/telegram/conversation.py`); these platforms get
the same search behaviour with plain-text wording: the filter syntax in words and captions,
"More like this" and "Show more" as reply tokens, rate limiting, and friendly failures.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Literal

from visearch.bots.ratelimit import RateLimiter
from visearch.bots.server.metrics import Metrics
from visearch.core.domain import Card, Filters, Query
from visearch.core.errors import EncoderBusyError, ImageError, VisearchError
from visearch.core.query_syntax import describe_filters, parse_query_text
from visearch.core.search import CursorExpiredError, PointNotFoundError, SearchService

log = logging.getLogger("visearch.server")

MORE_LIKE_THIS = "more:"
NEXT_PAGE = "page:"

WELCOME = ("Hi! Send a photo of a product and I will find it in our catalogue, or type a few words "
           "(for example: green apple under 20). Filters: under 20, 5-20, category:milk, brand:arla, in stock.")
BUSY = "We're busy right now. Please send it again in a minute."
EXPIRED = "These results have expired. Please send the photo or the words again."
PRODUCT_GONE = "This product is no longer in the catalogue."
FAILURE = "Something went wrong on our side. Please try again in a moment."
UNAVAILABLE = "Search is not available right now. Please try again later."


def no_match(kind: str, words: str | None, filters: Filters) -> str:
    """Nothing passed the relevance cut-off: say so, suggest what to try."""
    shown = f" ({describe_filters(filters)})" if not filters.is_empty() else ""
    if kind == "image":
        return (f"I couldn't find this product in the catalogue{shown}. Try another angle or a closer photo, "
                "or type a few words about it.")
    if kind == "similar":
        return "Nothing else in the catalogue looks close enough to this product."
    return f"Nothing in the catalogue matches \"{words}\"{shown}. Try other words or send a photo."


def image_problem(reason: str) -> str:
    """A photo that cannot be used."""
    return f"I couldn't use this image: {reason}. Please send a regular photo of the product (JPEG or PNG)."


def too_large(limit_bytes: int) -> str:
    """Media over the platform's limit."""
    return f"This file is larger than {limit_bytes // (1024 * 1024)} MB. Please send a smaller photo."


def unsupported(what: str) -> str:
    """Stickers, voice, video, files that are not images."""
    return f"I can't search by {what}. Send a photo of the product or type a few words about it."


def rate_limited(wait: float) -> str:
    """Per-user rate limit reached."""
    return f"You're sending a lot at once. Please wait {max(1, round(wait))} s and try again."


@dataclass(frozen=True)
class Answer:
    """Cards (possibly none) and/or a plain-text message; `next_cursor` pages on."""

    cards: list[Card] = field(default_factory=list)
    next_cursor: str | None = None
    text: str | None = None
    kind: Literal["cards", "message", "silent"] = "message"


class Searcher:
    """Search behaviour of one platform: rate limit, the filter syntax, reply tokens, failures."""

    def __init__(self, service: SearchService, platform: str, metrics: Metrics, limiter: RateLimiter,
                 cards_per_answer: int) -> None:
        self.service = service
        self.platform = platform
        self.metrics = metrics
        self.limiter = limiter
        self.cards_per_answer = cards_per_answer

    def throttled(self, user: str) -> Answer | None:
        """None when the user may search; else the polite reply once, then silence."""
        wait = self.limiter.hit((self.platform, user))
        if not wait:
            return None
        if self.limiter.should_warn((self.platform, user)):
            return Answer(text=rate_limited(wait))
        return Answer(kind="silent")

    async def photo(self, user: str, images: list[bytes], caption: str | None) -> Answer:
        """A photo (with an optional caption carrying filters)."""
        if (refusal := self.throttled(user)) is not None:
            return refusal
        parsed = parse_query_text(caption or "")
        return await self._run(Query(images=images, filters=parsed.filters, limit=self.cards_per_answer), None)

    async def text(self, user: str, text: str) -> Answer:
        """Words with filters, or a reply token from a button ("more:<point>", "page:<cursor>")."""
        text = text.strip()
        if text.startswith(MORE_LIKE_THIS):
            query = Query(similar_to=text[len(MORE_LIKE_THIS):], limit=self.cards_per_answer)
        elif text.startswith(NEXT_PAGE):
            query = Query(cursor=text[len(NEXT_PAGE):], limit=self.cards_per_answer)
        else:
            parsed = parse_query_text(text)
            if not parsed.has_words:
                return Answer(text=WELCOME)
            query = Query(text=parsed.text, filters=parsed.filters, limit=self.cards_per_answer)
        if (refusal := self.throttled(user)) is not None:
            return refusal
        return await self._run(query, query.text)

    async def _run(self, query: Query, words: str | None) -> Answer:
        started = time.perf_counter()
        try:
            result = await self.service.search(query)
        except ImageError as exc:
            return Answer(text=image_problem(str(exc)))
        except CursorExpiredError:
            return Answer(text=EXPIRED)
        except PointNotFoundError:
            return Answer(text=PRODUCT_GONE)
        except EncoderBusyError as exc:  # too many queries waiting for the encoder: the queue's "busy" reply
            log.warning("%s search refused: %s", self.platform, exc)
            return Answer(text=BUSY)
        except VisearchError as exc:
            log.error("%s search unavailable: %s", self.platform, exc)
            return Answer(text=UNAVAILABLE)
        finally:
            self.metrics.search_latency.labels(self.platform).observe(time.perf_counter() - started)
        if result.no_match:
            kind = "image" if query.kind in ("image", "page") else query.kind
            return Answer(text=no_match(kind, words, query.filters))
        return Answer(cards=result.cards, next_cursor=result.next_cursor, kind="cards")


def image_url(card: Card, public_url: str | None) -> str | None:
    """A URL the platform can fetch the product photo from: the catalog's own URL, or our /media route."""
    if card.image and str(card.image).startswith(("http://", "https://")):
        return str(card.image)
    if card.image_file and public_url:
        return f"{public_url.rstrip('/')}/media/{card.point_id}"
    return None


def price_text(card: Card) -> str:
    """`27.78 SEK`; empty without a price."""
    if card.price is None:
        return ""
    amount = f"{card.price:.2f}".removesuffix(".00")
    return f"{amount} {card.currency}".strip() if card.currency else amount


def cut(text: str, limit: int) -> str:
    """Cut plain text to `limit` characters with an ellipsis (runs of spaces collapse; lines stay)."""
    text = "\n".join(" ".join(line.split()) for line in text.splitlines())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
