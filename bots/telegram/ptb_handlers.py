"""visearch for python-telegram-bot v22: handlers to add to any `Application`, and the pieces to run one.

Plug into an existing bot (the model loads on the first search, or call
`await conversation.start()` in your `post_init`)::

    from visearch.bots.telegram.ptb_handlers import add_visearch_handlers
    add_visearch_handlers(application)

Handlers are registered with `block=False`, so a slow search never holds up other chats and the
photos of an album are gathered into one answer. Pass `group=` to order them after your own.
"""

from __future__ import annotations

import datetime as dt
import logging
import warnings
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeAlias

from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Message,
    Update,
)
from telegram.constants import ChatAction
from telegram.error import BadRequest, RetryAfter
from telegram.ext import (
    Application,
    ApplicationBuilder,
    BaseRateLimiter,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from visearch.bots.conversation import MORE_LIKE_THIS, NEXT_PAGE
from visearch.bots.telegram import presentation as ui
from visearch.bots.telegram.config import TelegramSettings
from visearch.bots.telegram.conversation import (
    PhotoInput,
    PhotoRejected,
    TelegramConversation,
    answered_commands,
    carries_unsupported_content,
    command_name,
    conversation_or_default,
    is_photo_problem,
    language_of,
    route_message,
    with_flood_retries,
)

log = logging.getLogger("visearch.telegram")

#: an Application of any bot, context and data types: a shop's own application may customise them
AnyApplication: TypeAlias = Application[Any, Any, Any, Any, Any, Any]


def _seconds(exc: RetryAfter) -> float:
    """RetryAfter.retry_after in seconds (an int today, a timedelta in a future major version)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the PTBDeprecationWarning about that change
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)


class RetryAfterLimiter(BaseRateLimiter[None]):
    """Honour HTTP 429 `retry_after` (python-telegram-bot raises RetryAfter; this waits and retries)."""

    def __init__(self, max_wait: float = 60.0, attempts: int = 3) -> None:
        self.max_wait = max_wait
        self.attempts = attempts

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to release."""

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[dict[str, Any]]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: None,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        return await with_flood_retries(
            lambda: callback(*args, **kwargs),
            RetryAfter,
            _seconds,
            attempts=self.attempts,
            max_wait=self.max_wait,
            what=endpoint,
        )


def build_application(telegram: TelegramSettings) -> AnyApplication:
    """An Application on the configured Bot API server, with 429 retries and concurrent updates."""
    root = telegram.api_url
    return (
        ApplicationBuilder()
        .token(telegram.require_token())
        .base_url(f"{root}/bot")
        .base_file_url(f"{root}/file/bot")
        .rate_limiter(RetryAfterLimiter(telegram.max_retry_after))
        .concurrent_updates(True)
        .build()
    )


def keyboard(rows: ui.Keyboard) -> InlineKeyboardMarkup | None:
    """Neutral buttons -> python-telegram-bot's inline keyboard."""
    if not rows:
        return None
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(b.text, callback_data=b.callback_data, url=b.url) for b in row] for row in rows]
    )


class PtbSender:
    """Sends neutral replies to one chat through a python-telegram-bot Bot."""

    def __init__(self, bot: Bot, chat_id: int) -> None:
        self.bot = bot
        self.chat_id = chat_id

    async def send_text(self, reply: ui.TextReply) -> None:
        await self.bot.send_message(
            self.chat_id,
            reply.text,
            parse_mode=ui.PARSE_MODE,
            reply_markup=keyboard(reply.buttons),
            link_preview_options=LinkPreviewOptions(is_disabled=True),
        )

    async def send_photo(self, reply: ui.PhotoReply, photo: PhotoInput) -> str:
        source: str | bytes = photo.file_id or photo.url or ""
        if photo.path:
            source = Path(photo.path).read_bytes()  # FileNotFoundError -> the card goes as text
        try:
            sent = await self.bot.send_photo(
                self.chat_id,
                source,
                caption=reply.caption,
                parse_mode=ui.PARSE_MODE,
                reply_markup=keyboard(reply.buttons),
            )
        except BadRequest as exc:
            if is_photo_problem(exc.message):
                raise PhotoRejected(exc.message) from None
            raise
        return sent.photo[-1].file_id if sent.photo else ""


