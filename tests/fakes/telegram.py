"""A fake Telegram Bot API server on 127.0.0.1 that speaks the real HTTP protocol.

Both real client libraries (aiogram's aiohttp session, python-telegram-bot's httpx request) talk
to it unchanged, only the API root differs: methods at `{root}/bot{token}/{method}`, files at
`{root}/file/bot{token}/{path}`. It keeps what a test needs to check:

- every call, with its decoded parameters and uploaded files (`calls`, `sent_to(chat)`);
- updates for long polling (`getUpdates` with offset and timeout, 409 while a webhook is set);
- files for `getFile` + download (20 MB limit like Telegram), and the photos the bot uploads;
- Telegram's validation where bots get it wrong: HTML entities parsed like Telegram's parser
  (an unescaped `<` or an unclosed tag is a 400 "can't parse entities"), caption/text length
  in UTF-16 units, callback data over 64 bytes, bad button URLs, unknown file ids;
- scripted failures (`fail_next`), e.g. HTTP 429 with `parameters.retry_after`.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from html import unescape
from typing import Any

from aiohttp import web
from aiohttp.web_request import FileField

TOKEN = "123456:TEST-visearch-fake-token"
JSON_FIELDS = {
    "reply_markup",
    "media",
    "allowed_updates",
    "commands",
    "entities",
    "caption_entities",
    "link_preview_options",
    "reply_parameters",
    "scope",
}
ALLOWED_TAGS = {
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "a",
    "code",
    "pre",
    "tg-spoiler",
    "span",
    "blockquote",
    "tg-emoji",
}
DOWNLOAD_LIMIT = 20 * 1024 * 1024


class ApiError(Exception):
    """A Bot API error answer: {"ok": false, "error_code": ..., "description": ...}."""

    def __init__(self, description: str, code: int = 400, parameters: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.description, self.code, self.parameters = description, code, parameters


@dataclass
class Call:
    """One request the bot made."""

    method: str
    params: dict[str, Any]
    uploads: dict[str, bytes]
    at: float
    status: int = 200

    @property
    def chat_id(self) -> int | None:
        value = self.params.get("chat_id")
        return int(value) if value not in (None, "") else None


@dataclass
class StoredFile:
    file_id: str
    data: bytes
    path: str
    size: int
    width: int = 0
    height: int = 0


@dataclass
class Failure:
    status: int
    description: str
    parameters: dict[str, Any] | None = None


@dataclass
class FakeTelegram:
    """The server. Start with `await fake.start()`; `fake.api_url` is the root to give the bot."""

    token: str = TOKEN
    calls: list[Call] = field(default_factory=list)
    files: dict[str, StoredFile] = field(default_factory=dict)
    messages: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    webhook: dict[str, Any] = field(default_factory=lambda: {"url": "", "secret_token": None})
    #: each chat's user's `language_code` (what their Telegram app is set to); "en" when not set here
    languages: dict[int, str] = field(default_factory=dict)
    bot_user: dict[str, Any] = field(
        default_factory=lambda: {
            "id": 4242,
            "is_bot": True,
            "first_name": "visearch test",
            "username": "visearch_test_bot",
        }
    )

    def __post_init__(self) -> None:
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(100)
        self._file_ids = itertools.count(1)
        self._callback_ids = itertools.count(1)
        self._open_callbacks: set[str] = set()
        self._failures: dict[str, list[Failure]] = {}
        self._wakeup = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- server lifecycle ------------------------------------------------------------------------

    async def start(self) -> str:
        app = web.Application(client_max_size=60 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self.api_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- scripting -------------------------------------------------------------------------------

    def add_file(self, data: bytes, path: str = "photos/file.jpg", size: int | None = None) -> StoredFile:
        """Store a file the bot can fetch with getFile; `size` can claim more than `data` holds."""
        number = next(self._file_ids)
        width = height = 0
        try:
            from PIL import Image

            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
        except Exception:
            pass
        stored = StoredFile(f"FILE{number:06d}-{len(data)}", data, f"{number}-{path}", size or len(data), width, height)
        self.files[stored.file_id] = stored
        return stored

    def fail_next(self, method: str, status: int = 429, retry_after: int = 1, description: str | None = None) -> None:
        """The next call of `method` gets this error (429 carries `parameters.retry_after`)."""
        params = {"retry_after": retry_after} if status == 429 else None
        text = description or (f"Too Many Requests: retry after {retry_after}" if status == 429 else "Bad Request")
        self._failures.setdefault(method.lower(), []).append(Failure(status, text, params))

    def push_update(self, **update: Any) -> int:
        """Queue an update for getUpdates; returns its update_id."""
        update_id = next(self._update_ids)
        self._updates.append({"update_id": update_id, **update})
        self._wakeup.set()
        return update_id

    def user_message(self, chat_id: int, **content: Any) -> dict[str, Any]:
        """A message from a private chat's user (the user id equals the chat id)."""
        return {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private", "first_name": "Customer"},
            "from": {
                "id": chat_id,
                "is_bot": False,
                "first_name": "Customer",
                "language_code": self.languages.get(chat_id, "en"),
            },
            **content,
        }

    def send_photo_from_user(
        self,
        chat_id: int,
        data: bytes,
        caption: str | None = None,
        media_group_id: str | None = None,
        size: int | None = None,
    ) -> int:
        """A compressed photo: Telegram sends several sizes; the bot should take the largest."""
        full = self.add_file(data, "photos/photo.jpg", size)
        thumb = self.add_file(data[: max(1, len(data) // 8)], "photos/thumb.jpg")
        sizes = [
            {
                "file_id": thumb.file_id,
                "file_unique_id": "u" + thumb.file_id,
                "width": 90,
                "height": 90,
                "file_size": thumb.size,
            },
            {
                "file_id": full.file_id,
                "file_unique_id": "u" + full.file_id,
                "width": max(full.width, 91),
                "height": max(full.height, 91),
                "file_size": full.size,
            },
        ]
        content: dict[str, Any] = {"photo": sizes}
        if caption:
            content["caption"] = caption
        if media_group_id:
            content["media_group_id"] = media_group_id
        return self.push_update(message=self.user_message(chat_id, **content))

    def send_document_from_user(
        self, chat_id: int, data: bytes, mime_type: str, file_name: str, size: int | None = None
    ) -> int:
        stored = self.add_file(data, f"documents/{file_name}", size)
        document = {
            "file_id": stored.file_id,
            "file_unique_id": "u" + stored.file_id,
            "file_name": file_name,
            "mime_type": mime_type,
            "file_size": stored.size,
        }
        return self.push_update(message=self.user_message(chat_id, document=document))

    def send_text_from_user(self, chat_id: int, text: str) -> int:
        entities = (
            [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}] if text.startswith("/") else None
        )
        content: dict[str, Any] = {"text": text}
        if entities:
            content["entities"] = entities
        return self.push_update(message=self.user_message(chat_id, **content))

    def send_content_from_user(self, chat_id: int, **content: Any) -> int:
        """Any other content: sticker=..., voice=..."""
        return self.push_update(message=self.user_message(chat_id, **content))

    def press_button(self, chat_id: int, message: dict[str, Any], data: str) -> str:
        """The user taps an inline button of a message the bot sent."""
        query_id = f"cbq{next(self._callback_ids)}"
        self._open_callbacks.add(query_id)
        self.push_update(
            callback_query={
                "id": query_id,
                "chat_instance": f"ci{chat_id}",
                "data": data,
                "message": message,
                "from": {
                    "id": chat_id,
                    "is_bot": False,
                    "first_name": "Customer",
                    "language_code": self.languages.get(chat_id, "en"),
                },
            }
        )
        return query_id

    # --- inspection ------------------------------------------------------------------------------

    def sent_to(self, chat_id: int, *methods: str) -> list[Call]:
        """Successful calls addressed to a chat (all methods, or the ones named)."""
        wanted = {m.lower() for m in methods}
        return [
            c
            for c in self.calls
            if c.chat_id == chat_id and c.status == 200 and (not wanted or c.method.lower() in wanted)
        ]

    def replies_to(self, chat_id: int) -> list[Call]:
        """Messages sent to a chat (sendMessage, sendPhoto, sendMediaGroup)."""
        return self.sent_to(chat_id, "sendMessage", "sendPhoto", "sendMediaGroup")

    def calls_of(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method.lower() == method.lower()]

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
        """Poll until `predicate()` is truthy; fail with the calls seen so far."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            await asyncio.sleep(0.02)
        seen = [(c.method, c.status, c.chat_id) for c in self.calls if c.method != "getUpdates"]
        raise AssertionError(f"timed out waiting for {what}; calls: {seen[-30:]}")

    async def settle(self, quiet: float = 0.4, timeout: float = 30.0) -> None:
        """Wait until the bot has made no call but getUpdates for `quiet` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            active = [c.at for c in self.calls if c.method.lower() != "getupdates"]
            if not active or time.monotonic() - max(active) >= quiet:
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the bot kept calling the API")

    # --- HTTP ------------------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        method = request.match_info["method"]
        try:
            params, uploads = await self._read_params(request)
        except ApiError as exc:
            return self._error(exc)
        call = Call(method, params, uploads, time.monotonic())
        self.calls.append(call)
        queued = self._failures.get(method.lower())
        if queued:
            failure = queued.pop(0)
            call.status = failure.status
            return self._error(ApiError(failure.description, failure.status, failure.parameters))
        handler = getattr(self, f"_m_{method.lower()}", None)
        if handler is None:
            call.status = 404
            return self._error(ApiError("Not Found", 404))
        try:
            result = await handler(params, uploads)
        except ApiError as exc:
            call.status = exc.code
            return self._error(exc)
        return web.json_response({"ok": True, "result": result})

    @staticmethod
    def _error(exc: ApiError) -> web.Response:
        body: dict[str, Any] = {"ok": False, "error_code": exc.code, "description": exc.description}
        if exc.parameters:
            body["parameters"] = exc.parameters
        return web.json_response(body, status=exc.code)

    async def _read_params(self, request: web.Request) -> tuple[dict[str, Any], dict[str, bytes]]:
        params: dict[str, Any] = dict(request.query)
        uploads: dict[str, bytes] = {}
        if request.method == "POST":
            if request.content_type == "application/json":
                params.update(await request.json())
            elif request.can_read_body:
                form = await request.post()
                for key, value in form.items():
                    if isinstance(value, FileField):
                        uploads[key] = value.file.read()
                    else:
                        params[key] = value
        for key in JSON_FIELDS & params.keys():
            if isinstance(params[key], str):
                try:
                    params[key] = json.loads(params[key])
                except ValueError:
                    raise ApiError(f"Bad Request: can't parse {key} JSON object") from None
        return params, uploads

    async def _download(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return web.Response(status=401)
        path = request.match_info["path"]
        self.calls.append(Call("file", {"path": path}, {}, time.monotonic()))
        for stored in self.files.values():
            if stored.path == path:
                return web.Response(body=stored.data, content_type="application/octet-stream")
        return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)

    # --- validation like Telegram's ----------------------------------------------------------------

    @staticmethod
    def visible_text(text: str, parse_mode: str | None) -> str:
        """The text after entity parsing; raises 400 "can't parse entities" like Telegram's HTML parser."""
        if (parse_mode or "").upper() != "HTML":
            return text
        out: list[str] = []
        stack: list[str] = []
        pos = 0
        while pos < len(text):
            ch = text[pos]
            if ch == "<":
                end = text.find(">", pos)
                offset = len(text[:pos].encode())
                if end == -1:
                    raise ApiError(f"Bad Request: can't parse entities: Unclosed start tag at byte offset {offset}")
                tag = text[pos + 1 : end].strip()
                if tag.startswith("/"):
                    name = tag[1:].strip().lower()
                    if not stack:
                        raise ApiError(f"Bad Request: can't parse entities: Unexpected end tag at byte offset {offset}")
                    if stack[-1] != name:
                        raise ApiError(
                            f"Bad Request: can't parse entities: Unmatched end tag at byte offset {offset}, "
                            f'expected "</{stack[-1]}>", found "</{name}>"'
                        )
                    stack.pop()
                else:
                    match = re.match(r"[A-Za-z][A-Za-z0-9-]*", tag)
                    name = match.group(0).lower() if match else ""
                    if name not in ALLOWED_TAGS:
                        raise ApiError(
                            f'Bad Request: can\'t parse entities: Unsupported start tag "{name}" '
                            f"at byte offset {offset}"
                        )
                    stack.append(name)
                pos = end + 1
                continue
            if ch == "&":  # like Telegram: only these entities are decoded, anything else stays literal
                match = re.match(r"&(lt|gt|amp|quot|#\d{1,7}|#x[0-9a-fA-F]{1,6});", text[pos:])
                if match:
                    out.append(unescape(match.group(0)))
                    pos += len(match.group(0))
                    continue
            out.append(ch)
            pos += 1
        if stack:
            raise ApiError(
                f"Bad Request: can't parse entities: Can't find end tag corresponding to start tag \"{stack[-1]}\""
            )
        return "".join(out)

    @staticmethod
    def utf16_len(text: str) -> int:
        return len(text.encode("utf-16-le")) // 2

    def _check_markup(self, markup: Any) -> None:
        if markup is None:
            return
        rows = markup.get("inline_keyboard") if isinstance(markup, dict) else None
        if rows is None:
            return
        for row in rows:
            for button in row:
                if not button.get("text"):
                    raise ApiError("Bad Request: text buttons are unallowed in the inline keyboard")
                data, url = button.get("callback_data"), button.get("url")
                if (data is None) == (url is None):
                    raise ApiError("Bad Request: can't parse inline keyboard button: exactly one field must be used")
                if data is not None and not 1 <= len(str(data).encode()) <= 64:
                    raise ApiError("Bad Request: BUTTON_DATA_INVALID")
                if url is not None and not re.match(r"^(https?|tg)://[^\s/$.?#][^\s]*$", str(url)):
                    raise ApiError(f"Bad Request: inline keyboard button URL '{url}' is invalid: Wrong HTTP URL")

    def _resolve_photo(self, value: Any, uploads: dict[str, bytes], key: str) -> StoredFile:
        if key in uploads:
            data = uploads[key]
        elif isinstance(value, str) and value.startswith("attach://"):
            name = value[len("attach://") :]
            if name not in uploads:
                raise ApiError("Bad Request: wrong file identifier/HTTP URL specified")
            data = uploads[name]
        elif isinstance(value, str) and value in self.files:
            return self.files[value]
        elif isinstance(value, str) and re.match(r"^https?://\S+$", value):
            stored = self.add_file(b"", "photos/from-url.jpg")
            stored.width = stored.height = 320
            return stored
        else:
            raise ApiError("Bad Request: wrong file identifier/HTTP URL specified")
        if not data:
            raise ApiError("Bad Request: file must be non-empty")
        stored = self.add_file(data, "photos/uploaded.jpg")
        if not stored.width:
            raise ApiError("Bad Request: IMAGE_PROCESS_FAILED")
        return stored

    def _new_message(self, chat_id: Any, **content: Any) -> dict[str, Any]:
        message = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "from": self.bot_user,
            "chat": {"id": int(chat_id), "type": "private", "first_name": "Customer"},
            **content,
        }
        self.messages[(int(chat_id), message["message_id"])] = message
        return message

    def _caption(self, params: dict[str, Any]) -> dict[str, Any]:
        caption = params.get("caption")
        if not caption:
            return {}
        visible = self.visible_text(caption, params.get("parse_mode"))
        if self.utf16_len(visible) > 1024:
            raise ApiError("Bad Request: message caption is too long")
        return {"caption": visible}

    # --- methods ---------------------------------------------------------------------------------

    async def _m_getme(self, params: dict[str, Any], uploads: dict[str, bytes]) -> Any:
        return self.bot_user

    async def _m_getupdates(self, params: dict[str, Any], uploads: dict[str, bytes]) -> Any:
        if self.webhook["url"]:
            raise ApiError(
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
                409,
            )
        offset = int(params.get("offset") or 0)
        if offset:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        limit = int(params.get("limit") or 100)
        deadline = time.monotonic() + float(params.get("timeout") or 0)
        while not self._updates and time.monotonic() < deadline:
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout=max(deadline - time.monotonic(), 0.001))
            except TimeoutError:
                break
        return self._updates[:limit]

    async def _m_getfile(self, params: dict[str, Any], uploads: dict[str, bytes]) -> Any:
        stored = self.files.get(str(params.get("file_id")))
        if stored is None:
            raise ApiError("Bad Request: invalid file_id")
        if stored.size > DOWNLOAD_LIMIT:
            raise ApiError("Bad Request: file is too big")
        return {
            "file_id": stored.file_id,
            "file_unique_id": "u" + stored.file_id,
            "file_size": stored.size,
            "file_path": stored.path,
        }

    async def _m_sendmessage(self, params: dict[str, Any], uploads: dict[str, bytes]) -> Any:
        text = self.visible_text(str(params.get("text") or ""), params.get("parse_mode"))
        if not text.strip():
            raise ApiError("Bad Request: message text is empty")
        if self.utf16_len(text) > 4096:
            raise ApiError("Bad Request: message is too long")
        self._check_markup(params.get("reply_markup"))
        extra = {"reply_markup": params["reply_markup"]} if params.get("reply_markup") else {}
        return self._new_message(params["chat_id"], text=text, **extra)

    async def _m_sendphoto(self, params: dict[str, Any], uploads: dict[str, bytes]) -> Any:
        caption = self._caption(params)
        self._check_markup(params.get("reply_markup"))
        stored = self._resolve_photo(params.get("photo"), uploads, "photo")
        sizes = [
            {
                "file_id": stored.file_id,
                "file_unique_id": "u" + stored.file_id,
                "width": stored.width,
                "height": stored.height,
                "file_size": stored.size,
            }
        ]
        extra = {"reply_markup": params["reply_markup"]} if params.get("reply_markup") else {}
        return self._new_message(params["chat_id"], photo=sizes, **caption, **extra)

    async def _m_sendmediagroup(self, params: dict[str, Any], uploads: dict[str, bytes]) -> Any:
        media = params.get("media") or []
        if not 2 <= len(media) <= 10:
            raise ApiError("Bad Request: wrong number of media: must be 2-10")
        group = f"mg{next(self._message_ids)}"
        sent = []
        for item in media:
            stored = self._resolve_photo(item.get("media"), uploads, "")
            sizes = [
                {
                    "file_id": stored.file_id,
                    "file_unique_id": "u" + stored.file_id,
                    "width": stored.width,
                    "height": stored.height,
                    "file_size": stored.size,
                }
            ]
            sent.append(self._new_message(params["chat_id"], photo=sizes, media_group_id=group, **self._caption(item)))
        return sent

    def _edited(self, params: dict[str, Any]) -> dict[str, Any]:
        key = (int(params.get("chat_id") or 0), int(params.get("message_id") or 0))
        if key not in self.messages:
            raise ApiError("Bad Request: message to edit not found")
        return self.messages[key]

    async def _m_editmessagereplymarkup(self, params: dict[str, Any], uploads: dict[str, bytes]) -> Any:
        message = self._edited(params)
        markup = params.get("reply_markup")
        self._check_markup(markup)
        if markup == message.get("reply_markup"):
            raise ApiError(
                "Bad Request: message is not modified: specified new message content and reply markup "
                "are exactly the same as a current content and reply markup of the message"
            )
        message["reply_markup"] = markup
        return message

    async def _m_editmessagetext(self, params: dict[str, Any], uploads: dict[str, bytes]) -> Any:
        message = self._edited(params)
        message["text"] = self.visible_text(str(params.get("text") or ""), params.get("parse_mode"))
        return message

    async def _m_editmessagecaption(self, params: dict[str, Any], uploads: dict[str, bytes]) -> Any:
        message = self._edited(params)
        message.update(self._caption(params))
        return message

    async def _m_editmessagemedia(self, params: dict[str, Any], uploads: dict[str, bytes]) -> Any:
        return self._edited(params)

    async def _m_answercallbackquery(self, params: dict[str, Any], uploads: dict[str, bytes]) -> Any:
        query_id = str(params.get("callback_query_id"))
        if query_id not in self._open_callbacks:
            raise ApiError("Bad Request: query is too old and response timeout expired or query ID is invalid")
        if len(str(params.get("text") or "")) > 200:
            raise ApiError("Bad Request: MESSAGE_TOO_LONG")
        self._open_callbacks.discard(query_id)
        return True

    async def _m_sendchataction(self, params: dict[str, Any], uploads: dict[str, bytes]) -> Any:
        return True

    async def _m_setwebhook(self, params: dict[str, Any], uploads: dict[str, bytes]) -> Any:
        secret = params.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
            raise ApiError("Bad Request: secret token contains unallowed characters")
        self.webhook = {"url": str(params.get("url") or ""), "secret_token": secret}
        return True

    async def _m_deletewebhook(self, params: dict[str, Any], uploads: dict[str, bytes]) -> Any:
        self.webhook = {"url": "", "secret_token": None}
        if str(params.get("drop_pending_updates")).lower() == "true":
            self._updates.clear()
        return True

    async def _m_getwebhookinfo(self, params: dict[str, Any], uploads: dict[str, bytes]) -> Any:
        return {"url": self.webhook["url"], "has_custom_certificate": False, "pending_update_count": len(self._updates)}

    async def _m_setmycommands(self, params: dict[str, Any], uploads: dict[str, bytes]) -> Any:
        commands = params.get("commands")
        if isinstance(commands, str):
            commands = json.loads(commands)
        if not isinstance(commands, list) or not commands or len(commands) > 100:
            raise ApiError("Bad Request: commands must be a non-empty array of at most 100 BotCommand")
        for command in commands:
            name, description = command.get("command", ""), command.get("description", "")
            if not re.fullmatch(r"[a-z0-9_]{1,32}", name) or not 1 <= len(description) <= 256:
                raise ApiError("Bad Request: BOT_COMMAND_INVALID")
        language = params.get("language_code") or ""
        if language and not re.fullmatch(r"[a-z]{2}", language):
            raise ApiError("Bad Request: language_code must be a two-letter ISO 639-1 code")
        return True

    async def _m_deletemycommands(self, params: dict[str, Any], uploads: dict[str, bytes]) -> Any:
        return True

    async def _m_close(self, params: dict[str, Any], uploads: dict[str, bytes]) -> Any:
        return True
