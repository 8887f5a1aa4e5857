"""Puts /api/v1, its OpenAPI schema, its error answers, CORS, the body limits and the web page on
the server's app (one process, one port, shared with the webhooks). The error answers and the
body limits cover every route of the app, webhooks included."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

from visearch.bots.api.limits import OTHER_MAX_BODY_BYTES, BodyLimit, Rule
from visearch.bots.api.models import ErrorKind, ErrorOut, ProductIn, SearchIn
from visearch.bots.api.page import page_locale, render_page
from visearch.bots.api.routes import ApiError, router, state_of, validation_message
from visearch.bots.api.settings import ApiSettings
from visearch.core.errors import (
    CollectionNotFoundError,
    EncoderBusyError,
    EncoderMismatchError,
    ImageError,
    StoreError,
    VisearchError,
)
from visearch.core.search import CursorExpiredError, PointNotFoundError

log = logging.getLogger("visearch.api")

PREFIX = "/api/v1"
WEB = Path(__file__).resolve().parents[1] / "web"


def error(
    status: int, message: str, kind: ErrorKind, field: str | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        ErrorOut(error=message, field=field, kind=kind).model_dump(), status_code=status, headers=headers
    )


async def on_api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error(exc.status, exc.message, exc.kind, exc.field, exc.headers)


async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    message, field = validation_message(exc)
    return error(422, message, "validation", field)


#: a JSON search is words, filters and a cursor: a few KB at most
SEARCH_JSON_MAX_BYTES = 64 * 1024
#: the `kind` of an answer by its status, for errors raised by FastAPI/Starlette themselves
KIND_OF_STATUS: Mapping[int, ErrorKind] = MappingProxyType(
    {
        400: "validation",
        401: "auth",
        403: "auth",
        404: "not_found",
        405: "validation",
        413: "too_large",
        422: "validation",
        429: "busy",
        503: "unavailable",
    }
)
UNAVAILABLE = "the catalog store is unavailable right now: try again later (the server log has the details)"


async def on_visearch_error(request: Request, exc: Exception) -> JSONResponse:
    """Engine errors as answers that say what to do; never a stack trace. Store and encoder errors
    name server paths and settings: they are logged for the operator, the client gets a sentence."""
    if isinstance(exc, ImageError):
        return error(422, f"image: {exc}", "validation", "image")
    if isinstance(exc, CursorExpiredError):
        return error(422, f"cursor: {exc}", "validation", "cursor")
    if isinstance(exc, EncoderBusyError):
        return error(503, str(exc), "busy", headers={"Retry-After": "1"})
    if isinstance(exc, PointNotFoundError):
        return error(404, "the product's photo is gone (deleted meanwhile)", "not_found")
    if isinstance(exc, CollectionNotFoundError):  # names the collection and the command, no path
        return error(503, str(exc), "unavailable")
    if isinstance(exc, (EncoderMismatchError, StoreError)):
        log.error("%s %s: %s", request.method, request.url.path, exc)
        return error(503, UNAVAILABLE, "unavailable")
    log.warning("%s %s failed: %s", request.method, request.url.path, exc)
    return error(400, "the request could not be served (the server log has the details)", "error")


async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's and Starlette's own answers (unknown route, wrong method, a body limit, too many
    form fields) in the same shape as every other error."""
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    if status == 404:
        message = "not found: no such route (the API is under /api/v1, its schema at /api/v1/openapi.json)"
    elif status == 405:
        message = f"method {request.method} is not allowed here (allowed: {(exc.headers or {}).get('Allow', 'none')})"
    else:
        message = exc.detail if isinstance(exc.detail, str) else "the request cannot be served"
    return error(status, message, KIND_OF_STATUS.get(status, "error"), headers=exc.headers)


async def on_client_gone(request: Request, exc: Exception) -> Response:
    """A client that hung up mid-body is not a server error: a line at info, no traceback."""
    log.info("%s %s: the client disconnected before sending the whole body", request.method, request.url.path)
    return Response(status_code=400)  # nobody is left to read it


