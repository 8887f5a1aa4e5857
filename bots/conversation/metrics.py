"""One metrics path for every channel: what the conversation records, and the Prometheus registry
that `visearch serve` exposes at /metrics (each app its own registry: two apps in one process do
not mix). Telegram's /stats reads the same counts."""

from __future__ import annotations

from typing import Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

#: answer outcomes counted as errors in /stats
ERROR_OUTCOMES = ("unavailable", "failure")


class ConversationMetrics(Protocol):
    """What a conversation records about its searches and answers, per channel."""

    def searched(self, channel: str, seconds: float) -> None:
        """A search ran (whatever its outcome) and took `seconds`."""

    def answered(self, channel: str, outcome: str) -> None:
        """An answer's outcome: `cards`, or a notice reason's value (`no_match`, `busy`, `rate_limited`...)."""

    def reply_failed(self, channel: str) -> None:
        """An answer could not be sent to the user."""

    def counts(self, channel: str) -> dict[str, int]:
        """`searches`, `rate_limited` and `errors` of one channel, for /stats."""


class Metrics:
    """Webhook requests by platform and outcome, searches and answers by channel, search latency,
    queue depth, replies sent. The latency and request metrics keep their `platform` label
    (dashboards read them); the answers counter is labelled by `channel`."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "visearch_webhook_requests",
            "Webhook deliveries by platform and outcome",
            ["platform", "outcome"],
            registry=self.registry,
        )
        self.search_latency = Histogram(
            "visearch_search_latency_seconds",
            "Search time (decode, embed, query)",
            ["platform"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.answers = Counter(
            "visearch_answers",
            "Conversation answers by channel and outcome",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.queue_depth = Gauge("visearch_queue_depth", "Searches waiting or running", registry=self.registry)
        self.replies = Counter(
            "visearch_replies",
            "Messages sent to users by platform and outcome",
            ["platform", "outcome"],
            registry=self.registry,
        )

    def searched(self, channel: str, seconds: float) -> None:
        self.search_latency.labels(channel).observe(seconds)

    def answered(self, channel: str, outcome: str) -> None:
        self.answers.labels(channel, outcome).inc()

    def reply_failed(self, channel: str) -> None:
        self.replies.labels(channel, "error").inc()

    def reply_sent(self, channel: str) -> None:
        """A message reached the user."""
        self.replies.labels(channel, "sent").inc()

    def counts(self, channel: str) -> dict[str, int]:
        def sample(name: str, **labels: str) -> int:
            return int(self.registry.get_sample_value(name, labels) or 0)

        errors = sum(sample("visearch_answers_total", channel=channel, outcome=o) for o in ERROR_OUTCOMES)
        return {
            "searches": sample("visearch_search_latency_seconds_count", platform=channel),
            "rate_limited": sample("visearch_answers_total", channel=channel, outcome="rate_limited"),
            "errors": errors + sample("visearch_replies_total", platform=channel, outcome="error"),
        }

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
