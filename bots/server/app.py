"""`visearch serve`: one ASGI app for the webhooks, the HTTP API, the web page, health and metrics.

Routes: POST /webhooks/telegram, POST /webhooks/viber, GET+POST /webhooks/whatsapp (each only
when its credentials are configured), /api/v1/... (catalog and search API, OpenAPI schema at
/api/v1/openapi.json; see `bots/api`), GET / (the search page), GET /healthz (process alive),
GET /readyz (store reachable, collection present, encoder loaded), GET /metrics (Prometheus),
GET /media/{point_id} (catalog photos for platforms and browsers that fetch images by URL).
Webhooks answer at once; their searches run on a bounded queue (see `bots/webhooks/work.py`).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import mimetypes
import os
import stat
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, BinaryIO

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from visearch.bots.api import install_api
from visearch.bots.api.app import PREFIX, ApiApp
from visearch.bots.api.catalog import CatalogWriter
from visearch.bots.conversation import Conversation, ConversationSettings, Metrics, NoticeReason
from visearch.bots.conversation.i18n import Locales, LocaleSettings, load_locale_settings
from visearch.bots.conversation.wording import Wordings
from visearch.bots.jsonbody import parse_json
from visearch.bots.server.config import ServerSettings
from visearch.bots.server.feeds import FeedCollector, FeedScheduler
from visearch.bots.telegram.config import TelegramSettings
from visearch.bots.webhooks.runtime import Runtime
from visearch.bots.webhooks.work import DELIVERIES_FILE, PersistentSeenIds, WorkQueue
from visearch.core.config import Settings
from visearch.core.ingest.feeds import FeedSync
from visearch.core.media import locate_photo
from visearch.core.search import SearchService
from visearch.core.store.base import VectorStore

if TYPE_CHECKING:  # each platform's module is imported at start only when that platform is configured
    from aiogram import Bot, Dispatcher

    from visearch.bots.telegram.conversation import TelegramConversation
    from visearch.bots.viber.bot import ViberBot
    from visearch.bots.whatsapp.bot import WhatsAppBot

log = logging.getLogger("visearch.server")


@dataclass
class ServerState:
    """Everything the routes share; built in the lifespan, closed at shutdown."""

    settings: Settings
    server: ServerSettings
    telegram: TelegramSettings
    locales: LocaleSettings = field(default_factory=LocaleSettings)
    metrics: Metrics = field(default_factory=Metrics)
    service: SearchService | None = None
    runtime: Runtime | None = None
    viber: ViberBot | None = None
    whatsapp: WhatsAppBot | None = None
    telegram_bot: Bot | None = None
    telegram_dispatcher: Dispatcher | None = None
    telegram_conversation: TelegramConversation | None = None
    conversation: Conversation | None = None
    writer: CatalogWriter | None = None
    owns_service: bool = False
    store: VectorStore | None = None  # opened by the caller (its lock already taken), for the service we open
    listen_url: str | None = None  # where this server answers (for the data directory's owner note)
    feeds: FeedScheduler | None = None  # VISEARCH_FEED_URL's syncs
    wordings: Wordings = field(init=False)  # the page's and the API's words, by the visitor's language

    def __post_init__(self) -> None:
        self.wordings = Wordings(Locales.from_settings(self.locales))

    def enabled(self) -> list[str]:
        names: list[str] = []
        if self.telegram_enabled:
            names.append("telegram")
        if self.server.viber_enabled:
            names.append("viber")
        if self.server.whatsapp_enabled:
            names.append("whatsapp")
        return names

    @property
    def telegram_enabled(self) -> bool:
        return bool(
            self.telegram.token and self.telegram.token.get_secret_value() and self.telegram.webhook_secret_value
        )


def create_app(
    settings: Settings,
    server: ServerSettings,
    telegram: TelegramSettings,
    service: SearchService | None = None,
    listen_url: str | None = None,
    store: VectorStore | None = None,
    locales: LocaleSettings | None = None,
) -> ApiApp:
    """The app. Without a service, one is opened from `settings` at startup (model load; the store
    given, else the configured one). `visearch serve` opens the store itself before the server
    starts, so a data directory another process owns stops it with one line, not a traceback."""
    state = ServerState(
        settings,
        server,
        telegram,
        locales=locales or load_locale_settings(),
        service=service,
        owns_service=service is None,
        listen_url=listen_url,
        store=store,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await _start(state)
        try:
            yield
        finally:
            await _stop(state)

    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/media/{point_id}", media, methods=["GET"]),
    ]
    if state.telegram_enabled:
        routes.append(Route("/webhooks/telegram", telegram_webhook, methods=["POST"]))
    if server.viber_enabled:
        routes.append(Route("/webhooks/viber", viber_webhook, methods=["POST"]))
    if server.whatsapp_enabled:
        routes.append(Route("/webhooks/whatsapp", whatsapp_verify, methods=["GET"]))
        routes.append(Route("/webhooks/whatsapp", whatsapp_webhook, methods=["POST"]))
    app = ApiApp(
        routes=routes,
        lifespan=lifespan,
        title="visearch",
        openapi_url=f"{PREFIX}/openapi.json",
        docs_url=f"{PREFIX}/docs",
        redoc_url=None,
    )
    install_api(app, server, settings.max_image_bytes)
    app.state.visearch = state
    return app


async def _start(state: ServerState) -> None:
    if state.service is None:
        state.service = await _open_service(state)
        # before the port opens: /readyz says ready only once a query pays no model loading
        await state.service.warm_up()
    await _open_writer(state, state.service)
    state.runtime = await _open_runtime(state)
    state.conversation = conversation = _shared_conversation(state, state.service)
    _build_viber(state, conversation, state.runtime)
    _build_whatsapp(state, conversation, state.runtime)
    if state.telegram_enabled:
        _build_telegram(state, state.service, conversation)
    _start_feeds(state, state.service)
    log.info("visearch serve: webhooks enabled for %s", ", ".join(state.enabled()) or "no platform")


async def _open_writer(state: ServerState, service: SearchService) -> None:
    """The API's catalog writer; uploads an interrupted write left behind are dropped, and a CLI run on the
    same data directory is told where this server listens."""
    state.writer = CatalogWriter(service, state.settings.uploads_dir, state.server.api_fetch_policy)
    orphans = await state.writer.drop_orphan_uploads()
    if orphans:
        log.info("dropped %d uploaded file(s) no product refers to (left by an interrupted write)", orphans)
    announce = getattr(service.store, "announce", None)
    if announce is not None and state.listen_url:
        announce(f"visearch serve at {state.listen_url} (API: {state.listen_url}/api/v1)")


def _start_feeds(state: ServerState, service: SearchService) -> None:
    """The feed schedule, when VISEARCH_FEED_URL names feeds; its figures join /metrics."""
    sources = state.server.feed_sources
    if not sources:
        return
    sync = FeedSync(service.encoder, service.store, state.settings)
    state.feeds = FeedScheduler(sync, sources, state.server.feed_interval, on_change=service.catalog_changed)
    state.metrics.registry.register(FeedCollector(state.feeds))
    state.feeds.start()


async def _open_runtime(state: ServerState) -> Runtime:
    """The webhook work queue (started) and the delivery ids kept across restarts."""
    server = state.server
    queue = WorkQueue(server.queue_size, server.workers, on_depth=state.metrics.queue_depth.set)
    queue.start()
    seen = await PersistentSeenIds.open(state.settings.data_dir / DELIVERIES_FILE, server.dedupe_ttl)
    return Runtime(queue, seen, state.metrics)


def _shared_conversation(state: ServerState, service: SearchService) -> Conversation:
    """One conversation, one rate limit (VISEARCH_RATE_LIMIT / VISEARCH_RATE_WINDOW) for every channel."""
    server = state.server
    settings = ConversationSettings(
        rate_limit=server.rate_limit,
        rate_window=server.rate_window,
        album_wait=state.telegram.album_wait,
        shop_name=server.viber_sender_name,
        default_locale=state.locales.default_locale,
        locales_dir=state.locales.locales_dir,
    )
    return Conversation(service, settings, state.metrics, state.wordings)


def _build_viber(state: ServerState, conversation: Conversation, runtime: Runtime) -> None:
    """The Viber adapter, when VISEARCH_VIBER_TOKEN is set."""
    server, token = state.server, state.server.viber_credential
    if token is None:
        return
    from visearch.bots.viber.bot import ViberBot

    state.viber = ViberBot(
        token,
        server.viber_api_url,
        server.viber_sender_name,
        conversation,
        runtime,
        server.public_url,
        server.viber_max_media_bytes,
        server.cards_per_answer,
    )


def _build_whatsapp(state: ServerState, conversation: Conversation, runtime: Runtime) -> None:
    """The WhatsApp adapter, when its credentials are set."""
    server, whatsapp = state.server, state.server.whatsapp_credentials
    if whatsapp is None:
        return
    from visearch.bots.whatsapp.bot import WhatsAppBot

    state.whatsapp = WhatsAppBot(
        whatsapp.token,
        whatsapp.app_secret,
        whatsapp.verify_token,
        whatsapp.phone_number_id,
        server.whatsapp_api_url,
        server.whatsapp_api_version,
        conversation,
        runtime,
        server.public_url,
        server.whatsapp_max_media_bytes,
        server.cards_per_answer,
        state.locales.calling_code_locales,
    )


def _build_telegram(state: ServerState, service: SearchService, conversation: Conversation) -> None:
    """Telegram's webhook side: the bot, and an aiogram dispatcher with our router over the shared conversation."""
    from aiogram import Dispatcher

    from visearch.bots.telegram.aiogram_router import create_bot, create_router
    from visearch.bots.telegram.conversation import TelegramConversation, keeps_own_rate_limit

    if keeps_own_rate_limit(state.telegram):
        log.warning(
            "VISEARCH_TELEGRAM_RATE_LIMIT / _RATE_WINDOW still limit Telegram here, but are deprecated inside "
            "`visearch serve`: VISEARCH_RATE_LIMIT / VISEARCH_RATE_WINDOW limit every channel"
        )
    state.telegram_conversation = TelegramConversation(
        state.telegram, state.settings, service=service, conversation=conversation
    )
    state.telegram_bot = create_bot(state.telegram)
    state.telegram_dispatcher = dispatcher = Dispatcher()
    dispatcher.include_router(create_router(state.telegram_conversation))


