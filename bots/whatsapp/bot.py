"""WhatsApp Cloud API: verify and read webhooks, answer with product cards.

GET /webhooks/whatsapp answers Meta's verification (`hub.mode`, `hub.verify_token`,
`hub.challenge`). Every POST is checked before parsing: `X-Hub-Signature-256` must be
`sha256=` + hex HMAC-SHA256 of the raw body keyed with the app secret. Images come in two steps
(GET /{version}/{media-id} with the bearer token -> a URL -> GET it with the bearer token).
Replies go to /{version}/{phone-number-id}/messages: per product an interactive `cta_url`
message (photo header, caption, "Open in shop"), or an image message with a caption when the
product has no link; then a reply-button message "More like this" for the top result.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from visearch.bots.conversation import (
    MORE_LIKE_THIS,
    NEXT_PAGE,
    Answer,
    Cards,
    ContentKind,
    Conversation,
    IncomingFile,
    MediaError,
    MediaTooLargeError,
    NotAnImageError,
    Notice,
)
from visearch.bots.conversation.text import cut as cut_text
from visearch.bots.conversation.wording import ENGLISH, WHATSAPP, Wording
from visearch.bots.http import (
    RETRY_STATUSES,
    PlatformClient,
    PlatformError,
    json_object,
)
from visearch.bots.media import public_photo_url
from visearch.bots.webhooks.bot import WebhookBot
from visearch.bots.webhooks.runtime import Runtime
from visearch.core.domain import Card

log = logging.getLogger("visearch.server")

CAPTION_LIMIT = 1024
BODY_LIMIT = 1024
BUTTON_TITLE_LIMIT = 20
TEXT_LIMIT = 4096
UNSUPPORTED_TYPES = MappingProxyType(
    {
        "sticker": ContentKind.STICKER,
        "audio": ContentKind.VOICE,
        "video": ContentKind.VIDEO,
        "document": ContentKind.DOCUMENT,
        "location": ContentKind.LOCATION,
        "contacts": ContentKind.CONTACT,
        "reaction": ContentKind.REACTION,
    }
)


def cut(text: str, limit: int) -> str:
    """Plain text cut to `limit` characters (line breaks kept)."""
    return cut_text(text, limit, keep_lines=True)


def signature(app_secret: str, body: bytes) -> str:
    """What Meta puts in X-Hub-Signature-256."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def card_caption(card: Card, wording: Wording = ENGLISH) -> str:
    """Title, price and category, a short description; WhatsApp's *bold* for the title."""
    lines = [
        WHATSAPP.bold(cut(card.title, 200)),
        wording.card_facts(card),
    ]
    if card.description:
        lines.append(cut(card.description, 300))
    return cut("\n".join(line for line in lines if line), CAPTION_LIMIT)


