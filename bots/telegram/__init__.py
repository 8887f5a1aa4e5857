"""The Telegram channel: plug it into your own bot, or run it with `visearch bot telegram`.

    from visearch.bots.telegram import create_router            # aiogram 3
    from visearch.bots.telegram import add_visearch_handlers    # python-telegram-bot 22

Names are imported on first use, so using one framework never imports the other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from visearch.core.lazy import lazy_exports

if TYPE_CHECKING:
    from visearch.bots.telegram.aiogram_router import create_bot, create_router
    from visearch.bots.telegram.config import TelegramSettings, load_telegram_settings
    from visearch.bots.telegram.conversation import TelegramConversation
    from visearch.bots.telegram.ptb_handlers import add_visearch_handlers, build_application

#: public name -> the module that defines it
_PUBLIC = {
    "TelegramConversation": "visearch.bots.telegram.conversation",
    "TelegramSettings": "visearch.bots.telegram.config",
    "add_visearch_handlers": "visearch.bots.telegram.ptb_handlers",
    "build_application": "visearch.bots.telegram.ptb_handlers",
    "create_bot": "visearch.bots.telegram.aiogram_router",
    "create_router": "visearch.bots.telegram.aiogram_router",
    "load_telegram_settings": "visearch.bots.telegram.config",
}

__all__ = [
    "TelegramConversation",
    "TelegramSettings",
    "add_visearch_handlers",
    "build_application",
    "create_bot",
    "create_router",
    "load_telegram_settings",
]


__getattr__ = lazy_exports(__name__, _PUBLIC)
