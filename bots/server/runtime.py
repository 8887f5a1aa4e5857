"""Moved to `visearch.bots.webhooks.runtime` (the server wires it; channels use it without importing the server)."""

from visearch.bots.webhooks.runtime import Rejected, Replier, Runtime, verified_json

__all__ = ["Rejected", "Replier", "Runtime", "verified_json"]
