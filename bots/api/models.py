"""The HTTP API's request and response bodies: what the OpenAPI schema at /api/v1/openapi.json shows.

Product fields are the catalog's (core.domain.Product); images given as JSON must be http(s)
URLs, fetched by the server with the indexer's limits. Cards never carry a server file path.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from pydantic.json_schema import SkipJsonSchema

from visearch.core.domain import MAX_IMAGES, MAX_NAME, MAX_TAGS, Card, Filters, Product

#: longest search text (JSON or form): words, not documents; the encoder's cost grows with it
SEARCH_TEXT_MAX = 500
#: an image the server downloads: http(s) only, never file:, data: or a path on the server
ImageUrl = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[Hh][Tt][Tt][Pp][Ss]?://[^\s/]+\S*$", max_length=2048)
]


class ProductIn(Product):
    """A product to create or replace. Same fields as a catalog row; `images` are http(s) URLs
    (upload files instead with a multipart form: a `product` field with this JSON, `images` files)."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "oat-milk-1l",
                    "title": "Oat milk 1 l",
                    "price": 1.99,
                    "currency": "EUR",
                    "category": "Milk",
                    "brand": "Oatly",
                    "tags": ["vegan"],
                    "in_stock": True,
                    "url": "https://shop.example/oat-milk",
                    "images": ["https://shop.example/oat.jpg"],
                }
            ]
        },
    )

    images: list[ImageUrl] = Field(
        default_factory=list,
        max_length=MAX_IMAGES,
        description="http(s) URLs of the product's photos, shop photo first",
    )


class ImageOut(BaseModel):
    point_id: str
    image_url: str | None = Field(
        description="where a browser gets the photo: the product's URL, or this server's /media/{point_id}"
    )


class ProductOut(BaseModel):
    """A stored product and its photos."""

    id: str
    title: str
    description: str = ""
    price: float | None = None
    currency: str | None = None
    category: str | None = None
    brand: str | None = None
    tags: list[str] = Field(default_factory=list)
    url: str | None = None
    in_stock: bool = True
    extra: dict[str, Any] = Field(default_factory=dict)
    images: list[ImageOut] = Field(default_factory=list)


class UpsertResult(BaseModel):
    """What one upsert did (image counts as in `visearch index`)."""

    id: str
    ok: bool = Field(description="false when any image could not be fetched or read (see `problems`)")
    indexed: int = Field(0, description="images written with a new vector")
    unchanged: int = 0
    updated: int = Field(0, description="images whose product metadata changed (vector kept)")
    failed: int = 0
    deleted: int = Field(0, description="stored images the product no longer lists")
    kept: bool = Field(False, description="none of the new photos could be used: the stored product is unchanged")
    problems: list[str] = Field(default_factory=list)

    @property
    def stored_a_photo(self) -> bool:
        """At least one of the product's photos is in the collection now (written or unchanged)."""
        return self.indexed + self.unchanged + self.updated > 0


class BatchIn(BaseModel):
    """Products to create or replace; each is checked and written on its own."""

    model_config = ConfigDict(extra="forbid")

    products: list[Any] = Field(
        min_length=1,
        json_schema_extra={"items": {"$ref": "#/components/schemas/ProductIn"}},
        description="ProductIn objects; an item that is not one is reported, the others written",
    )


class BatchItem(BaseModel):
    index: int = Field(description="position in the request's `products`")
    id: str | None = None
    ok: bool
    error: str | None = Field(None, description="why the item was not written (validation errors name the field)")
    result: UpsertResult | None = None


class BatchOut(BaseModel):
    written: int = Field(description="items stored with every photo")
    failed: int = Field(description="items refused, or stored with some photos missing (see each item)")
    items: list[BatchItem]


class DeleteOut(BaseModel):
    id: str
    deleted_points: int


#: the core Card's fields a client never sees: a server path, the internal image ref, the ordering value
HIDDEN_CARD_FIELDS = frozenset({"image", "image_file", "rank_score"})


class CardOut(Card):
    """One product in a search answer (the best-matching photo of it): the core Card's fields, with the
    photo as a URL a browser can get instead of the server's own references."""

    image: SkipJsonSchema[str | None] = Field(None, exclude=True)
    image_file: SkipJsonSchema[str | None] = Field(None, exclude=True)
    rank_score: SkipJsonSchema[float | None] = Field(None, exclude=True)
    image_url: str | None

    @classmethod
    def of(cls, card: Card, image_url: str | None) -> CardOut:
        return cls(**card.model_dump(exclude=set(HIDDEN_CARD_FIELDS)), image_url=image_url)