class UnsupportedContentFilter(filters.MessageFilter):
    """Messages carrying content we cannot search by (the one table, `UNSUPPORTED_CONTENT`)."""

    def filter(self, message: Message) -> bool:
        return carries_unsupported_content(message)


class PtbHandlers:
    """The application's handlers: each translates one kind of update for the conversation and sends its replies."""

    def __init__(self, conversation: TelegramConversation) -> None:
        self.conversation = conversation

    async def send(self, bot: Any, chat_id: int, replies: list[ui.Reply]) -> None:
        await self.conversation.send_replies(replies, PtbSender(bot, chat_id))

    async def on_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None:
            return
        user_id = update.effective_user.id if update.effective_user else None
        language = language_of(update.effective_user)
        replies = await self.conversation.handle_command(command_name(message.text), user_id, language)
        await self.send(context.bot, message.chat.id, replies)

    async def on_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None:
            return
        bot = context.bot

        async def progress() -> None:
            await bot.send_chat_action(message.chat.id, ChatAction.UPLOAD_PHOTO)

        async def download(file_id: str) -> bytes:
            file = await bot.get_file(file_id)
            return bytes(await file.download_as_bytearray())

        await self.send(bot, message.chat.id, await route_message(self.conversation, message, download, progress))

    async def on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None:
            return
        answer = await self.conversation.handle_callback(
            query.from_user.id, query.data or "", language_of(query.from_user)
        )
        try:
            await query.answer(answer.toast)
        except BadRequest as exc:  # query too old (bot was down): the cards are still useful
            log.info("callback answer refused: %s", exc.message)
        message = query.message
        if not isinstance(message, Message):
            return
        if answer.drop_page_button and message.reply_markup:
            await _drop_page_button(message)
        await self.send(context.bot, message.chat.id, answer.replies)


def add_visearch_handlers(
    application: AnyApplication,
    conversation: TelegramConversation | None = None,
    *,
    group: int = 0,
    with_commands: bool = True,
) -> TelegramConversation:
    """Register visearch's handlers on `application`; returns the conversation (for `start()`/`close()`).

    Without a conversation, one is built from the `VISEARCH_*` settings. `with_commands=False`
    leaves /start and /help to your bot (/filters and /stats stay).
    """
    convo = conversation_or_default(conversation)
    handlers = PtbHandlers(convo)
    searchable = filters.PHOTO | filters.Document.ALL | (filters.TEXT & ~filters.COMMAND)
    application.add_handlers(
        [
            CommandHandler(list(answered_commands(with_commands)), handlers.on_command, block=False),
            MessageHandler(searchable, handlers.on_message, block=False),
            MessageHandler(UnsupportedContentFilter(), handlers.on_message, block=False),
            CallbackQueryHandler(handlers.on_button, pattern=rf"^({MORE_LIKE_THIS}|{NEXT_PAGE})", block=False),
        ],
        group=group,
    )
    return convo


async def _drop_page_button(message: Message) -> None:
    """Remove 'Show more' from the card it was tapped on: the next page is now below it."""
    assert message.reply_markup is not None
    rows = [[b.to_dict() for b in row] for row in message.reply_markup.inline_keyboard]
    kept = ui.without_page_button(rows)
    markup = InlineKeyboardMarkup([[InlineKeyboardButton(**b) for b in row] for row in kept])
    try:
        await message.edit_reply_markup(reply_markup=markup)
    except BadRequest as exc:  # "message is not modified" on a double tap
        log.info("keyboard not edited: %s", exc.message)
