"""visearch for aiogram 3: a `Router` to include in any bot, and the pieces to run one.

Plug into an existing bot (the router loads the model when the dispatcher starts)::

    from visearch.bots.telegram.aiogram_router import create_router
    dp.include_router(create_router())

The handlers only translate: update facts go to `TelegramConversation`, replies come back as
plain data and are sent here. Include the router after your own so your commands win.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

from aiogram import Bot, F, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ChatAction
from aiogram.exceptions import TelegramBadRequest, TelegramRetryAfter
from aiogram.filters import Command
from aiogram.methods import TelegramMethod
from aiogram.methods.base import Response, TelegramType
from aiogram.types import (
    CallbackQuery,
    FSInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Message,
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


class RetryAfterMiddleware(BaseRequestMiddleware):
    """Honour HTTP 429 `retry_after`: wait as long as Telegram asks, then send the request again."""

    def __init__(self, max_wait: float = 60.0, attempts: int = 3) -> None:
        self.max_wait = max_wait
        self.attempts = attempts

    async def __call__(
        self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot, method: TelegramMethod[TelegramType]
    ) -> Response[TelegramType]:
        return await with_flood_retries(
            lambda: make_request(bot, method),
            TelegramRetryAfter,
            _retry_after_seconds,
            attempts=self.attempts,
            max_wait=self.max_wait,
            what=method.__api_method__,
        )


def _retry_after_seconds(exc: TelegramRetryAfter) -> float:
    return float(exc.retry_after)


def create_bot(telegram: TelegramSettings) -> Bot:
    """A Bot on the configured Bot API server, with 429 retries."""
    session = AiohttpSession(api=TelegramAPIServer.from_base(telegram.api_url))
    session.middleware(RetryAfterMiddleware(telegram.max_retry_after))
    return Bot(telegram.require_token(), session=session)


def keyboard(rows: ui.Keyboard) -> InlineKeyboardMarkup | None:
    """Neutral buttons -> aiogram's inline keyboard."""
    if not rows:
        return None
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=b.text, callback_data=b.callback_data, url=b.url) for b in row] for row in rows
        ]
    )


class AiogramSender:
    """Sends neutral replies to one chat through an aiogram Bot."""

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
        source: str | FSInputFile = photo.file_id or photo.url or ""
        if photo.path:
            if not Path(photo.path).is_file():
                raise FileNotFoundError(photo.path)
            source = FSInputFile(photo.path)
        try:
            sent = await self.bot.send_photo(
                self.chat_id,
                source,
                caption=reply.caption,
                parse_mode=ui.PARSE_MODE,
                reply_markup=keyboard(reply.buttons),
            )
        except TelegramBadRequest as exc:
            if is_photo_problem(exc.message):
                raise PhotoRejected(exc.message) from None
            raise
        return sent.photo[-1].file_id if sent.photo else ""


class ConversationRouter(Router):
    """An aiogram Router that keeps the conversation it answers with (for tests and /stats)."""

    def __init__(self, conversation: TelegramConversation, *, name: str) -> None:
        super().__init__(name=name)
        self.visearch_conversation = conversation


class AiogramHandlers:
    """The router's handlers: each translates one kind of update for the conversation and sends its replies."""

    def __init__(self, conversation: TelegramConversation) -> None:
        self.conversation = conversation

    async def send(self, bot: Bot, chat_id: int, replies: list[ui.Reply]) -> None:
        await self.conversation.send_replies(replies, AiogramSender(bot, chat_id))

    async def on_command(self, message: Message, bot: Bot) -> None:
        user_id = message.from_user.id if message.from_user else None
        language = language_of(message.from_user)
        replies = await self.conversation.handle_command(command_name(message.text), user_id, language)
        await self.send(bot, message.chat.id, replies)

    async def on_search(self, message: Message, bot: Bot) -> None:
        async def progress() -> None:
            await bot.send_chat_action(message.chat.id, ChatAction.UPLOAD_PHOTO)

        async def fetch(file_id: str) -> bytes:
            return await _download(bot, file_id)

        await self.send(bot, message.chat.id, await route_message(self.conversation, message, fetch, progress))

    async def on_unsupported(self, message: Message, bot: Bot) -> None:
        await self.send(bot, message.chat.id, await route_message(self.conversation, message, _no_download))

    async def on_button(self, callback: CallbackQuery, bot: Bot) -> None:
        answer = await self.conversation.handle_callback(
            callback.from_user.id, callback.data or "", language_of(callback.from_user)
        )
        try:
            await callback.answer(answer.toast)
        except TelegramBadRequest as exc:  # query too old (bot was down): the cards are still useful
            log.info("callback answer refused: %s", exc.message)
        message = callback.message
        if message is None:
            return
        if answer.drop_page_button and isinstance(message, Message) and message.reply_markup:
            await _drop_page_button(bot, message)
        await self.send(bot, message.chat.id, answer.replies)


def create_router(
    conversation: TelegramConversation | None = None, *, with_commands: bool = True, name: str = "visearch"
) -> ConversationRouter:
    """A router answering photos, image documents, texts and our buttons with product cards.

    Without a conversation, one is built from the `VISEARCH_*` settings; its model is loaded when
    the dispatcher starts and released when it stops. `with_commands=False` leaves /start and /help
    to your bot (/filters and /stats stay).
    """
    convo = conversation_or_default(conversation)
    router = ConversationRouter(convo, name=name)
    handlers = AiogramHandlers(convo)
    router.message(Command(*answered_commands(with_commands)))(handlers.on_command)
    router.message(F.photo | F.document | (F.text & ~F.text.startswith("/")))(handlers.on_search)
    router.message(F.func(carries_unsupported_content))(handlers.on_unsupported)
    router.callback_query(F.data.startswith(MORE_LIKE_THIS) | F.data.startswith(NEXT_PAGE))(handlers.on_button)
    router.startup()(convo.start)
    router.shutdown()(convo.close)
    return router


async def _download(bot: Bot, file_id: str) -> bytes:
    buffer = io.BytesIO()
    await bot.download(file_id, destination=buffer)
    return buffer.getvalue()


async def _drop_page_button(bot: Bot, message: Message) -> None:
    """Remove 'Show more' from the card it was tapped on: the next page is now below it."""
    assert message.reply_markup is not None
    rows = [[b.model_dump(exclude_none=True) for b in row] for row in message.reply_markup.inline_keyboard]
    kept = ui.without_page_button(rows)
    markup = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(**b) for b in row] for row in kept])
    try:
        await bot.edit_message_reply_markup(chat_id=message.chat.id, message_id=message.message_id, reply_markup=markup)
    except TelegramBadRequest as exc:  # "message is not modified" on a double tap
        log.info("keyboard not edited: %s", exc.message)


async def _no_download(file_id: str) -> bytes:
    raise AssertionError(f"unsupported content is never downloaded ({file_id})")


__all__ = [
    "AiogramHandlers",
    "AiogramSender",
    "ConversationRouter",
    "RetryAfterMiddleware",
    "create_bot",
    "create_router",
    "keyboard",
]
