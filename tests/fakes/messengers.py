"""Fake Viber REST bot API and WhatsApp Cloud (Graph) API servers on 127.0.0.1.

They speak the platforms' HTTP protocols as documented, record every call, serve media, check
the limits a bot can break (Viber: auth token, rich media grid, 30 KB; WhatsApp: bearer token,
caption/body 1024, button titles 20, 3 reply buttons), and can fail on demand.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiohttp import web

VIBER_TOKEN = "viber-test-token-4f1c"
WHATSAPP_TOKEN = "EAAG-test-whatsapp-token"
WHATSAPP_APP_SECRET = "app-secret-5b2e"
WHATSAPP_VERIFY_TOKEN = "verify-me-77"
PHONE_NUMBER_ID = "1098765432"
GRAPH_VERSION = "v21.0"


@dataclass
class Sent:
    path: str
    body: dict[str, Any]
    at: float
    status: int = 200


@dataclass
class _FakeServer:
    sent: list[Sent] = field(default_factory=list)
    media: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    failures: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    media_headers: list[dict[str, str]] = field(default_factory=list)  # headers of each media download

    def __post_init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._ids = itertools.count(1)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application(client_max_size=30 * 1024 * 1024)
        self.routes(app)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def fail_next(self, status: int, body: dict[str, Any]) -> None:
        """The next send answers with this HTTP status and body."""
        self.failures.append((status, body))

    def to(self, user: str) -> list[Sent]:
        raise NotImplementedError

    async def wait_for_messages(self, user: str, count: int = 1, timeout: float = 30.0) -> list[Sent]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.to(user)
            if len(found) >= count:
                return found
            await asyncio.sleep(0.02)
        raise AssertionError(
            f"timed out waiting for {count} message(s) to {user}; sent: {[(s.path, s.status) for s in self.sent][-20:]}"
        )

    async def settle(self, quiet: float = 0.4, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.sent or time.monotonic() - self.sent[-1].at >= quiet:
                return
            await asyncio.sleep(0.05)


class FakeViber(_FakeServer):
    """`{url}/pa/send_message`, `{url}/pa/set_webhook`, media under `{url}/media/`."""

    token = VIBER_TOKEN

    @property
    def api_url(self) -> str:
        return f"{self.url}/pa"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/pa/send_message", self._send_message)
        app.router.add_post("/pa/set_webhook", self._set_webhook)
        app.router.add_get("/media/{name}", self._media)

    def add_media(self, data: bytes, content_type: str = "image/jpeg") -> str:
        name = f"m{next(self._ids)}.jpg"
        self.media[name] = (data, content_type)
        return f"{self.url}/media/{name}"

    def to(self, user: str) -> list[Sent]:
        return [s for s in self.sent if s.body.get("receiver") == user and s.status == 200]

    async def _media(self, request: web.Request) -> web.Response:
        self.media_headers.append(dict(request.headers))
        data, content_type = self.media.get(request.match_info["name"], (b"", ""))
        if not content_type:
            return web.Response(status=404)
        return web.Response(body=data, content_type=content_type)

    async def _send_message(self, request: web.Request) -> web.Response:
        body = await request.json()
        call = Sent("send_message", body, time.monotonic())
        self.sent.append(call)
        if request.headers.get("X-Viber-Auth-Token") != self.token:
            return web.json_response({"status": 2, "status_message": "invalidAuthToken"})
        if self.failures:
            status, reply = self.failures.pop(0)
            call.status = status if status != 200 else 599
            return web.json_response(reply, status=status)
        problem = self._check(body)
        if problem:
            call.status = 400
            return web.json_response({"status": 3, "status_message": problem})
        return web.json_response({"status": 0, "status_message": "ok", "message_token": next(self._ids)})

    @staticmethod
    def _check(body: dict[str, Any]) -> str | None:
        if not body.get("receiver") or body.get("type") not in {"text", "picture", "rich_media", "url", "file"}:
            return "missing receiver or type"
        if len(json.dumps(body, ensure_ascii=False).encode()) > 30_000:
            return "message too long (30 KB)"
        if body["type"] == "text" and not 0 < len(body.get("text", "")) <= 7000:
            return "text must be 1-7000 characters"
        if body["type"] == "picture" and (len(body.get("text", "")) > 512 or not body.get("media")):
            return "picture needs media and a caption of at most 512 characters"
        if body["type"] == "rich_media":
            rich = body.get("rich_media") or {}
            cols, rows = rich.get("ButtonsGroupColumns", 6), rich.get("ButtonsGroupRows", 7)
            buttons = rich.get("Buttons") or []
            if int(body.get("min_api_version", 1)) < 2:
                return "rich_media requires min_api_version 2"
            if not (1 <= cols <= 6 and 1 <= rows <= 7) or not buttons:
                return "bad rich media grid"
            cells = sum(b.get("Columns", 6) * b.get("Rows", 1) for b in buttons)
            if cells > 6 * cols * rows or cells % (cols * rows):
                return "buttons do not fill whole carousel blocks (at most 6)"
            for b in buttons:
                if b.get("ActionType") in ("reply", "open-url") and not b.get("ActionBody"):
                    return "ActionBody missing"
        return None

    async def _set_webhook(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.sent.append(Sent("set_webhook", body, time.monotonic()))
        if request.headers.get("X-Viber-Auth-Token") != self.token:
            return web.json_response({"status": 2, "status_message": "invalidAuthToken"})
        check = json.dumps({"event": "webhook", "timestamp": int(time.time() * 1000), "message_token": 1}).encode()
        async with httpx.AsyncClient() as client:  # Viber checks the URL with a signed 'webhook' event
            answer = await client.post(
                body["url"], content=check, headers={"X-Viber-Content-Signature": viber_signature(check)}
            )
        if answer.status_code != 200:
            return web.json_response({"status": 1, "status_message": "invalidUrl"})
        return web.json_response({"status": 0, "status_message": "ok", "event_types": body.get("event_types", [])})


def viber_signature(body: bytes, token: str = VIBER_TOKEN) -> str:
    return hmac.new(token.encode(), body, hashlib.sha256).hexdigest()


def viber_message(user: str, message: dict[str, Any], token: int, language: str = "en") -> bytes:
    """A `message` callback as Viber sends it (`language`: the sender's phone language)."""
    return json.dumps(
        {
            "event": "message",
            "timestamp": int(time.time() * 1000),
            "message_token": token,
            "sender": {"id": user, "name": "Customer", "language": language, "country": "SE", "api_version": 10},
            "message": message,
            "silent": False,
        }
    ).encode()


class FakeWhatsApp(_FakeServer):
    """Graph API: `/{version}/{media-id}`, media downloads, `/{version}/{phone-number-id}/messages`."""

    token = WHATSAPP_TOKEN
    media_delay = 0.0  # seconds the media lookup takes (to keep a worker busy in tests)

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/{version}/{media_id}", self._media_info)
        app.router.add_get("/download/{media_id}", self._download)
        app.router.add_post("/{version}/{phone}/messages", self._messages)

    def add_media(self, data: bytes, mime_type: str = "image/jpeg") -> str:
        media_id = f"{next(self._ids) + 1_000_000}"
        self.media[media_id] = (data, mime_type)
        return media_id

    def to(self, user: str) -> list[Sent]:
        return [s for s in self.sent if s.body.get("to") == user and s.status == 200]

    def _authorised(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.token}"

    @staticmethod
    def _error(status: int, message: str, code: int) -> web.Response:
        return web.json_response(
            {"error": {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AbCdEf"}},
            status=status,
        )

    async def _media_info(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return self._error(401, "Invalid OAuth access token", 190)
        media_id = request.match_info["media_id"]
        await asyncio.sleep(self.media_delay)
        if media_id not in self.media:
            return self._error(404, "Unsupported get request", 100)
        data, mime = self.media[media_id]
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "url": f"{self.url}/download/{media_id}",
                "mime_type": mime,
                "sha256": hashlib.sha256(data).hexdigest(),
                "file_size": len(data),
                "id": media_id,
            }
        )

    async def _download(self, request: web.Request) -> web.Response:
        self.media_headers.append(dict(request.headers))
        if not self._authorised(request):
            return web.Response(status=401)
        data, mime = self.media[request.match_info["media_id"]]
        return web.Response(body=data, content_type=mime)

    async def _messages(self, request: web.Request) -> web.Response:
        body = await request.json()
        call = Sent(request.path, body, time.monotonic())
        self.sent.append(call)
        if not self._authorised(request):
            call.status = 401
            return self._error(401, "Invalid OAuth access token", 190)
        if self.failures:
            status, reply = self.failures.pop(0)
            call.status = status
            return web.json_response(reply, status=status)
        problem = self._check(body)
        if problem:
            call.status = 400
            return self._error(400, problem, 131009)
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                "messages": [{"id": f"wamid.{next(self._ids)}"}],
            }
        )

    @staticmethod
    def _check(body: dict[str, Any]) -> str | None:
        if body.get("messaging_product") != "whatsapp" or not body.get("to"):
            return "(#100) messaging_product and to are required"
        kind = body.get("type")
        if kind == "text":
            return None if 0 < len(body["text"].get("body", "")) <= 4096 else "text body must be 1-4096 characters"
        if kind == "image":
            image = body.get("image") or {}
            return (
                None
                if image.get("link") and len(image.get("caption", "")) <= 1024
                else "image needs a link, caption <= 1024"
            )
        if kind == "interactive":
            inter = body.get("interactive") or {}
            if not 0 < len((inter.get("body") or {}).get("text", "")) <= 1024:
                return "interactive body text must be 1-1024 characters"
            if inter.get("type") == "cta_url":
                params = (inter.get("action") or {}).get("parameters") or {}
                if not 0 < len(params.get("display_text", "")) <= 20 or not str(params.get("url", "")).startswith(
                    "http"
                ):
                    return "cta_url needs display_text (<= 20) and an http(s) url"
                return None
            if inter.get("type") == "button":
                buttons = (inter.get("action") or {}).get("buttons") or []
                if not 1 <= len(buttons) <= 3:
                    return "1-3 reply buttons"
                for b in buttons:
                    reply = b.get("reply") or {}
                    if not 0 < len(reply.get("title", "")) <= 20 or not 0 < len(reply.get("id", "")) <= 256:
                        return "button title must be 1-20 characters, id 1-256"
                return None
            return f"unsupported interactive type {inter.get('type')}"
        return f"unsupported message type {kind}"


def whatsapp_signature(body: bytes, secret: str = WHATSAPP_APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def whatsapp_payload(user: str, message: dict[str, Any]) -> bytes:
    """A `messages` webhook as the Cloud API sends it."""
    return json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "WABA_ID",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {"display_phone_number": "15550001111", "phone_number_id": PHONE_NUMBER_ID},
                                "contacts": [{"profile": {"name": "Customer"}, "wa_id": user}],
                                "messages": [{"from": user, "timestamp": str(int(time.time())), **message}],
                            },
                        }
                    ],
                }
            ],
        }
    ).encode()
