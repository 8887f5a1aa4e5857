"""The webhook runtime on its own: a real WorkQueue, delivery-id memory and Prometheus metrics, and
a replier that records what a platform would have been sent. Repeats are dropped, a full queue
answers BUSY, and a job that fails reaches neither the worker nor another user."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from visearch.bots.conversation import (
    Answer,
    Cards,
    Metrics,
    Notice,
    NoticeReason,
    Silence,
)
from visearch.bots.http import PlatformError
from visearch.bots.webhooks.runtime import Runtime
from visearch.bots.webhooks.work import SeenIds, WorkQueue


class Recorder:
    """A platform that accepts every message (or refuses the next ones on demand)."""

    name = "viber"

    def __init__(self) -> None:
        self.sent: list[tuple[str, Answer]] = []
        self.refusals: list[PlatformError] = []
        self.arrived = asyncio.Event()

    async def send(self, user: str, answer: Answer) -> None:
        if self.refusals:
            raise self.refusals.pop(0)
        self.sent.append((user, answer))
        self.arrived.set()

    def to(self, user: str) -> list[Answer]:
        return [answer for to, answer in self.sent if to == user]

    async def wait_for(self, user: str, count: int = 1) -> list[Answer]:
        async def enough() -> None:
            while len(self.to(user)) < count:
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(enough(), timeout=10)
        return self.to(user)


@contextlib.asynccontextmanager
async def started(queue_size: int) -> AsyncIterator[Runtime]:
    """A runtime with one worker, so jobs run in the order accepted."""
    queue = WorkQueue(size=queue_size, workers=1)
    queue.start()
    try:
        yield Runtime(queue, SeenIds(), Metrics())
    finally:
        await queue.stop()


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    async with started(queue_size=8) as running:
        yield running


def answering(answer: Answer) -> object:
    async def work() -> Answer:
        return answer

    return work


def sample(runtime: Runtime, name: str, **labels: str) -> float:
    return runtime.metrics.registry.get_sample_value(name, labels) or 0.0


async def test_a_repeated_delivery_is_dropped(runtime: Runtime) -> None:
    platform = Recorder()
    runs: list[str] = []

    async def work() -> Answer:
        runs.append("ran")
        return Cards([])

    assert runtime.accept(platform, "u1", "d1", work) == "queued"
    assert runtime.accept(platform, "u1", "d1", work) == "duplicate"
    await platform.wait_for("u1")
    assert runtime.accept(platform, "u1", "d1", work) == "duplicate", "still a repeat once answered"
    assert runtime.accept(platform, "u1", "d2", work) == "queued"
    await platform.wait_for("u1", 2)  # the later delivery was answered: the repeats would have been by now
    assert runs == ["ran", "ran"] and len(platform.to("u1")) == 2


async def test_a_full_queue_answers_busy() -> None:
    async with started(queue_size=1) as runtime:
        await _fill_and_overflow(runtime)


async def _fill_and_overflow(runtime: Runtime) -> None:
    platform = Recorder()
    release = asyncio.Event()

    async def slow() -> Answer:
        await release.wait()
        return Cards([])

    assert runtime.accept(platform, "holder", "d1", slow) == "queued"  # taken by the only worker
    await asyncio.sleep(0.05)
    assert runtime.accept(platform, "waiting", "d2", slow) == "queued"  # the one queue slot
    assert runtime.accept(platform, "late", "d3", slow) == "busy"
    [busy] = await platform.wait_for("late")
    assert isinstance(busy, Notice) and busy.reason is NoticeReason.BUSY
    assert sample(runtime, "visearch_answers_total", channel="viber", outcome="busy") == 1
    release.set()
    await platform.wait_for("holder")
    await platform.wait_for("waiting")
    assert runtime.accept(platform, "late", "d3", slow) == "duplicate", "the busy reply finished the delivery"


async def test_a_failing_job_is_answered_with_failure_and_reaches_no_one_else(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    platform = Recorder()

    async def broken() -> Answer:
        raise RuntimeError("a bug in the platform's parsing")

    runtime.accept(platform, "unlucky", "d1", broken)
    runtime.accept(platform, "other", "d2", answering(Cards([])))
    [failure] = await platform.wait_for("unlucky")
    [fine] = await platform.wait_for("other")
    assert isinstance(failure, Notice) and failure.reason is NoticeReason.FAILURE
    assert isinstance(fine, Cards), "the other user's answer is their own"
    assert "a bug in the platform's parsing" in caplog.text and "Traceback" in caplog.text
    runtime.accept(platform, "after", "d3", answering(Cards([])))
    assert await platform.wait_for("after"), "the worker goes on"


async def test_silence_sends_nothing_and_an_unreachable_platform_gets_the_retry(runtime: Runtime) -> None:
    platform = Recorder()
    runtime.accept(platform, "quiet", "d1", answering(Silence()))
    platform.refusals.append(PlatformError("viber", "unreachable", retryable=True))
    runtime.accept(platform, "retried", "d2", answering(Cards([])))
    runtime.accept(platform, "probe", "d3", answering(Cards([])))
    await platform.wait_for("probe")  # jobs run in order on the one worker: the earlier two are done
    assert platform.to("quiet") == [] and platform.to("retried") == []
    assert sample(runtime, "visearch_replies_total", platform="viber", outcome="error") == 1
    assert runtime.accept(platform, "retried", "d2", answering(Cards([]))) == "queued", "forgotten: answered on retry"
    assert await platform.wait_for("retried")
    assert runtime.accept(platform, "quiet", "d1", answering(Silence())) == "duplicate"