class WhatsAppBot(WebhookBot):
    """The WhatsApp adapter: verification, webhook endpoint, replies."""

    name = "whatsapp"
    signature_header = "x-hub-signature-256"
    refused_status = 401
    unsupported_types = UNSUPPORTED_TYPES

    def __init__(
        self,
        token: str,
        app_secret: str,
        verify_token: str,
        phone_number_id: str,
        api_url: str,
        api_version: str,
        conversation: Conversation,
        runtime: Runtime,
        public_url: str | None,
        max_media_bytes: int,
        cards_per_answer: int = 3,
        calling_code_locales: Mapping[str, str] = MappingProxyType({}),
    ) -> None:
        client = PlatformClient("whatsapp", api_url, {"Authorization": f"Bearer {token}"})
        super().__init__(conversation, runtime, client, public_url, max_media_bytes, cards_per_answer)
        self._token = token
        self._app_secret = app_secret
        self._verify_token = verify_token
        self.phone_number_id = phone_number_id
        self.version = api_version
        #: WhatsApp tells no language: the sender's country calling code picks one (VISEARCH_WHATSAPP_LOCALES)
        self.calling_code_locales = calling_code_locales

    # --- webhook ----------------------------------------------------------------------------------

    async def verify(self, request: Request) -> Response:
        """GET /webhooks/whatsapp: echo hub.challenge when the verify token matches."""
        params = request.query_params
        token = params.get("hub.verify_token", "")
        if params.get("hub.mode") == "subscribe" and token and hmac.compare_digest(token, self._verify_token):
            return PlainTextResponse(params.get("hub.challenge", ""))
        return PlainTextResponse("verification failed", status_code=403)

    def signature_of(self, body: bytes) -> str:
        return signature(self._app_secret, body)

    def handle(self, payload: dict[str, Any]) -> Response:
        """A verified POST /webhooks/whatsapp: every user message in it is queued."""
        if not isinstance(payload.get("entry"), list):
            return self._done("malformed", Response("no entry", status_code=400))
        outcomes = [self._accept(message) for message in _messages(payload)]
        return self._done(
            outcomes[0] if len(outcomes) == 1 else ("ignored" if not outcomes else "batch"), JSONResponse({})
        )

    def _accept(self, message: dict[str, Any]) -> str:
        user, message_id = message.get("from"), message.get("id")
        if not isinstance(user, str) or not isinstance(message_id, str):
            return "ignored"
        language = language_of_number(user, self.calling_code_locales)
        locale = self.conversation.locale_for(language)
        return self.runtime.accept(self, user, message_id, lambda: self._search(user, message, language), locale)

    async def _search(self, user: str, message: dict[str, Any], language: str | None) -> Answer:
        """Translate a WhatsApp message into the conversation's terms (reply buttons carry our tokens);
        `language` comes from the sender's number, else the conversation answers in the shop's default."""
        kind = message.get("type")
        talk, channel = self.conversation, self.channel
        if kind == "image" and isinstance(message.get("image"), dict) and message["image"].get("id"):
            image = message["image"]
            caption = image.get("caption") if isinstance(image.get("caption"), str) else None
            file = IncomingFile(str(image["id"]))
            return await talk.photos(channel, user, file, caption, self._download, language=language)
        if kind == "text" and isinstance(message.get("text"), dict):
            return await talk.text(channel, user, str(message["text"].get("body", "")), language=language)
        if kind == "interactive" and isinstance(message.get("interactive"), dict):
            reply = message["interactive"].get("button_reply") or {}
            return await talk.button(channel, user, str(reply.get("id", "")), language)
        if kind == "button" and isinstance(message.get("button"), dict):
            return await talk.button(channel, user, str(message["button"].get("payload", "")), language)
        return self._unsupported(kind, language)

    async def _download(self, file: IncomingFile) -> bytes:
        return await self.download_media(file.file_id)

    async def download_media(self, media_id: str) -> bytes:
        """Two steps: the media's URL from the Graph API, then the bytes, both with the bearer token."""
        response = await self.client.request("GET", f"{self.version}/{media_id}")
        info = json_object(response)
        if response.status_code != 200 or not isinstance(info.get("url"), str):
            raise MediaError("the photo could not be downloaded from WhatsApp")
        size = info.get("file_size")
        if isinstance(size, int) and size > self.max_media_bytes:
            raise MediaTooLargeError()
        mime = str(info.get("mime_type", ""))
        if mime and not mime.startswith("image/"):
            raise NotAnImageError(mime)
        data, _ = await self.client.download(info["url"], self.max_media_bytes)
        return data

    # --- replies ----------------------------------------------------------------------------------

    async def send_notice(self, user: str, notice: Notice) -> None:
        await self.send_text(user, self.wording(notice).words(notice, WHATSAPP))

    async def send_text(self, user: str, text: str) -> None:
        await self._send({"to": user, "type": "text", "text": {"body": cut(text, TEXT_LIMIT), "preview_url": False}})

    async def send_cards(self, user: str, answer: Cards) -> None:
        """One message per card, then a reply-button message ("More like this", "Show more")."""
        if not answer.cards:
            return
        wording = self.wording(answer)
        for card in answer.cards:
            await self._send(self.card_message(user, card, wording))
        buttons = [
            {
                "type": "reply",
                "reply": {
                    "id": MORE_LIKE_THIS + answer.cards[0].point_id,
                    "title": wording.more_like_this[:BUTTON_TITLE_LIMIT],
                },
            }
        ]
        if answer.next_cursor:
            buttons.append(
                {
                    "type": "reply",
                    "reply": {"id": NEXT_PAGE + answer.next_cursor, "title": wording.show_more[:BUTTON_TITLE_LIMIT]},
                }
            )
        body = cut(wording.more_like_prompt(answer.cards[0].title), BODY_LIMIT)
        await self._send(
            {
                "to": user,
                "type": "interactive",
                "interactive": {"type": "button", "body": {"text": body}, "action": {"buttons": buttons}},
            }
        )

    def card_message(self, user: str, card: Card, wording: Wording = ENGLISH) -> dict[str, Any]:
        """cta_url with a photo header when the product has a link; else an image (or text) message."""
        image = public_photo_url(card.point_id, card.photo, self.public_url)
        caption = card_caption(card, wording)
        if card.url and card.url.startswith(("http://", "https://")):
            interactive: dict[str, Any] = {
                "type": "cta_url",
                "body": {"text": cut(caption, BODY_LIMIT)},
                "action": {
                    "name": "cta_url",
                    "parameters": {"display_text": wording.open_in_shop[:BUTTON_TITLE_LIMIT], "url": card.url},
                },
            }
            if image:
                interactive["header"] = {"type": "image", "image": {"link": image}}
            return {"to": user, "type": "interactive", "interactive": interactive}
        if image:
            return {"to": user, "type": "image", "image": {"link": image, "caption": caption}}
        return {"to": user, "type": "text", "text": {"body": caption, "preview_url": False}}

    async def _send(self, message: dict[str, Any]) -> None:
        body = {"messaging_product": "whatsapp", "recipient_type": "individual", **message}
        response = await self.client.request("POST", f"{self.version}/{self.phone_number_id}/messages", json=body)
        if response.status_code != 200:
            error = json_object(response).get("error") or {}
            raise PlatformError(
                "whatsapp",
                f"{error.get('message', 'HTTP ' + str(response.status_code))} (code {error.get('code')})",
                response.status_code,
                retryable=response.status_code in RETRY_STATUSES,
            )


def language_of_number(wa_id: str, calling_code_locales: Mapping[str, str]) -> str | None:
    """The locale mapped to the longest calling code the number starts with (`380...` -> `uk`), or None."""
    for length in (4, 3, 2, 1):
        if (locale := calling_code_locales.get(wa_id[:length])) is not None:
            return locale
    return None


def _messages(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The user messages of a webhook payload (statuses and other changes are ignored)."""
    found: list[dict[str, Any]] = []
    for entry in payload.get("entry") or []:
        if not isinstance(entry, dict):
            continue
        for change in entry.get("changes") or []:
            value = change.get("value") if isinstance(change, dict) else None
            if isinstance(value, dict):
                found.extend(m for m in value.get("messages") or [] if isinstance(m, dict))
    return found
