"""What every webhook platform shares once a delivery is verified and parsed: drop repeats,
queue the search, answer "busy" when the queue is full, count outcomes, never let one failure
reach another user.

A delivery id is remembered when the delivery is accepted (a retry while its job is queued or
running is not searched twice) but kept across a restart only once its job has finished: the
answer (or the busy reply) was sent, or sending failed for good. A job that never finished
(the process was killed, or the platform was unreachable) is answered when the platform retries.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from visearch.bots.answers import BUSY, Answer, image_problem, too_large
from visearch.bots.http import MediaError, MediaTooLargeError, PlatformError
from visearch.bots.jsonbody import JsonBodyError, parse_json
from visearch.bots.server.metrics import Metrics
from visearch.bots.server.work import SeenIds, WorkQueue

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
        key = (replier.name, delivery_id)
        if not self.seen.first_time(key):
            return "duplicate"

        async def job() -> None:
            self.settle(key, await self.answer(replier, user, work))

        if self.queue.try_submit(f"{replier.name}:{delivery_id}", job):
            return "queued"

        async def busy() -> None:
            self.settle(key, await self.reply_text(replier, user, BUSY))

        self.spawn(busy())
        return "busy"

    def settle(self, key: tuple[str, str], finished: bool) -> None:
        """A delivery's job is over: kept for good when finished, else forgotten so a retry is answered."""
        if finished:
            self.seen.finished(key)
        else:
            self.seen.forget(key)

    async def answer(self, replier: Replier, user: str, work: Callable[[], Awaitable[Answer]]) -> bool:
        """Run the search and send its answer; media problems become a friendly reply.
        False when the answer could not be sent for a reason a retry may fix."""
        try:
            answer = await work()
        except MediaTooLargeError:
            answer = Answer(text=too_large(replier.max_media_bytes))
        except MediaError as exc:
            answer = Answer(text=image_problem(str(exc)))
        if answer.kind == "silent":
            return True
        return await self._sent(replier, replier.send_answer(user, answer))

    async def reply_text(self, replier: Replier, user: str, text: str) -> bool:
        """Send a plain text; False when it could not be sent for a reason a retry may fix."""
        return await self._sent(replier, replier.send_text(user, text))

    async def _sent(self, replier: Replier, sending: Awaitable[None]) -> bool:
        try:
            await sending
        except PlatformError as exc:
            self.metrics.replies.labels(replier.name, "error").inc()
            log.error("could not answer a %s user: %s", replier.name, exc.description)
            return not exc.retryable
        self.metrics.replies.labels(replier.name, "sent").inc()
        return True

    def spawn(self, coro: Awaitable[None]) -> None:
        """Run a small side job (a busy reply) without blocking the webhook response."""
        task = asyncio.ensure_future(coro)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)
