"""Prometheus metrics of one app (its own registry: two apps in one process do not mix)."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Webhook requests by platform and outcome, search latency, queue depth, replies sent."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("visearch_webhook_requests", "Webhook deliveries by platform and outcome",
                                ["platform", "outcome"], registry=self.registry)
        self.search_latency = Histogram("visearch_search_latency_seconds", "Search time (decode, embed, query)",
                                        ["platform"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.queue_depth = Gauge("visearch_queue_depth", "Searches waiting or running", registry=self.registry)
        self.replies = Counter("visearch_replies", "Messages sent to users by platform and outcome",
                               ["platform", "outcome"], registry=self.registry)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
