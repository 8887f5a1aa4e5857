"""What the Viber and WhatsApp adapters share: a signed webhook read before anything else, every delivery's
outcome counted, unsupported content named, and an answer dispatched to the platform's own card and notice
messages. A platform says how its signature looks and how it renders; the rest is here once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import Response

from visearch.bots.conversation import (
    Answer,
    Cards,
    Channel,
    ContentKind,
    Conversation,
    Notice,
    Silence,
)
from visearch.bots.conversation.wording import Wording
from visearch.bots.http import PlatformClient
from visearch.bots.webhooks.runtime import Rejected, Runtime, verified_json


class WebhookBot:
    """A webhook platform's adapter: subclasses name the signature header and implement `signature_of`,
    `handle`, `send_cards` and `send_notice`."""

    #: the platform's name (metrics labels, delivery keys, the channel)
    name: str
    #: the request header carrying the body's signature
    signature_header: ClassVar[str]
    #: the status a bad signature gets (what the platform expects)
    refused_status: ClassVar[int]
    #: the platform's message types we cannot search by
    unsupported_types: ClassVar[Mapping[str, ContentKind]]

    def __init__(
        self,
        conversation: Conversation,
        runtime: Runtime,
        client: PlatformClient,
        public_url: str | None,
        max_media_bytes: int,
        cards_per_answer: int,
    ) -> None:
        self.conversation = conversation
        self.channel = Channel(self.name, max_media_bytes, cards_per_answer=cards_per_answer)
        self.runtime = runtime
        self.public_url = public_url
        self.max_media_bytes = max_media_bytes
        self.client = client

    async def close(self) -> None:
        await self.client.close()

    # --- webhook ----------------------------------------------------------------------------------

    async def webhook(self, request: Request) -> Response:
        """POST /webhooks/{name}: the body is parsed only once its signature checked out."""
        body = await request.body()
        try:
            payload = verified_json(
                body, request.headers.get(self.signature_header, ""), self.signature_of(body), self.refused_status
            )
        except Rejected as exc:
            return self._done(exc.outcome, Response(exc.message, status_code=exc.status))
        return self.handle(payload)

    def signature_of(self, body: bytes) -> str:
        """What the platform puts in `signature_header` for this body."""
        raise NotImplementedError

    def handle(self, payload: dict[str, Any]) -> Response:
        """Answer a verified delivery (queue its searches); the response is counted with `_done`."""
        raise NotImplementedError

    def _done(self, outcome: str, response: Response) -> Response:
        return self.runtime.counted(self.name, outcome, response)

    def _unsupported(self, kind: object, language: str | None = None) -> Answer:
        """The answer to a message type we cannot search by."""
        content = self.unsupported_types.get(str(kind), ContentKind.OTHER)
        return self.conversation.unsupported(self.channel, content, language)

    def wording(self, answer: Cards | Notice) -> Wording:
        """The words of the answer's locale."""
        return self.conversation.wording(answer.locale)

    # --- replies ----------------------------------------------------------------------------------

    async def send(self, user: str, answer: Answer) -> None:
        """Cards in the platform's card messages; a notice as a text message; silence sends nothing."""
        if isinstance(answer, Cards):
            await self.send_cards(user, answer)
        elif isinstance(answer, Notice):
            await self.send_notice(user, answer)
        else:
            assert isinstance(answer, Silence)

    async def send_cards(self, user: str, answer: Cards) -> None:
        raise NotImplementedError

    async def send_notice(self, user: str, notice: Notice) -> None:
        raise NotImplementedError
