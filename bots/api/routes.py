"""/api/v1: keep the collection in sync from a shop's own systems, and search it over HTTP.

Thin like the messenger adapters: requests become core queries or pipeline rows, results become
JSON. Write endpoints need a key from VISEARCH_API_KEYS (`Authorization: Bearer KEY` or
`X-API-Key: KEY`, compared in constant time); search is public unless
VISEARCH_API_PUBLIC_SEARCH=false. Every error is JSON with a sentence and the field it is about.
"""

from __future__ import annotations

import asyncio
import hmac
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.responses import JSONResponse

from visearch.bots.api.catalog import CatalogWriter, Upload, UploadError
from visearch.bots.api.models import (
    SEARCH_TEXT_MAX,
    BatchIn,
    BatchItem,
    BatchOut,
    CardOut,
    DeleteOut,
    ErrorKind,
    ErrorOut,
    FeedOut,
    FeedRunOut,
    FeedsSyncOut,
    FiltersIn,
    ProductIn,
    ProductOut,
    SearchIn,
    SearchOut,
    StatsOut,
    UpsertResult,
)
from visearch.bots.api.settings import ApiSettings
from visearch.bots.conversation import Notice, NoticeReason, search_outcome
from visearch.bots.conversation.wording import N_, Wordings
from visearch.bots.jsonbody import JsonBodyError, parse_json_async
from visearch.bots.media import public_photo_url
from visearch.core.domain import Filters, SearchResult
from visearch.core.domain import Query as CoreQuery
from visearch.core.ingest.feeds import FeedRun
from visearch.core.search import SearchService

#: the OpenAPI description of every error response
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "missing or wrong API key"},
    422: {"model": ErrorOut, "description": "a field is missing or invalid: `field` names it"},
}
NO_MATCH = N_("No matching products: try another photo, other words, or fewer filters.")