FilterValue = Annotated[str, StringConstraints(max_length=MAX_NAME)]


# The caps live here, not on core's Filters: the chat syntax builds Filters from any message and
# must never fail, while a client's JSON is refused with a 422 that names the limit.
class FiltersIn(Filters):
    """Metadata filters; all given conditions must hold (AND). Values match case-insensitively."""

    categories: list[FilterValue] = Field(
        default_factory=list, max_length=MAX_TAGS, description="any of these categories"
    )
    brands: list[FilterValue] = Field(default_factory=list, max_length=MAX_TAGS, description="any of these brands")
    tags: list[FilterValue] = Field(default_factory=list, max_length=MAX_TAGS, description="every one of these tags")
    colours: list[FilterValue] = Field(
        default_factory=list, max_length=MAX_TAGS, description="any of these dominant colours (red, navy...)"
    )
    price_min: float | None = Field(None, ge=0, allow_inf_nan=False)
    price_max: float | None = Field(None, ge=0, allow_inf_nan=False)
    exclude_product_ids: list[Annotated[str, StringConstraints(max_length=200)]] = Field(
        default_factory=list, max_length=1000
    )

    def core(self) -> Filters:
        """The engine's own type (an empty one compares equal to `Filters()`: the fast path)."""
        return Filters.model_validate(self.model_dump())


class SearchIn(BaseModel):
    """A JSON search: words, or the `next_cursor` of an earlier answer (photos: use a multipart form)."""

    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(None, min_length=1, max_length=SEARCH_TEXT_MAX)
    cursor: str | None = Field(None, min_length=1, max_length=100, description="`next_cursor` of an earlier answer")
    filters: FiltersIn = Field(default_factory=FiltersIn)
    limit: int = Field(12, ge=1, le=100)

    @field_validator("text", mode="before")
    @classmethod
    def _blank_is_no_text(cls, value: Any) -> Any:
        """Only spaces is no text (answered with "send words to search with", not a 500)."""
        return (value.strip() or None) if isinstance(value, str) else value


class SearchOut(BaseModel):
    cards: list[CardOut]
    cut_off: int = Field(0, description="products hidden by the relevance cut-off")
    next_cursor: str | None = Field(None, description="POST it as `cursor` for the next page; null = last page")
    message: str | None = Field(None, description="a sentence for people when there is nothing to show")


class FeedOut(BaseModel):
    """One configured feed (VISEARCH_FEED_URL) and how its syncs went since the server started."""

    source: str = Field(description="the feed's URL without query or credentials, or its path")
    runs: int
    failures: int
    unchanged: int = Field(description="runs that found the feed as the last good sync read it (no work)")
    last_outcome: Literal["synced", "unchanged", "failed"] | None
    last_success: float | None = Field(description="unix time of the last run that did not fail")
    last_duration_s: float | None
    items: int = Field(description="products read from the feed by its last sync that wrote")
    last_error: str | None
    counts: dict[str, int] = Field(
        description="the last written sync's counts (indexed, unchanged, updated, deleted...)"
    )


class StatsOut(BaseModel):
    collection: str
    backend: str
    points: int
    products: int
    encoder: str
    collection_encoder: str | None
    dim: int
    uptime_s: float
    feeds: list[FeedOut] = Field(default_factory=list, description="the feeds `visearch serve` keeps in sync")


class FeedRunOut(BaseModel):
    """What one sync of one feed did."""

    source: str
    outcome: Literal["synced", "unchanged", "failed"]
    seconds: float
    requests: int
    items: int
    counts: dict[str, int]
    problems: list[str] = Field(description="the first 50 problems (bad items, photos that failed)")
    error: str | None = Field(description="why the run failed (nothing was deleted then)")


class FeedsSyncOut(BaseModel):
    """The answer of POST /feeds:sync: the runs (with `wait=true`), or that one was started."""

    started: bool
    runs: list[FeedRunOut] | None = None


#: what sort of error an answer is, for clients that branch on it
ErrorKind = Literal["auth", "validation", "not_found", "too_large", "busy", "unavailable", "error"]


class ErrorOut(BaseModel):
    """Every error: a sentence that says what to fix, and the field it is about when there is one."""

    error: str
    field: str | None = None
    kind: ErrorKind = "error"
