"""`visearch serve`'s app on 127.0.0.1 in a background thread, for tests whose client is synchronous
(a browser driven by Playwright, schemathesis): the server gets its own event loop and thread."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from tests.conftest import free_port
from visearch.bots.server.app import create_app
from visearch.bots.server.config import load_server_settings
from visearch.bots.telegram.config import load_telegram_settings
from visearch.core.config import Settings
from visearch.core.search import SearchService
from visearch.core.store.factory import open_store


@contextmanager
def app_in_thread(settings: Settings, encoder: Any, **server_options: object) -> Iterator[str]:
    """Serve the app (no messenger configured) until the block ends; yields its base URL."""
    server = load_server_settings(**{"rate_limit": 0, **server_options})
    service = SearchService(encoder, open_store(settings), settings)
    port = free_port()
    app = create_app(
        settings,
        server,
        load_telegram_settings(token=None, webhook_secret=None),
        service=service,
        listen_url=f"http://127.0.0.1:{port}",
    )
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))

    async def serve_then_close() -> None:  # the service closes on the server's own loop and thread
        try:
            await uv.serve()
        finally:
            await service.close()

    thread = threading.Thread(target=lambda: asyncio.run(serve_then_close()), name="visearch-test-server", daemon=True)
    thread.start()
    try:
        while not uv.started:
            if not thread.is_alive():
                raise RuntimeError("the server did not start")
            threading.Event().wait(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        uv.should_exit = True
        thread.join(30)


def cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a `visearch` subprocess over `settings`' collection: none of the caller's
    VISEARCH_* (a developer's .env or shell must not change what a test runs), no model downloads."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VISEARCH_")}
    env.update(
        VISEARCH_DATA_DIR=str(settings.data_dir),
        VISEARCH_COLLECTION=settings.collection,
        HF_HUB_OFFLINE="1",
        PYTHONPATH=str(Path(__file__).resolve().parents[1]),
    )
    env.update(extra)
    return env