class ApiError(Exception):
    """An answer other than 2xx, as ErrorOut JSON."""

    def __init__(
        self,
        status: int,
        message: str,
        kind: ErrorKind = "error",
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.field, self.headers = status, message, kind, field, headers


class ApiState(Protocol):
    """What the API reads of the server's state (the API does not import the server that mounts it;
    `visearch.bots.server.app.ServerState` satisfies it): the service and writer once started, the settings."""

    @property
    def service(self) -> SearchService | None: ...

    @property
    def writer(self) -> CatalogWriter | None: ...

    @property
    def server(self) -> ApiSettings: ...

    @property
    def feeds(self) -> FeedControl | None: ...

    @property
    def wordings(self) -> Wordings: ...


class FeedControl(Protocol):
    """The server's feed schedule, as the API drives it (`visearch.bots.server.feeds.FeedScheduler`)."""

    def trigger(self) -> asyncio.Task[list[FeedRun]]: ...

    def status(self) -> list[dict[str, Any]]: ...


def still_starting() -> ApiError:
    """A request that came before the service (or the writer) was opened."""
    return ApiError(503, "the server is still starting: try again in a few seconds", "unavailable")


def product_not_found(product_id: str) -> ApiError:
    return ApiError(404, f"no product with id {product_id!r}", "not_found", "product_id")


def auth_refused(message: str) -> ApiError:
    """401 with the header that tells a client to send a bearer key."""
    return ApiError(401, message, "auth", headers={"WWW-Authenticate": "Bearer"})


def state_of(request: Request) -> ApiState:
    state: ApiState = request.app.state.visearch  # set by the server's create_app
    return state


def service_of(request: Request) -> SearchService:
    service = state_of(request).service
    if service is None:
        raise still_starting()
    return service


def writer_of(request: Request) -> CatalogWriter:
    writer = state_of(request).writer
    if writer is None:
        raise still_starting()
    return writer


def given_key(request: Request) -> str:
    """The key a request carries: `Authorization: Bearer KEY` or `X-API-Key: KEY`."""
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-api-key", "").strip()


def key_matches(given: str, keys: list[str]) -> bool:
    """Constant time per key, and every key is compared (no early exit that times the list)."""
    found = False
    for key in keys:
        found |= hmac.compare_digest(given.encode("utf-8"), key.encode("utf-8"))
    return found


def check_key(request: Request, server: ApiSettings) -> None:
    keys = server.api_key_list
    if not keys:
        raise auth_refused("this server has no API keys: set VISEARCH_API_KEYS to enable this endpoint")
    given = given_key(request)
    if not given:
        raise auth_refused("an API key is required: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'")
    if not key_matches(given, keys):
        raise auth_refused("the API key is not valid")


def require_write_key(request: Request) -> None:
    """Dependency of every endpoint that changes the collection."""
    check_key(request, state_of(request).server)


def require_search_key(request: Request) -> None:
    """Dependency of the search endpoints: a key only when search is not public."""
    server: ApiSettings = state_of(request).server
    if not server.api_public_search:
        check_key(request, server)


def base_url(request: Request) -> str:
    """This server's address as clients see it (VISEARCH_PUBLIC_URL when set)."""
    configured = state_of(request).server.public_url
    return configured or str(request.base_url).rstrip("/")


def search_answer(result: SearchResult, request: Request) -> SearchOut:
    base = base_url(request)
    cards = []
    for card in result.cards:
        cards.append(CardOut.of(card, public_photo_url(card.point_id, card.photo, base)))
    message = None if cards else no_match_message(request)
    return SearchOut(cards=cards, cut_off=result.cut_off, next_cursor=result.next_cursor, message=message)


def no_match_message(request: Request) -> str:
    """The no-match sentence in the client's `Accept-Language` (the page sends its own language)."""
    wordings = state_of(request).wordings
    return wordings.for_header(request.headers.get("accept-language")).gettext(NO_MATCH)


def validation_message(exc: ValidationError | RequestValidationError, prefix: str = "") -> tuple[str, str | None]:
    """The first error as 'field: what is wrong', and the field's dotted path."""
    errors = exc.errors()
    if not errors:
        return "invalid request", None
    first = errors[0]
    loc = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path", "header")]
    field = ".".join(([prefix] if prefix else []) + loc) or None
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return (f"{field}: {message}{more}" if field else f"{message}{more}"), field


async def parse_json_field(raw: str | bytes, field: str) -> Any:
    """A JSON body or form field (finite numbers, bounded nesting, large ones parsed off the loop)."""
    try:
        return await parse_json_async(raw)
    except JsonBodyError as exc:
        raise ApiError(422, f"{field}: {exc}", "validation", field) from None


def parse_model(model: type[Any], data: Any, field: str = "") -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        message, where = validation_message(exc, field)
        raise ApiError(422, message, "validation", where) from None


async def read_json(request: Request) -> Any:
    """The request's JSON body; called inside the handler, so after the key check (a keyless
    client never gets its body read or parsed)."""
    body = await request.body()
    if not body:
        raise ApiError(422, "the request body is empty: send JSON", "validation")
    return await parse_json_field(body, "body")


def multipart_text(form: Any, name: str) -> str | None:
    value = form.get(name)
    if value is None:
        return None
    if isinstance(value, UploadFile):
        raise ApiError(422, f"{name}: expected a text field, got a file", "validation", name)
    return str(value)


async def multipart_uploads(form: Any, name: str, first_index: int) -> list[Upload]:
    uploads = []
    for i, value in enumerate(form.getlist(name)):
        if not isinstance(value, UploadFile):
            raise ApiError(
                422, f"{name}[{first_index + i}]: expected a file", "validation", f"{name}[{first_index + i}]"
            )
        uploads.append(Upload(value.filename or "", await value.read()))
    return uploads


def is_form(request: Request) -> bool:
    """A multipart form (files) or a plain url-encoded form (text fields only)."""
    kind = request.headers.get("content-type", "").lower()
    return kind.startswith(("multipart/form-data", "application/x-www-form-urlencoded"))


#: OpenAPI request bodies of the endpoints that take JSON or a form (documented by hand: one
#: handler reads both, so FastAPI cannot infer them)
PRODUCT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/ProductIn"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["product"],
                    "properties": {
                        "product": {"type": "string", "description": "the ProductIn JSON (its `images` may be empty)"},
                        "images": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "photo files, after the JSON's image URLs",
                        },
                    },
                }
            },
        },
    }
}
BATCH_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "title": "BatchIn",
                    "type": "object",
                    "required": ["products"],
                    "additionalProperties": False,
                    "description": BatchIn.__doc__,
                    "properties": {
                        "products": {
                            "type": "array",
                            "minItems": 1,
                            "items": {"$ref": "#/components/schemas/ProductIn"},
                            "description": BatchIn.model_fields["products"].description,
                        }
                    },
                }
            }
        },
    }
}
SEARCH_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/SearchIn"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "image": {"type": "string", "format": "binary", "description": "a photo to search with"},
                        "text": {"type": "string", "maxLength": SEARCH_TEXT_MAX, "description": "words to search with"},
                        "filters": {"type": "string", "description": "a Filters object as JSON"},
                        "limit": {"type": "integer", "minimum": 1, "maximum": 100},
                    },
                }
            },
        },
    }
}


