"""What every webhook platform shares once a delivery is verified and parsed: drop repeats,
queue the search, answer "busy" when the queue is full, count outcomes, never let one failure
reach another user (and never leave the user in silence: an unexpected error is a FAILURE notice).

A delivery id is remembered when the delivery is accepted (a retry while its job is queued or
running is not searched twice) but kept across a restart only once its job has finished: the
answer (or the busy reply) was sent, or sending failed for good. A job that never finished
(the process was killed, or the platform was unreachable) is answered when the platform retries.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import replace
from typing import Any, Protocol, TypeVar

from visearch.bots.conversation import Answer, Notice, NoticeReason, Silence
from visearch.bots.conversation.conversation import log_notice, search_outcome_of
from visearch.bots.conversation.metrics import Metrics
from visearch.bots.http import PlatformError
from visearch.bots.jsonbody import JsonBodyError, parse_json
from visearch.bots.webhooks.work import SeenIds, WorkQueue

log = logging.getLogger("visearch.server")

T = TypeVar("T")


class Replier(Protocol):
    """A platform's way to send an answer to one user."""

    name: str

    async def send(self, user: str, answer: Answer) -> None:
        """Render the answer in the platform's own messages and send them; PlatformError when refused."""


class Rejected(Exception):
    """A webhook request refused before any processing: the response and the outcome to count."""

    def __init__(self, outcome: str, status: int, message: str) -> None:
        super().__init__(message)
        self.outcome, self.status, self.message = outcome, status, message


def verified_json(body: bytes, given: str, expected: str, refused_status: int) -> dict[str, Any]:
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

    def accept(
        self,
        replier: Replier,
        user: str,
        delivery_id: str,
        work: Callable[[], Awaitable[Answer]],
        locale: str = "en",
    ) -> str:
        """Queue the search for a new delivery; returns the outcome counted in the metrics.
        `locale` words the busy reply and an uncaught failure in the customer's language."""
        key = (replier.name, delivery_id)
        if not self.seen.first_time(key):
            return "duplicate"

        async def job() -> None:
            self.settle(key, await self.answer(replier, user, work, locale))

        if self.queue.try_submit(f"{replier.name}:{delivery_id}", job):
            return "queued"

        async def busy() -> None:
            self.metrics.answered(replier.name, NoticeReason.BUSY.value)
            self.settle(key, await self.send(replier, user, Notice(NoticeReason.BUSY, locale=locale)))

        self.spawn(busy())
        return "busy"

    def settle(self, key: Hashable, finished: bool) -> None:
        """A delivery's job is over: kept for good when finished, else forgotten so a retry is answered."""
        if finished:
            self.seen.finished(key)
        else:
            self.seen.forget(key)

    async def answer(
        self, replier: Replier, user: str, work: Callable[[], Awaitable[Answer]], locale: str = "en"
    ) -> bool:
        """Run the work and send its answer; an error the conversation did not catch (the platform's
        own parsing, a bug) is logged and answered with the FAILURE notice, never silence.
        False when the answer could not be sent for a reason a retry may fix."""
        try:
            answer = await work()
        except Exception as exc:
            answer = replace(search_outcome_of(exc), locale=locale)
            log_notice(replier.name, answer)
            self.metrics.answered(replier.name, answer.reason.value)
        if isinstance(answer, Silence):
            return True
        return await self.send(replier, user, answer)

    async def send(self, replier: Replier, user: str, answer: Answer) -> bool:
        """Send an answer; False when it could not be sent for a reason a retry may fix."""
        try:
            await replier.send(user, answer)
        except PlatformError as exc:
            self.metrics.reply_failed(replier.name)
            log.error("could not answer a %s user: %s", replier.name, exc.description)
            return not exc.retryable
        self.metrics.reply_sent(replier.name)
        return True

    def spawn(self, coro: Awaitable[None]) -> None:
        """Run a small side job (a busy reply) without blocking the webhook response."""
        task = asyncio.ensure_future(coro)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)
