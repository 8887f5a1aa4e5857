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

from visearch.bots.conversation import (
    Answer,
    Cards,
    Channel,
    ContentKind,
    Conversation,
    IncomingFile,
    Notice,
    NoticeReason,
    Silence,
)
from visearch.bots.conversation import wording as say
from visearch.bots.http import (
    RETRY_STATUSES,
    PlatformClient,
    PlatformError,
    json_object,
)
from visearch.bots.viber import messages
from visearch.bots.webhooks.runtime import Rejected, Runtime, verified_json

log = logging.getLogger("visearch.server")

IGNORED_EVENTS = frozenset({"delivered", "seen", "subscribed", "unsubscribed", "failed", "client_status", "action"})
UNSUPPORTED_TYPES = MappingProxyType(
    {
        "sticker": ContentKind.STICKER,
        "video": ContentKind.VIDEO,
        "file": ContentKind.FILE,
        "location": ContentKind.LOCATION,
        "contact": ContentKind.CONTACT,
        "url": ContentKind.LINK,
    }
)
TOO_MANY_REQUESTS = 12
RICH_MEDIA_REFUSED = frozenset({3, 13, 14})  # badData, apiVersionNotSupported, incompatibleWithVersion


def signature(token: str, body: bytes) -> str:
    """What Viber puts in X-Viber-Content-Signature."""
    return hmac.new(token.encode(), body, hashlib.sha256).hexdigest()


class ViberBot:
    """The Viber adapter: webhook endpoint, replies, webhook registration."""

    name = "viber"

    def __init__(
        self,
        token: str,
        api_url: str,
        sender_name: str,
        conversation: Conversation,
        runtime: Runtime,
        public_url: str | None,
        max_media_bytes: int,
        cards_per_answer: int = 3,
    ) -> None:
        self._token = token
        self.sender_name = sender_name
        self.conversation = conversation
        self.channel = Channel(self.name, max_media_bytes, cards_per_answer=cards_per_answer)
        self.runtime = runtime
        self.public_url = public_url
        self.max_media_bytes = max_media_bytes
        self.client = viber_client(token, api_url)

    async def close(self) -> None:
        await self.client.close()

    # --- webhook ----------------------------------------------------------------------------------

    async def webhook(self, request: Request) -> Response:
        """POST /webhooks/viber."""
        body = await request.body()
        try:
            event = verified_json(
                body,
                request.headers.get("x-viber-content-signature", ""),
                signature(self._token, body),
                refused_status=403,
            )
        except Rejected as exc:
            return self._done(exc.outcome, Response(exc.message, status_code=exc.status))
        if not isinstance(event.get("event"), str):
            return self._done("malformed", Response("no event", status_code=400))
        kind = event["event"]
        if kind == "webhook":
            return self._done("webhook_check", JSONResponse({}))
        if kind == "conversation_started":  # the response body is shown as the welcome message
            welcome = Notice(NoticeReason.WELCOME, shop_name=self.conversation.settings.shop_name)
            return self._done(
                "welcome",
                JSONResponse({"sender": {"name": self.sender_name}, "type": "text", "text": say.words(welcome)}),
            )
        if kind != "message":
            return self._done("ignored", JSONResponse({}))
        sender, message, token = event.get("sender"), event.get("message"), event.get("message_token")
        user = sender.get("id") if isinstance(sender, dict) else None
        if not isinstance(user, str) or not isinstance(message, dict) or token is None:
            return self._done("ignored", JSONResponse({}))
        outcome = self.runtime.accept(self, user, str(token), lambda: self._search(user, message))
        return self._done(outcome, JSONResponse({}))

    def _done(self, outcome: str, response: Response) -> Response:
        return self.runtime.counted(self.name, outcome, response)

    async def _search(self, user: str, message: dict[str, Any]) -> Answer:
        """Translate a Viber message into the conversation's terms."""
        kind = message.get("type")
        if kind == "picture" and isinstance(message.get("media"), str):
            caption = message.get("text") if isinstance(message.get("text"), str) else None
            return await self.conversation.photos(
                self.channel, user, IncomingFile(message["media"]), caption, self._download
            )
        if kind == "text" and isinstance(message.get("text"), str):
            return await self.conversation.text(self.channel, user, message["text"])
        return self.conversation.unsupported(self.channel, UNSUPPORTED_TYPES.get(str(kind), ContentKind.OTHER))

    async def _download(self, file: IncomingFile) -> bytes:
        data, _ = await self.client.download(file.file_id, self.max_media_bytes)
        return data

    # --- replies ----------------------------------------------------------------------------------

    async def send(self, user: str, answer: Answer) -> None:
        """Cards as a carousel (pictures when rich media is refused); a notice as a text message."""
        if isinstance(answer, Cards):
            await self.send_cards(user, answer)
        elif isinstance(answer, Notice):
            await self._send(messages.text_message(user, self.sender_name, say.words(answer)))
        else:
            assert isinstance(answer, Silence)

    async def send_cards(self, user: str, answer: Cards) -> None:
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
            raise PlatformError(
                "viber",
                f"{reply.get('status_message') or response.status_code} (status {status})",
                status if isinstance(status, int) else None,
                retryable=response.status_code in RETRY_STATUSES or status == TOO_MANY_REQUESTS,
            )

    async def set_webhook(self, url: str) -> dict[str, Any]:
        """Register the webhook URL (Viber checks it with a signed 'webhook' event first)."""
        return await register_webhook(self.client, url)


def viber_client(token: str, api_url: str) -> PlatformClient:
    """The Viber REST API client: the token goes to the bot API only; media URLs (Viber's CDN) are fetched without it."""
    return PlatformClient("viber", api_url, {"X-Viber-Auth-Token": token}, media_credentials=False)


async def register_webhook(client: PlatformClient, url: str) -> dict[str, Any]:
    """set_webhook: Viber checks the URL with a signed 'webhook' event before it answers."""
    response = await client.request(
        "POST",
        "set_webhook",
        json={
            "url": url,
            "send_name": True,
            "send_photo": False,
            "event_types": ["delivered", "seen", "failed", "subscribed", "unsubscribed", "conversation_started"],
        },
    )
    reply = json_object(response)
    if reply.get("status") != 0:
        raise PlatformError("viber", f"{reply.get('status_message')} (status {reply.get('status')})")
    return reply


async def set_webhook(token: str, api_url: str, url: str) -> dict[str, Any]:
    """Register the webhook without a bot (`visearch bot viber --set-webhook`: no search, no queue)."""
    client = viber_client(token, api_url)
    try:
        return await register_webhook(client, url)
    finally:
        await client.close()