router = APIRouter(responses=ERRORS)


@router.post(
    "/products",
    response_model=UpsertResult,
    dependencies=[Depends(require_write_key)],
    openapi_extra=PRODUCT_BODY,
    summary="Create or replace a product",
)
async def upsert_product(request: Request) -> UpsertResult:
    """JSON (a ProductIn whose images are http(s) URLs) or a multipart form (`product` JSON + `images`
    files). Idempotent: the same product twice writes nothing the second time."""
    writer, server = writer_of(request), state_of(request).server
    if is_form(request):
        form = await request.form(max_files=server.api_max_images + 1, max_fields=50)
        raw = multipart_text(form, "product")
        if raw is None:
            raise ApiError(422, "product: missing (the product's JSON as a form field)", "validation", "product")
        product = parse_model(ProductIn, await parse_json_field(raw, "product"))
        uploads = await multipart_uploads(form, "images", len(product.images))
    else:
        product = parse_model(ProductIn, await read_json(request))
        uploads = []
    count = len(product.images) + len(uploads)
    if count == 0:
        raise ApiError(
            422,
            "images: a product needs at least one photo (an http(s) URL or an uploaded file)",
            "validation",
            "images",
        )
    if count > server.api_max_images:
        raise ApiError(
            422,
            f"images: {count} photos, at most {server.api_max_images} (VISEARCH_API_MAX_IMAGES)",
            "validation",
            "images",
        )
    try:
        result = await writer.upsert(product, uploads, service_of(request).settings.max_image_bytes)
    except UploadError as exc:
        raise ApiError(422, str(exc), "validation", exc.field) from None
    if not result.stored_a_photo and result.failed:
        raise ApiError(422, unusable_photos(result), "validation", "images")
    return result


def unusable_photos(result: UpsertResult) -> str:
    """Why an upsert wrote nothing, and what became of the product: kept as stored, or not created."""
    outcome = "the stored product is kept unchanged" if result.kept else "the product was not created"
    return f"images: none of the product's photos could be used, so {outcome}: " + "; ".join(result.problems)


@router.post(
    "/products:batch",
    response_model=BatchOut,
    dependencies=[Depends(require_write_key)],
    openapi_extra=BATCH_BODY,
    summary="Create or replace many products",
)
async def upsert_batch(request: Request) -> BatchOut:
    """Each product is checked and written on its own: a bad one is reported, the others are written.
    The body is read here, after the key check (a declared `BatchIn` parameter would be read and
    parsed by FastAPI before any dependency runs)."""
    writer, server = writer_of(request), state_of(request).server
    body: BatchIn = parse_model(BatchIn, await read_json(request))
    if len(body.products) > server.api_max_batch:
        raise ApiError(
            422,
            f"products: {len(body.products)} products, at most {server.api_max_batch} per batch "
            "(VISEARCH_API_MAX_BATCH)",
            "validation",
            "products",
        )
    items: list[BatchItem] = []
    max_bytes = service_of(request).settings.max_image_bytes
    for index, raw in enumerate(body.products):
        raw_id = raw.get("id") if isinstance(raw, dict) else None
        item_id = raw_id if isinstance(raw_id, str) else None
        try:
            product = parse_model(ProductIn, raw, f"products[{index}]")
            if not product.images:
                raise ApiError(422, f"products[{index}].images: a product needs at least one photo URL", "validation")
            if len(product.images) > server.api_max_images:
                raise ApiError(422, f"products[{index}].images: at most {server.api_max_images} photos", "validation")
            result = await writer.upsert(product, [], max_bytes)
        except ApiError as exc:
            items.append(BatchItem(index=index, id=item_id, ok=False, error=exc.message))
            continue
        problem = (
            None if result.ok else ("; ".join(result.problems) if result.stored_a_photo else unusable_photos(result))
        )
        items.append(
            BatchItem(index=index, id=product.id, ok=result.stored_a_photo and result.ok, result=result, error=problem)
        )
    written = sum(1 for item in items if item.ok)
    return BatchOut(written=written, failed=len(items) - written, items=items)