async def _open_service(state: ServerState) -> SearchService:
    """The search service over the store the caller opened, or over the configured store."""
    return await SearchService.open(state.settings, state.store)


async def _stop(state: ServerState) -> None:
    if state.feeds is not None:  # first: a sync in progress stops before the store closes under it
        await state.feeds.stop()
    if state.runtime is not None:
        await state.runtime.queue.stop()
        if isinstance(state.runtime.seen, PersistentSeenIds):
            await state.runtime.seen.close()
    for platform in (state.viber, state.whatsapp):
        if platform is not None:
            await platform.close()
    if state.telegram_bot is not None:
        await state.telegram_bot.session.close()
    if state.service is not None and state.owns_service:
        await state.service.close()
    elif state.service is None and state.store is not None:  # the encoder never loaded: release the lock anyway
        await state.store.close()


def _state(request: Request) -> ServerState:
    state: ServerState = request.app.state.visearch  # set by create_app
    return state


# --- health, metrics, media ------------------------------------------------------------------------


async def healthz(request: Request) -> Response:
    """The process is alive (no dependency is checked)."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready when the store answers, the collection exists and was built by the loaded encoder."""
    state = _state(request)
    service = state.service
    if service is None:
        return JSONResponse({"status": "starting"}, status_code=503)
    try:
        info = await asyncio.wait_for(service.store.info(), timeout=3.0)
    except Exception as exc:  # any store failure means "not ready", with the reason
        return JSONResponse(
            {"status": "unready", "reason": f"store unreachable: {type(exc).__name__}"}, status_code=503
        )
    if info is None:
        return JSONResponse(
            {"status": "unready", "reason": f"collection {state.settings.collection!r} not found"}, status_code=503
        )
    if info.encoder_id != service.encoder.model_id:
        return JSONResponse({"status": "unready", "reason": "collection built by another encoder"}, status_code=503)
    return JSONResponse(
        {"status": "ready", "encoder": service.encoder.model_id, "points": info.points, "platforms": state.enabled()}
    )


