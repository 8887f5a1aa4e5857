"""Puts /api/v1, its OpenAPI schema, its error answers, CORS, the body limit and the web page on
the server's app (one process, one port, shared with the webhooks)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, JSONResponse
from starlette.staticfiles import StaticFiles

from bots.api.limits import BodyLimit
from bots.api.models import ErrorOut, ProductIn, SearchIn
from bots.api.routes import ApiError, router, validation_message
from bots.server.config import ServerSettings
from core.errors import (
    CollectionNotFoundError,
    EncoderBusyError,
    EncoderMismatchError,
    ImageError,
    StoreError,
    VisearchError,
)
from core.search import CursorExpiredError

log = logging.getLogger("visearch.api")

PREFIX = "/api/v1"
WEB = Path(__file__).resolve().parents[1] / "web"


def error(status: int, message: str, kind: str, field: str | None = None,
          headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(ErrorOut(error=message, field=field, kind=kind).model_dump(),  # type: ignore[arg-type]
                        status_code=status, headers=headers)


async def on_api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error(exc.status, exc.message, exc.kind, exc.field, exc.headers)


async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    message, field = validation_message(exc)
    return error(422, message, "validation", field)


async def on_visearch_error(request: Request, exc: Exception) -> JSONResponse:
    """Engine errors as answers that say what to do; never a stack trace."""
    if isinstance(exc, ImageError):
        return error(422, f"image: {exc}", "validation", "image")
    if isinstance(exc, CursorExpiredError):
        return error(422, f"cursor: {exc}", "validation", "cursor")
    if isinstance(exc, EncoderBusyError):
        return error(503, str(exc), "busy", headers={"Retry-After": "1"})
    if isinstance(exc, (CollectionNotFoundError, EncoderMismatchError, StoreError)):
        return error(503, str(exc), "unavailable")
    log.warning("API request failed: %s", exc)
    return error(400, str(exc), "error")


async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("API request crashed")
    return error(500, "internal error: the server log has the details", "error")


def openapi_of(app: FastAPI) -> dict[str, Any]:
    """The generated schema plus the models that hand-documented bodies refer to."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title="visearch API", version="1", routes=app.routes,
                         description="Keep a visual product search collection in sync and search it by photo or words. "
                                     "Write endpoints need `Authorization: Bearer KEY` (VISEARCH_API_KEYS).")
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (ProductIn, SearchIn):
        body = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in body.pop("$defs", {}).items():
            components.setdefault(name, sub)
        components[model.__name__] = body
    schema.setdefault("components", {})["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer"},
        "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}}
    app.openapi_schema = schema
    return schema


def install_api(app: FastAPI, server: ServerSettings) -> None:
    """Routes under /api/v1, handlers, middleware; the page at / when VISEARCH_WEB_PAGE is on."""
    app.include_router(router, prefix=PREFIX)
    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(VisearchError, on_visearch_error)
    app.add_exception_handler(Exception, on_unexpected)
    app.openapi = lambda: openapi_of(app)  # type: ignore[method-assign]
    if server.cors_origin_list:
        app.add_middleware(CORSMiddleware, allow_origins=server.cors_origin_list, allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "X-API-Key", "Content-Type"], max_age=600)
    app.add_middleware(BodyLimit, max_bytes=server.api_max_body_bytes, prefix=PREFIX + "/")
    if server.web_page:
        app.mount("/static", StaticFiles(directory=WEB / "static"), name="static")

        @app.get("/", include_in_schema=False)
        async def page() -> FileResponse:
            return FileResponse(WEB / "index.html", headers={"Cache-Control": "no-cache"})