# Product ids may hold slashes (SKUs like "AB/12" come from catalogs): the id is a `path` parameter
# (`a/b` or `a%2Fb`), and "more like this" is declared first so `.../a/b/similar` reaches it.
@router.get(
    "/products/{product_id:path}/similar",
    response_model=SearchOut,
    responses={404: {"model": ErrorOut}},
    dependencies=[Depends(require_search_key)],
    summary="More like this product",
)
async def similar_products(
    request: Request,
    product_id: str,
    limit: int = Query(12, ge=1, le=100),
    point_id: str | None = Query(
        None, max_length=100, description="the card's photo to start from (default: the product's first)"
    ),
) -> SearchOut:
    service, writer = service_of(request), writer_of(request)
    points = await writer.points(product_id)
    if not points:
        raise product_not_found(product_id)
    start = next((p for p in points if p.point_id == point_id), points[0])
    outcome = await search_outcome(service, CoreQuery(similar_to=start.point_id, limit=limit))
    if isinstance(outcome, Notice):
        raise api_error_of(outcome)
    return search_answer(outcome, request)


@router.get(
    "/products/{product_id:path}",
    response_model=ProductOut,
    responses={404: {"model": ErrorOut}},
    summary="A stored product",
)
async def get_product(product_id: str, request: Request) -> ProductOut:
    product = await writer_of(request).product(product_id, base_url(request))
    if product is None:
        raise product_not_found(product_id)
    return product


@router.delete(
    "/products/{product_id:path}",
    response_model=DeleteOut,
    responses={404: {"model": ErrorOut}},
    dependencies=[Depends(require_write_key)],
    summary="Delete a product and its photos",
)
async def delete_product(product_id: str, request: Request) -> DeleteOut:
    removed = await writer_of(request).delete(product_id)
    if not removed:
        raise product_not_found(product_id)
    return DeleteOut(id=product_id, deleted_points=removed)


@router.post(
    "/search",
    response_model=SearchOut,
    dependencies=[Depends(require_search_key)],
    openapi_extra=SEARCH_BODY,
    summary="Search by photo and/or words",
)
async def search(request: Request) -> SearchOut:
    """A multipart form (`image` file and/or `text`, `filters` JSON, `limit`) or JSON
    (`text` or `cursor`, `filters`, `limit`)."""
    service = service_of(request)
    query = await form_query(request) if is_form(request) else await json_query(request)
    outcome = await search_outcome(service, query)
    if isinstance(outcome, Notice):
        raise api_error_of(outcome)
    return search_answer(outcome, request)


async def form_query(request: Request) -> CoreQuery:
    """A search from a multipart form: an `image` file and/or `text`, `filters` as JSON, `limit`."""
    form = await request.form(max_files=1, max_fields=10)
    photo = form.get("image")
    images: list[bytes] = []
    if photo is not None:
        if not isinstance(photo, UploadFile):
            raise ApiError(422, "image: expected a file", "validation", "image")
        data = await photo.read()
        if not data:
            raise ApiError(422, "image: the file is empty", "validation", "image")
        images = [data]
    text = (multipart_text(form, "text") or "").strip() or None
    if text is not None and len(text) > SEARCH_TEXT_MAX:
        raise ApiError(422, f"text: at most {SEARCH_TEXT_MAX} characters, got {len(text)}", "validation", "text")
    raw_filters = multipart_text(form, "filters")
    filters = (
        parse_model(FiltersIn, await parse_json_field(raw_filters, "filters"), "filters").core()
        if raw_filters
        else Filters()
    )
    raw_limit = multipart_text(form, "limit")
    try:
        limit = int(raw_limit) if raw_limit not in (None, "") else 12
    except ValueError:
        raise ApiError(422, "limit: not a whole number", "validation", "limit") from None
    if not 1 <= limit <= 100:
        raise ApiError(422, "limit: must be between 1 and 100", "validation", "limit")
    if not images and not text:
        raise ApiError(422, "image: send a photo or some text to search with", "validation", "image")
    return parse_model(CoreQuery, {"images": images, "text": text, "filters": filters, "limit": limit})


