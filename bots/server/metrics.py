"""Moved to `visearch.bots.conversation.metrics` (one metrics path for the conversation and the webhooks)."""

from visearch.bots.conversation.metrics import LATENCY_BUCKETS, Metrics

__all__ = ["LATENCY_BUCKETS", "Metrics"]
