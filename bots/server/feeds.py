"""The shop's feeds kept in step by `visearch serve`: a sync at start, then every VISEARCH_FEED_INTERVAL.

Why here and like this: the server is the process that owns the collection, so it is the one that
can sync it while answering searches. One background task runs the syncs one after another
(`FeedSync` never overlaps runs); the downloads and writes are async, and parsing, hashing and
embedding run on worker threads, so searches keep being answered during a sync. An unchanged feed
costs one request (conditional GET). `POST /api/v1/feeds:sync` asks for a run now (joining the
one in progress, if any). The figures of each feed are read at scrape time by `FeedCollector`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from visearch.core.catalog.remote import is_feed_url, public_url
from visearch.core.ingest.feeds import FeedRun, FeedStatus, FeedSync

log = logging.getLogger("visearch.feeds")


class FeedScheduler:
    """Runs every configured feed's sync now and then every `interval` seconds, and on demand."""

    def __init__(
        self, sync: FeedSync, sources: list[str], interval: float, on_change: Callable[[], None] = lambda: None
    ) -> None:
        self.sync, self.sources, self.interval, self.on_change = sync, sources, interval, on_change
        self._loop_task: asyncio.Task[None] | None = None
        self._run: asyncio.Task[list[FeedRun]] | None = None

    def start(self) -> None:
        """The schedule: a first sync right away (in the background: the server is ready before it ends)."""
        self._loop_task = asyncio.create_task(self._every_interval(), name="visearch-feed-schedule")

    async def stop(self) -> None:
        """Cancel the schedule and a run in progress: what a run wrote stays (each batch is durable, and
        nothing is deleted before the run's end)."""
        for task in (self._loop_task, self._run):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def trigger(self) -> asyncio.Task[list[FeedRun]]:
        """The run in progress, or a new run of every feed."""
        if self._run is None or self._run.done():
            self._run = asyncio.create_task(self._run_all(), name="visearch-feed-sync")
        return self._run

    @property
    def running(self) -> bool:
        return self._run is not None and not self._run.done()

    async def _every_interval(self) -> None:
        while True:
            try:
                await asyncio.shield(self.trigger())
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug in one run must not end the schedule
                log.exception("feed sync failed")
            await asyncio.sleep(self.interval)

    async def _run_all(self) -> list[FeedRun]:
        runs: list[FeedRun] = []
        for source in self.sources:
            run = await self.sync.run(source)
            runs.append(run)
            _log_run(run)
            if run.outcome == "synced":
                self.on_change()
        return runs

    def status(self) -> list[dict[str, Any]]:
        """Each feed's figures for /api/v1/stats."""
        return [
            feed_status_out(self.sync.status.get(key_of(source), FeedStatus(key_of(source)))) for source in self.sources
        ]


def key_of(source: str) -> str:
    """The name a feed's status is kept under (its URL without query or credentials, or its path)."""
    return public_url(source) if is_feed_url(source) else source


def feed_status_out(status: FeedStatus) -> dict[str, Any]:
    return {
        "source": status.source,
        "runs": status.runs,
        "failures": status.failures,
        "unchanged": status.unchanged,
        "last_outcome": status.last_outcome,
        "last_success": status.last_success,
        "last_duration_s": status.last_duration,
        "items": status.items,
        "last_error": status.last_error,
        "counts": dict(status.counts),
    }


def _log_run(run: FeedRun) -> None:
    if run.outcome == "failed":
        log.warning("feed %s: sync failed after %.1f s: %s", run.source, run.seconds, run.error)
    elif run.outcome == "unchanged":
        log.info("feed %s: unchanged (%d request(s), %.2f s)", run.source, run.requests, run.seconds)
    else:
        summary = run.summary.describe().splitlines()[0] if run.summary else ""
        log.info("feed %s: synced %d items in %.1f s: %s", run.source, run.items, run.seconds, summary)


class FeedCollector(Collector):
    """Prometheus figures of each feed, read from the scheduler's status when /metrics is scraped."""

    def __init__(self, scheduler: FeedScheduler) -> None:
        self.scheduler = scheduler

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        runs = CounterMetricFamily("visearch_feed_syncs", "Feed sync runs by outcome", labels=["feed", "outcome"])
        failures = CounterMetricFamily("visearch_feed_failures", "Feed syncs that failed", labels=["feed"])
        last_success = GaugeMetricFamily(
            "visearch_feed_last_success_timestamp_seconds",
            "Unix time of the last sync that did not fail",
            labels=["feed"],
        )
        duration = GaugeMetricFamily(
            "visearch_feed_last_duration_seconds", "Duration of the last sync", labels=["feed"]
        )
        items = GaugeMetricFamily(
            "visearch_feed_items", "Products read from the feed by its last sync", labels=["feed"]
        )
        syncing = GaugeMetricFamily("visearch_feed_sync_running", "1 while a feed sync runs")
        syncing.add_metric([], 1.0 if self.scheduler.running else 0.0)
        for out in self.scheduler.status():
            feed = out["source"]
            for outcome in ("synced", "unchanged", "failed"):
                count = {"failed": out["failures"], "unchanged": out["unchanged"]}.get(
                    outcome, out["runs"] - out["failures"] - out["unchanged"]
                )
                runs.add_metric([feed, outcome], float(count))
            failures.add_metric([feed], float(out["failures"]))
            if out["last_success"] is not None:
                last_success.add_metric([feed], float(out["last_success"]))
            if out["last_duration_s"] is not None:
                duration.add_metric([feed], float(out["last_duration_s"]))
            items.add_metric([feed], float(out["items"]))
        yield from (runs, failures, last_success, duration, items, syncing)
