"""Viber: verify and read webhook callbacks, answer with a carousel of product cards.

Every callback is checked before parsing: `X-Viber-Content-Signature` must be the hex
HMAC-SHA256 of the raw body keyed with the bot's auth token. Replies go to
`{VISEARCH_VIBER_API_URL}/send_message` with `X-Viber-Auth-Token`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from types import MappingProxyType
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from visearch.bots.answers import WELCOME, Answer, Searcher, unsupported
from visearch.bots.http import RETRY_STATUSES, PlatformClient, PlatformError, json_object
from visearch.bots.server.runtime import Rejected, Runtime, verified_json
from visearch.bots.viber import messages

log = logging.getLogger("visearch.server")

IGNORED_EVENTS = frozenset({"delivered", "seen", "subscribed", "unsubscribed", "failed", "client_status", "action"})
UNSUPPORTED_TYPES = MappingProxyType({"sticker": "stickers", "video": "videos", "file": "files",
                                      "location": "locations", "contact": "contacts", "url": "links"})
TOO_MANY_REQUESTS = 12
RICH_MEDIA_REFUSED = frozenset({3, 13, 14})  # badData, apiVersionNotSupported, incompatibleWithVersion


def signature(token: str, body: bytes) -> str:
    """What Viber puts in X-Viber-Content-Signature."""
    return hmac.new(token.encode(), body, hashlib.sha256).hexdigest()


class ViberBot:
    """The Viber adapter: webhook endpoint, replies, webhook registration."""

    name = "viber"

    def __init__(self, token: str, api_url: str, sender_name: str, searcher: Searcher, runtime: Runtime,
                 public_url: str | None, max_media_bytes: int) -> None:
        self._token = token
        self.sender_name = sender_name
        self.searcher = searcher
        self.runtime = runtime
        self.public_url = public_url
        self.max_media_bytes = max_media_bytes
        # the token goes to the bot API only; media URLs (Viber's CDN) are fetched without it
        self.client = PlatformClient("viber", api_url, {"X-Viber-Auth-Token": token}, media_credentials=False)

    async def close(self) -> None:
        await self.client.close()

    # --- webhook ----------------------------------------------------------------------------------

    async def webhook(self, request: Request) -> Response:
        """POST /webhooks/viber."""
        body = await request.body()
        try:
            event = verified_json(body, request.headers.get("x-viber-content-signature", ""),
                                  signature(self._token, body), refused_status=403)
        except Rejected as exc:
            return self._done(exc.outcome, Response(exc.message, status_code=exc.status))
        if not isinstance(event.get("event"), str):
            return self._done("malformed", Response("no event", status_code=400))
        kind = event["event"]
        if kind == "webhook":
            return self._done("webhook_check", JSONResponse({}))
        if kind == "conversation_started":  # the response body is shown as the welcome message
            return self._done("welcome", JSONResponse({"sender": {"name": self.sender_name}, "type": "text",
                                                       "text": WELCOME}))
        if kind != "message":
            return self._done("ignored", JSONResponse({}))
        sender = event.get("sender") if isinstance(event.get("sender"), dict) else {}
        message = event.get("message")
        user, token = sender.get("id"), event.get("message_token")
        if not isinstance(user, str) or not isinstance(message, dict) or token is None:
            return self._done("ignored", JSONResponse({}))
        outcome = self.runtime.accept(self, user, str(token), lambda: self._search(user, message))
        return self._done(outcome, JSONResponse({}))

    def _done(self, outcome: str, response: Response) -> Response:
        return self.runtime.counted(self.name, outcome, response)

    async def _search(self, user: str, message: dict[str, Any]) -> Answer:
        kind = message.get("type")
        if kind == "picture" and isinstance(message.get("media"), str):
            data, _ = await self.client.download(message["media"], self.max_media_bytes)
            caption = message.get("text") if isinstance(message.get("text"), str) else None
            return await self.searcher.photo(user, [data], caption)
        if kind == "text" and isinstance(message.get("text"), str):
            return await self.searcher.text(user, message["text"])
        return Answer(text=unsupported(UNSUPPORTED_TYPES.get(str(kind), "this kind of message")))

    # --- replies ----------------------------------------------------------------------------------

    async def send_text(self, user: str, text: str) -> None:
        await self._send(messages.text_message(user, self.sender_name, text))

    async def send_answer(self, user: str, answer: Answer) -> None:
        if not answer.cards:
            await self.send_text(user, answer.text or WELCOME)
            return
        rich = messages.carousel(user, self.sender_name, answer.cards, answer.next_cursor, self.public_url)
        if rich is not None:
            try:
                await self._send(rich)
                return
            except PlatformError as exc:
                if exc.status not in RICH_MEDIA_REFUSED:
                    raise
                log.warning("viber refused rich media (%s); sending pictures instead", exc.description)
        for message in messages.fallback(user, self.sender_name, answer.cards, answer.next_cursor, self.public_url):
            await self._send(message)

    async def _send(self, message: dict[str, Any]) -> None:
        """send_message, retrying Viber's tooManyRequests status; other statuses raise PlatformError."""
        for attempt in range(3):
            response = await self.client.request("POST", "send_message", json=message)
            reply = json_object(response)
            status = reply.get("status")
            if response.status_code == 200 and status == 0:
                return
            if status == TOO_MANY_REQUESTS and attempt < 2:
                await asyncio.sleep(1.0 * (attempt + 1))
                continue
            raise PlatformError("viber", f"{reply.get('status_message') or response.status_code} (status {status})",
                                status if isinstance(status, int) else None,
                                retryable=response.status_code in RETRY_STATUSES or status == TOO_MANY_REQUESTS)

    async def set_webhook(self, url: str) -> dict[str, Any]:
        """Register the webhook URL (Viber checks it with a signed 'webhook' event first)."""
        response = await self.client.request("POST", "set_webhook", json={
            "url": url, "send_name": True, "send_photo": False,
            "event_types": ["delivered", "seen", "failed", "subscribed", "unsubscribed", "conversation_started"]})
        reply = json_object(response)
        if reply.get("status") != 0:
            raise PlatformError("viber", f"{reply.get('status_message')} (status {reply.get('status')})")
        return reply