async def json_query(request: Request) -> CoreQuery:
    """A search from JSON: `text` (with `filters`) or the `cursor` of an earlier answer."""
    body = parse_model(SearchIn, await read_json(request))
    if not body.text and not body.cursor:
        raise ApiError(
            422,
            "text: send words to search with (or the `cursor` of an earlier answer; photos go in a multipart form)",
            "validation",
            "text",
        )
    if body.cursor:
        return parse_model(CoreQuery, {"cursor": body.cursor, "limit": body.limit})
    return parse_model(CoreQuery, {"text": body.text, "filters": body.filters.core(), "limit": body.limit})


def api_error_of(notice: Notice) -> Exception:
    """The API's answer to a failed search, by the conversation's notice reason (the statuses and
    error kinds the API always gave). An unavailable store or an unexpected error goes back to the
    app's handlers as the error itself: they log it for the operator and answer without details."""
    error = notice.error
    if notice.reason is NoticeReason.BAD_IMAGE:
        return ApiError(422, f"image: {notice.detail}", "validation", "image")
    if notice.reason is NoticeReason.EXPIRED:
        return ApiError(422, f"cursor: {error}", "validation", "cursor")
    if notice.reason is NoticeReason.BUSY:
        return ApiError(503, str(error), "busy", headers={"Retry-After": "1"})
    if notice.reason is NoticeReason.PRODUCT_GONE:
        return ApiError(404, "the product's photo is gone (deleted meanwhile)", "not_found")
    return error if isinstance(error, Exception) else ApiError(500, "internal error: the server log has the details")


@router.get(
    "/stats", response_model=StatsOut, dependencies=[Depends(require_search_key)], summary="Collection size and encoder"
)
async def stats(request: Request) -> StatsOut:
    service = service_of(request)
    facets = await service.facets()
    feeds = state_of(request).feeds
    return StatsOut(
        **await service.stats(),
        products=facets.products,
        feeds=[FeedOut(**out) for out in feeds.status()] if feeds is not None else [],
    )


@router.post(
    "/feeds:sync",
    response_model=FeedsSyncOut,
    status_code=202,
    responses={200: {"model": FeedsSyncOut, "description": "with `wait=true`: the runs"}, 404: {"model": ErrorOut}},
    dependencies=[Depends(require_write_key)],
    summary="Sync the configured feeds now",
)
async def sync_feeds(
    request: Request,
    wait: Annotated[bool, Query(description="answer when the runs are done, with what they did")] = False,
) -> Any:
    """Runs every VISEARCH_FEED_URL feed now (joining the run in progress, if any): 202 at once, or
    with `wait=true` 200 and each feed's run once done. The run goes on if the client disconnects."""
    feeds = state_of(request).feeds
    if feeds is None:
        raise ApiError(404, "no feed is configured: set VISEARCH_FEED_URL and restart the server", "not_found")
    task = feeds.trigger()
    if not wait:
        return FeedsSyncOut(started=True)
    runs = await asyncio.shield(task)
    return JSONResponse(FeedsSyncOut(started=True, runs=[feed_run_out(run) for run in runs]).model_dump(), 200)


def feed_run_out(run: FeedRun) -> FeedRunOut:
    summary = run.summary
    return FeedRunOut(
        source=run.source,
        outcome=run.outcome,
        seconds=round(run.seconds, 3),
        requests=run.requests,
        items=run.items,
        counts=summary.counts() if summary is not None else {},
        problems=[str(p) for p in summary.problems[:50]] if summary is not None else [],
        error=run.error,
    )


@router.get("/facets", dependencies=[Depends(require_search_key)], summary="What the catalog can be filtered by")
async def facets(request: Request) -> dict[str, Any]:
    """Categories, brands, tags, colours with product counts, the price range, in-stock count."""
    return (await service_of(request).facets()).model_dump()