async def metrics(request: Request) -> Response:
    """Prometheus text format."""
    state = _state(request)
    if state.runtime is not None:
        state.metrics.queue_depth.set(state.runtime.queue.depth)
    return Response(state.metrics.render(), media_type=state.metrics.content_type)


#: photos up to this size are read whole in one step; larger ones stream from the open file
SMALL_PHOTO_BYTES = 512 * 1024
MEDIA_CACHE = MappingProxyType({"Cache-Control": "public, max-age=86400"})


def open_photo(payload: Mapping[str, object], settings: Settings) -> tuple[BinaryIO, int] | None:
    """Open a point's local photo (found by `visearch.core.media.locate_photo`: nothing outside its folder)
    and its size; None when it has none or it is not there. Opened before any header is sent: a delete
    racing the request cannot cut the body short."""
    path = locate_photo(payload, settings.image_root, settings.uploads_dir).file
    if path is None:
        return None
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the caller or the stream
    except OSError:
        return None
    info = os.fstat(handle.fileno())
    if not stat.S_ISREG(info.st_mode):
        handle.close()
        return None
    return handle, info.st_size


def read_all(handle: BinaryIO, size: int) -> bytes:
    with handle:
        return handle.read(size)


def stream_of(handle: BinaryIO, size: int) -> Iterator[bytes]:
    """The open file's first `size` bytes in chunks (Starlette runs a plain iterator on a thread)."""
    with handle:
        left = size
        while left > 0:
            chunk = handle.read(min(left, 256 * 1024))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk


