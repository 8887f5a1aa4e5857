"""Request body size limits for every route, enforced while the body streams in.

Why not only Content-Length: a chunked upload has none, and a client may lie. The declared
length is checked first (the 413 goes out before any of the body is read); otherwise the bytes
are counted as they arrive and the request stops at the limit, before anything parses them.
Each path prefix has its own limit (the API takes photos, webhooks take small JSON updates,
everything else takes no body).

A refused body is not read on: when the client would send more than the limit again
(`Rule.slack`), the 413 says `Connection: close` and the server closes the connection. Up to
that, the rest is read and dropped, so a client a little over the limit reads its 413 on a
healthy connection instead of a reset.

A body must also keep coming (nginx's `client_body_timeout`, as a rate): after `grace_s` the
client must have sent `MIN_RATE` bytes a second on average, else 408 and the connection closes.
A client dripping one byte a second cannot hold a connection, or the memory of what it sent, for
more than a few seconds.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: bodies of routes that take none (GET pages, health, metrics, media)
OTHER_MAX_BODY_BYTES = 16 * 1024
#: slowest average upload accepted once the grace period is over, in bytes a second
MIN_RATE = 4096


@dataclass(frozen=True, slots=True)
class Rule:
    """Requests whose path starts with `prefix` may send at most `max_bytes`; `setting` raises it."""

    prefix: str
    max_bytes: int
    setting: str | None = None
    #: the limit of a multipart form on this path (a photo search), when it differs, and its setting
    form_max_bytes: int | None = None
    form_setting: str | None = None

    def for_form(self) -> Rule:
        """The rule a multipart body on this path follows."""
        if self.form_max_bytes is None:
            return self
        return Rule(self.prefix, self.form_max_bytes, self.form_setting)

    @property
    def slack(self) -> int:
        """Bytes past the limit still read and dropped (so the client sees its 413) before closing."""
        return max(self.max_bytes, 64 * 1024)

    def message(self) -> str:
        how = f" ({self.setting})" if self.setting else ""
        return f"the request body is larger than {self.max_bytes} bytes{how}"


class BodyTooLarge(Exception):
    """Raised inside `receive` once a request's body passes its limit; `BodyLimit` answers it.
    (Routes read their bodies themselves: FastAPI's own body parsing would turn it into a 400.)"""


class BodyTooSlow(Exception):
    """Raised inside `receive` when a body stops coming at `MIN_RATE`; `BodyLimit` answers 408."""


class BodyLimit:
    """ASGI middleware: a request body above its path's limit gets a JSON 413, one that trickles
    in too slowly a 408, whatever the route."""

    def __init__(self, app: ASGIApp, rules: Sequence[Rule], default: Rule, grace_s: float = 10.0) -> None:
        self.app, self.rules, self.default, self.grace_s = app, tuple(rules), default, grace_s

    def rule_for(self, path: str, headers: dict[bytes, bytes]) -> Rule:
        rule = next((rule for rule in self.rules if path.startswith(rule.prefix)), self.default)
        if headers.get(b"content-type", b"").lower().startswith(b"multipart/form-data"):
            return rule.for_form()
        return rule

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        rule = self.rule_for(scope["path"], headers)
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > rule.max_bytes:
            await refuse(send, rule, close=int(declared) > rule.max_bytes + rule.slack)
            return
        seen, ended, started = 0, False, False
        loop = asyncio.get_running_loop()
        opened = loop.time()

        async def counting_receive() -> Message:
            nonlocal seen, ended
            if ended:  # the body is in: what follows is a wait for the client to hang up
                return await receive()
            try:
                async with asyncio.timeout_at(opened + self.grace_s + seen / MIN_RATE):
                    message = await receive()
            except TimeoutError:
                raise BodyTooSlow from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                ended = not message.get("more_body", False)
                if seen > rule.max_bytes:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                finished = ended or await drain(receive, rule.slack)
                await refuse(send, rule, close=not finished)
        except BodyTooSlow:
            if not started:
                await answer(
                    send,
                    408,
                    f"the request body did not arrive in time (at least {MIN_RATE} bytes a "
                    f"second after the first {self.grace_s:g} s)",
                    "timeout",
                    close=True,
                )


async def drain(receive: Receive, budget: int) -> bool:
    """Read and drop the rest of a refused body, at most `budget` bytes; True when it ended."""
    while budget >= 0:
        message = await receive()
        if message["type"] != "http.request":
            return False
        budget -= len(message.get("body", b""))
        if not message.get("more_body", False):
            return True
    return False


async def refuse(send: Send, rule: Rule, close: bool) -> None:
    """The 413 in the API's error shape; with `close`, the server reads nothing more of the body."""
    await answer(send, 413, rule.message(), "too_large", close)


async def answer(send: Send, status: int, message: str, kind: str, close: bool) -> None:
    """An error in the API's shape, straight from the middleware."""
    body = json.dumps({"error": message, "field": None, "kind": kind}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": headers + ([(b"connection", b"close")] if close else []),
        }
    )
    await send({"type": "http.response.body", "body": body})