async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("API request crashed")
    return error(500, "internal error: the server log has the details", "error")


class ApiApp(FastAPI):
    """The server's FastAPI app: its OpenAPI schema also documents the bodies described by hand
    (multipart forms carry ProductIn and SearchIn as JSON text)."""

    def openapi(self) -> dict[str, Any]:
        return openapi_of(self)


def openapi_of(app: FastAPI) -> dict[str, Any]:
    """The generated schema plus the models that hand-documented bodies refer to."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title="visearch API",
        version="1",
        routes=app.routes,
        description="Keep a visual product search collection in sync and search it by photo or words. "
        "Write endpoints need `Authorization: Bearer KEY` (VISEARCH_API_KEYS).",
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (ProductIn, SearchIn):
        body = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in body.pop("$defs", {}).items():
            components.setdefault(name, sub)
        components[model.__name__] = body
    schema.setdefault("components", {})["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer"},
        "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    }
    app.openapi_schema = schema
    return schema


def body_rules(server: ApiSettings, max_image_bytes: int) -> list[Rule]:
    """What each route may receive. Only the keyed writes take big bodies (their key is checked
    before the body is read); the public search takes a few KB of JSON, or one photo in a form."""
    api_max = server.api_max_body_bytes
    json_search = Rule(
        PREFIX + "/search",
        min(api_max, SEARCH_JSON_MAX_BYTES),
        "a JSON search is words and filters; a photo goes in a multipart form"
        if api_max > SEARCH_JSON_MAX_BYTES
        else "VISEARCH_API_MAX_BODY_BYTES",
    )
    photo_bound = max_image_bytes + SEARCH_JSON_MAX_BYTES
    form_search = Rule(
        json_search.prefix,
        min(api_max, photo_bound),
        "VISEARCH_MAX_IMAGE_BYTES" if photo_bound < api_max else "VISEARCH_API_MAX_BODY_BYTES",
    )
    return [
        replace(json_search, form_max_bytes=form_search.max_bytes, form_setting=form_search.setting),
        Rule(PREFIX + "/products", server.api_max_body_bytes, "VISEARCH_API_MAX_BODY_BYTES"),
        Rule(PREFIX + "/", OTHER_MAX_BODY_BYTES),
        Rule("/webhooks/", server.webhook_max_body_bytes, "VISEARCH_WEBHOOK_MAX_BODY_BYTES"),
    ]


def install_api(app: ApiApp, server: ApiSettings, max_image_bytes: int) -> None:
    """Routes under /api/v1, handlers, middleware; the page at / when VISEARCH_WEB_PAGE is on."""
    app.include_router(router, prefix=PREFIX)
    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(VisearchError, on_visearch_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(ClientDisconnect, on_client_gone)
    app.add_exception_handler(Exception, on_unexpected)
    if server.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=server.cors_origin_list,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type"],
            max_age=600,
        )
    app.add_middleware(
        BodyLimit,
        rules=body_rules(server, max_image_bytes),
        default=Rule("/", OTHER_MAX_BODY_BYTES),
        grace_s=server.body_timeout,
    )
    if server.web_page:
        app.mount("/static", StaticFiles(directory=WEB / "static"), name="static")

        template = (WEB / "index.html").read_text(encoding="utf-8")

        @app.get("/", include_in_schema=False)
        async def page(request: Request, lang: str | None = None) -> HTMLResponse:
            """The page in the visitor's language: `?lang=` (the switcher), else `Accept-Language`."""
            wordings = state_of(request).wordings
            locale = page_locale(wordings.locales, lang, request.headers.get("accept-language"))
            body = render_page(template, wordings.of(locale), wordings.locales)
            return HTMLResponse(body, headers={"Cache-Control": "no-cache", "Vary": "Accept-Language"})
