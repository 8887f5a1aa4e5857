"""Run the Telegram bot on either framework, by long polling (default) or a webhook.

`visearch bot telegram` calls `serve_forever`; tests and embedders use a runner's `start()` and
`stop()` directly, inside their own event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
from typing import TYPE_CHECKING, Literal, Protocol
from urllib.parse import urlsplit

from visearch.bots.telegram.config import TelegramSettings
from visearch.bots.telegram.conversation import TelegramConversation, register_commands

if TYPE_CHECKING:  # aiohttp serves the aiogram webhook only: imported when one starts
    from aiohttp import web

log = logging.getLogger("visearch.telegram")

Framework = Literal["aiogram", "ptb"]
DEFAULT_WEBHOOK_PATH = "/webhooks/telegram"


class BotRunner(Protocol):
    """A bot that can be started and stopped inside a running event loop."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def webhook_path(url: str) -> str:
    """The local path to listen on: the path of the public webhook URL, or /webhooks/telegram."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        from visearch.core.errors import ConfigError

        raise ConfigError(f"--webhook must be a public http(s) URL such as https://shop.example{DEFAULT_WEBHOOK_PATH}")
    return parts.path if parts.path not in ("", "/") else DEFAULT_WEBHOOK_PATH


def webhook_secret(telegram: TelegramSettings) -> str:
    """VISEARCH_TELEGRAM_WEBHOOK_SECRET, or a fresh random one (registered anew at every start)."""
    return telegram.webhook_secret_value or secrets.token_urlsafe(32)


class RunnerBase:
    """What both runners are given: the settings, the conversation, and where a webhook listens (None: polling)."""

    def __init__(
        self,
        telegram: TelegramSettings,
        conversation: TelegramConversation,
        webhook_url: str | None = None,
        listen: str = "0.0.0.0",
        port: int = 8080,
    ) -> None:
        self.telegram = telegram
        self.conversation = conversation
        self.webhook_url, self.listen, self.port = webhook_url, listen, port
        self._build()

    def _build(self) -> None:
        """Create the framework's objects (imported here: only the chosen framework is loaded)."""
        raise NotImplementedError


class AiogramRunner(RunnerBase):
    """aiogram's Dispatcher with our router: polling, or aiohttp's webhook server."""

    def _build(self) -> None:
        from aiogram import Dispatcher

        from visearch.bots.telegram.aiogram_router import create_bot, create_router

        self.bot = create_bot(self.telegram)
        self.dispatcher = Dispatcher()
        self.dispatcher.include_router(create_router(self.conversation))
        self._task: asyncio.Task[None] | None = None
        self._site_runner: web.AppRunner | None = None

    async def start(self) -> None:
        await self.conversation.start()  # a missing collection or model fails here, not in a task
        from aiogram.types import BotCommand

        await register_commands(
            self.bot,
            self.conversation.conversation.wordings,
            lambda name, text: BotCommand(command=name, description=text),
        )
        if self.webhook_url is None:
            await self.bot.delete_webhook(drop_pending_updates=False)
            self._task = asyncio.create_task(
                self.dispatcher.start_polling(
                    self.bot,
                    handle_signals=False,
                    polling_timeout=self.telegram.poll_timeout,
                    allowed_updates=self.dispatcher.resolve_used_update_types(),
                    close_bot_session=False,
                )
            )
            return
        from aiogram.webhook.aiohttp_server import (
            SimpleRequestHandler,
            setup_application,
        )
        from aiohttp import web

        secret = webhook_secret(self.telegram)
        app = web.Application()
        SimpleRequestHandler(dispatcher=self.dispatcher, bot=self.bot, secret_token=secret).register(
            app, path=webhook_path(self.webhook_url)
        )
        setup_application(app, self.dispatcher, bot=self.bot)
        site_runner = web.AppRunner(app)
        await site_runner.setup()
        self._site_runner = site_runner
        await web.TCPSite(site_runner, self.listen, self.port).start()
        await self.bot.set_webhook(
            self.webhook_url, secret_token=secret, allowed_updates=self.dispatcher.resolve_used_update_types()
        )

    async def stop(self) -> None:
        if self._task is not None:
            with contextlib.suppress(RuntimeError):  # polling ended on its own
                await self.dispatcher.stop_polling()
            await self._task
            self._task = None
        if self._site_runner is not None:
            await self._site_runner.cleanup()  # runs the dispatcher's shutdown (closes the conversation)
            self._site_runner = None
        await self.conversation.close()
        await self.bot.session.close()


class PtbRunner(RunnerBase):
    """python-telegram-bot's Application with our handlers: polling, or its webhook server."""

    def _build(self) -> None:
        from visearch.bots.telegram.ptb_handlers import add_visearch_handlers, build_application

        self.application = build_application(self.telegram)
        add_visearch_handlers(self.application, self.conversation)

    async def start(self) -> None:
        from telegram import BotCommand, Update

        await self.conversation.start()
        await self.application.initialize()
        await register_commands(self.application.bot, self.conversation.conversation.wordings, BotCommand)
        await self.application.start()
        assert self.application.updater is not None
        if self.webhook_url is None:
            await self.application.updater.start_polling(
                timeout=self.telegram.poll_timeout, allowed_updates=Update.ALL_TYPES
            )
            return
        await self.application.updater.start_webhook(
            listen=self.listen,
            port=self.port,
            url_path=webhook_path(self.webhook_url).lstrip("/"),
            secret_token=webhook_secret(self.telegram),
            webhook_url=self.webhook_url,
            allowed_updates=Update.ALL_TYPES,
        )

    async def stop(self) -> None:
        assert self.application.updater is not None
        if self.application.updater.running:
            await self.application.updater.stop()
        if self.application.running:
            await self.application.stop()
        await self.application.shutdown()
        await self.conversation.close()


def make_runner(
    framework: Framework,
    telegram: TelegramSettings,
    conversation: TelegramConversation,
    webhook_url: str | None = None,
    listen: str = "0.0.0.0",
    port: int = 8080,
) -> BotRunner:
    """The runner for the chosen framework."""
    runner_cls = AiogramRunner if framework == "aiogram" else PtbRunner
    return runner_cls(telegram, conversation, webhook_url, listen, port)


async def serve_forever(runner: BotRunner) -> None:
    """Start, wait for SIGINT/SIGTERM, stop cleanly."""
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread, or Windows
            loop.add_signal_handler(sig, stopped.set)
    await runner.start()
    log.info("Telegram bot running; press Ctrl+C to stop")
    try:
        await stopped.wait()
    finally:
        await runner.stop()
