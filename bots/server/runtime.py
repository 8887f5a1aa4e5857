"""What every webhook platform shares once a delivery is verified and parsed: drop repeats,
queue the search, answer "busy" when the queue is full, count outcomes, never let one failure
reach another user."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from bots.answers import BUSY, Answer, image_problem, too_large
from bots.http import MediaError, PlatformError
from bots.jsonbody import JsonBodyError, parse_json
from bots.server.metrics import Metrics
from bots.server.work import SeenIds, WorkQueue

log = logging.getLogger("visearch.server")

T = TypeVar("T")


class Replier(Protocol):
    """A platform's way to send an answer to one user."""

    name: str
    max_media_bytes: int

    async def send_answer(self, user: str, answer: Answer) -> None: ...

    async def send_text(self, user: str, text: str) -> None: ...


class Rejected(Exception):
    """A webhook request refused before any processing: the response and the outcome to count."""

    def __init__(self, outcome: str, status: int, message: str) -> None:
        super().__init__(message)
        self.outcome, self.status, self.message = outcome, status, message


def verified_json(body: bytes, given: str, expected: str, refused_status: int) -> dict:
    """The body as a JSON object, only after its signature checked out (constant-time compare).
    Parsed on the event loop: the body limit (VISEARCH_WEBHOOK_MAX_BODY_BYTES) keeps it small."""
    if not given or not hmac.compare_digest(given.lower(), expected):
        raise Rejected("bad_signature", refused_status, "invalid signature")
    try:
        data = parse_json(body)
    except JsonBodyError as exc:
        raise Rejected("malformed", 400, f"body is not JSON this server accepts: {exc}") from None
    if not isinstance(data, dict):
        raise Rejected("malformed", 400, "body is not a JSON object")
    return data


class Runtime:
    """The queue, the delivery-id memory and the metrics of one server."""

    def __init__(self, queue: WorkQueue, seen: SeenIds, metrics: Metrics) -> None:
        self.queue = queue
        self.seen = seen
        self.metrics = metrics
        self._side_tasks: set[asyncio.Task[None]] = set()

    def counted(self, platform: str, outcome: str, response: T) -> T:
        """Count a webhook delivery's outcome in the metrics and pass its response through."""
        self.metrics.requests.labels(platform, outcome).inc()
        return response

    def accept(self, replier: Replier, user: str, delivery_id: str, work: Callable[[], Awaitable[Answer]]) -> str:
        """Queue the search for a new delivery; returns the outcome counted in the metrics."""
        if not self.seen.first_time((replier.name, delivery_id)):
            return "duplicate"

        async def job() -> None:
            await self.answer(replier, user, work)

        if self.queue.try_submit(f"{replier.name}:{delivery_id}", job):
            return "queued"
        self.spawn(self.reply_text(replier, user, BUSY))
        return "busy"

    async def answer(self, replier: Replier, user: str, work: Callable[[], Awaitable[Answer]]) -> None:
        """Run the search and send its answer; media problems become a friendly reply."""
        try:
            answer = await work()
        except MediaError as exc:
            text = too_large(replier.max_media_bytes) if str(exc) == "too large" else image_problem(str(exc))
            answer = Answer(text=text)
        if answer.kind == "silent":
            return
        try:
            await replier.send_answer(user, answer)
            self.metrics.replies.labels(replier.name, "sent").inc()
        except PlatformError as exc:
            self.metrics.replies.labels(replier.name, "error").inc()
            log.error("could not answer a %s user: %s", replier.name, exc.description)

    async def reply_text(self, replier: Replier, user: str, text: str) -> None:
        try:
            await replier.send_text(user, text)
            self.metrics.replies.labels(replier.name, "sent").inc()
        except PlatformError as exc:
            self.metrics.replies.labels(replier.name, "error").inc()
            log.error("could not answer a %s user: %s", replier.name, exc.description)

    def spawn(self, coro: Awaitable[None]) -> None:
        """Run a small side job (a busy reply) without blocking the webhook response."""
        task = asyncio.ensure_future(coro)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)