async def media(request: Request) -> Response:
    """A product photo (catalog folder or API upload), by point id; 404 in the API's error shape."""
    state = _state(request)
    if state.service is None:
        return Response(status_code=503)
    point_id = request.path_params["point_id"]
    try:
        uuid.UUID(point_id)
    except ValueError:
        return _no_photo()
    points = await state.service.store.retrieve([point_id])
    if not points:
        return _no_photo()
    payload = points[0].payload
    image = str(payload.get("image") or "")
    opened = await asyncio.to_thread(open_photo, payload, state.settings)  # None for a catalog URL too
    if opened is None:
        return _no_photo()
    handle, size = opened
    kind = mimetypes.guess_type(image)[0] or "application/octet-stream"
    if size <= SMALL_PHOTO_BYTES:
        return Response(await asyncio.to_thread(read_all, handle, size), media_type=kind, headers=dict(MEDIA_CACHE))
    return StreamingResponse(
        stream_of(handle, size), media_type=kind, headers={**MEDIA_CACHE, "Content-Length": str(size)}
    )


def _no_photo() -> Response:
    return JSONResponse({"error": "no such photo", "field": "point_id", "kind": "not_found"}, status_code=404)


# --- webhooks ----------------------------------------------------------------------------------------


async def viber_webhook(request: Request) -> Response:
    viber = _state(request).viber
    return _starting() if viber is None else await viber.webhook(request)


async def whatsapp_verify(request: Request) -> Response:
    whatsapp = _state(request).whatsapp
    return _starting() if whatsapp is None else await whatsapp.verify(request)


async def whatsapp_webhook(request: Request) -> Response:
    whatsapp = _state(request).whatsapp
    return _starting() if whatsapp is None else await whatsapp.webhook(request)


def _starting() -> Response:
    """A webhook that arrives before its platform's adapter is built (the server is starting): retry later."""
    return Response(status_code=503)


async def telegram_webhook(request: Request) -> Response:
    """Telegram's webhook: secret header first, then the update goes to the aiogram dispatcher."""
    from aiogram.types import Update
    from pydantic import ValidationError

    state = _state(request)
    counter = state.metrics.requests
    secret = state.telegram.webhook_secret_value or ""  # the route exists only when it is set
    given = request.headers.get("x-telegram-bot-api-secret-token", "")
    if not given or not secret or not hmac.compare_digest(given, secret):
        counter.labels("telegram", "bad_signature").inc()
        return Response("invalid secret token", status_code=401)
    bot, dispatcher, runtime = state.telegram_bot, state.telegram_dispatcher, state.runtime
    if bot is None or dispatcher is None or runtime is None:
        return _starting()
    try:
        data = parse_json(await request.body())  # the body limit keeps it small: parsed on the loop
        update = Update.model_validate(data, context={"bot": bot})
    except (ValueError, ValidationError):  # JsonBodyError is a ValueError
        counter.labels("telegram", "malformed").inc()
        return Response("not a Telegram update", status_code=400)
    key = ("telegram", update.update_id)
    if not runtime.seen.first_time(key):
        counter.labels("telegram", "duplicate").inc()
        return JSONResponse({})

    async def job() -> None:
        await dispatcher.feed_update(bot, update)
        runtime.seen.finished(key)  # kept across a restart only once answered

    if runtime.queue.try_submit(f"telegram:{update.update_id}", job):
        counter.labels("telegram", "queued").inc()
    else:
        counter.labels("telegram", "busy").inc()
        chat = update.message.chat.id if update.message else None
        if chat is not None:
            language = update.message.from_user.language_code if update.message and update.message.from_user else None
            runtime.spawn(_telegram_busy(state, bot, chat, language))
    return JSONResponse({})


async def _telegram_busy(state: ServerState, bot: Bot, chat_id: int, language: str | None) -> None:
    """The queue is full: the BUSY notice, rendered and sent like every Telegram answer (best effort)."""
    from visearch.bots.telegram import presentation as ui
    from visearch.bots.telegram.aiogram_router import AiogramSender
    from visearch.bots.telegram.conversation import deliver

    telegram = state.telegram_conversation
    if telegram is None:
        return
    busy = telegram.conversation.refused(telegram.channel, NoticeReason.BUSY, language)
    try:
        await deliver(
            ui.render(busy, telegram.conversation.wording(busy.locale)), AiogramSender(bot, chat_id), telegram.photo_ids
        )
    except Exception as exc:  # the busy notice is best effort
        log.warning("telegram busy reply failed: %s", type(exc).__name__)
