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

from starlette.responses import JSONResponse, Response

from visearch.bots.conversation import (
    Answer,
    Cards,
    ContentKind,
    Conversation,
    IncomingFile,
    Notice,
)
from visearch.bots.http import (
    RETRY_STATUSES,
    PlatformClient,
    PlatformError,
    json_object,
)
from visearch.bots.viber import messages
from visearch.bots.webhooks.bot import WebhookBot
from visearch.bots.webhooks.runtime import Runtime

log = logging.getLogger("visearch.server")

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


class ViberBot(WebhookBot):
    """The Viber adapter: webhook endpoint, replies, webhook registration."""

    name = "viber"
    signature_header = "x-viber-content-signature"
    refused_status = 403
    unsupported_types = UNSUPPORTED_TYPES

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
        super().__init__(
            conversation, runtime, viber_client(token, api_url), public_url, max_media_bytes, cards_per_answer
        )
        self._token = token
        self.sender_name = sender_name

    # --- webhook ----------------------------------------------------------------------------------

    def signature_of(self, body: bytes) -> str:
        return signature(self._token, body)

    def handle(self, event: dict[str, Any]) -> Response:
        """A verified POST /webhooks/viber: Viber's URL check, the welcome message, or a user's message."""
        if not isinstance(event.get("event"), str):
            return self._done("malformed", Response("no event", status_code=400))
        kind = event["event"]
        if kind == "webhook":
            return self._done("webhook_check", JSONResponse({}))
        if kind == "conversation_started":  # the response body is shown as the welcome message
            welcome = self.conversation.welcome(language_of(event.get("user")))
            text = self.wording(welcome).words(welcome)
            return self._done(
                "welcome", JSONResponse({"sender": {"name": self.sender_name}, "type": "text", "text": text})
            )
        if kind != "message":
            return self._done("ignored", JSONResponse({}))
        sender, message, token = event.get("sender"), event.get("message"), event.get("message_token")
        user = sender.get("id") if isinstance(sender, dict) else None
        if not isinstance(user, str) or not isinstance(message, dict) or token is None:
            return self._done("ignored", JSONResponse({}))
        language = language_of(sender)
        outcome = self.runtime.accept(
            self,
            user,
            str(token),
            lambda: self._search(user, message, language),
            self.conversation.locale_for(language),
        )
        return self._done(outcome, JSONResponse({}))

    async def _search(self, user: str, message: dict[str, Any], language: str | None) -> Answer:
        """Translate a Viber message into the conversation's terms (`language`: the sender's)."""
        kind = message.get("type")
        if kind == "picture" and isinstance(message.get("media"), str):
            caption = message.get("text") if isinstance(message.get("text"), str) else None
            return await self.conversation.photos(
                self.channel, user, IncomingFile(message["media"]), caption, self._download, language=language
            )
        if kind == "text" and isinstance(message.get("text"), str):
            return await self.conversation.text(self.channel, user, message["text"], language=language)
        return self._unsupported(kind, language)

    async def _download(self, file: IncomingFile) -> bytes:
        data, _ = await self.client.download(file.file_id, self.max_media_bytes)
        return data

    # --- replies ----------------------------------------------------------------------------------

    async def send_notice(self, user: str, notice: Notice) -> None:
        await self._send(messages.text_message(user, self.sender_name, self.wording(notice).words(notice)))

    async def send_cards(self, user: str, answer: Cards) -> None:
        """Cards as a carousel (pictures when rich media is refused)."""
        wording = self.wording(answer)
        rich = messages.carousel(user, self.sender_name, answer.cards, answer.next_cursor, self.public_url, wording)
        if rich is not None:
            try:
                await self._send(rich)
                return
            except PlatformError as exc:
                if exc.status not in RICH_MEDIA_REFUSED:
                    raise
                log.warning("viber refused rich media (%s); sending pictures instead", exc.description)
        pictures = messages.fallback(user, self.sender_name, answer.cards, answer.next_cursor, self.public_url, wording)
        for message in pictures:
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


def language_of(user: object) -> str | None:
    """A Viber user's `language` (the phone's, e.g. `uk` or `pt-BR`), when the event carries one."""
    language = user.get("language") if isinstance(user, dict) else None
    return language if isinstance(language, str) and language else None


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
