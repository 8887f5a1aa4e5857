"""Moved to `visearch.bots.webhooks.work` (the server wires it; channels use it without importing the server)."""

from visearch.bots.webhooks.work import COMPACT_EVERY, DELIVERIES_FILE, PersistentSeenIds, SeenIds, WorkQueue

__all__ = ["COMPACT_EVERY", "DELIVERIES_FILE", "PersistentSeenIds", "SeenIds", "WorkQueue"]
