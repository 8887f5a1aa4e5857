"""`visearch serve`: one ASGI app with the search page, the HTTP API, the webhooks, health checks and metrics.

from visearch.bots.server import create_app
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from visearch.bots.server.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    """Import `create_app` on first use (it pulls in the web framework and every channel)."""
    if name != "create_app":
        raise AttributeError(f"module 'visearch.bots.server' has no attribute {name!r}")
    from visearch.bots.server.app import create_app

    return create_app
