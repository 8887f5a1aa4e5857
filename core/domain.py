"""Domain types shared by the engine, the indexer and every messenger adapter."""

from __future__ import annotations

import json
import math
import unicodedata
import uuid
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator, model_validator

from visearch.core.fetch import is_url
from visearch.core.media import PhotoLocation, locate_photo

# Fixed namespace so the same (product, image) pair always maps to the same point id.
POINT_NAMESPACE = uuid.UUID("5b0f7a8e-3c1d-4d2b-9a57-7f1e0c6d2a11")

#: Payload keys that hold lower-cased copies of filterable fields (indexed in the store).
FILTER_KEYS = {"category": "f_category", "brand": "f_brand", "tags": "f_tags"}
#: payload keys the indexer writes itself; `Product.extra` may use none of them (nor a Product field)
RESERVED_PAYLOAD_KEYS = frozenset(
    {
        "product_id",
        "image",
        "image_root",
        "colours",
        "image_index",
        "image_sha256",
        "product_hash",
        "ocr_text",
        *FILTER_KEYS.values(),
    }
)


# Size caps of a product (API JSON, multipart, batch and catalog files alike): generous for real
# catalogs, small enough that one product cannot take megabytes of payload, memory or /facets.
MAX_TITLE = 1000
MAX_DESCRIPTION = 10_000
MAX_NAME = 200  # category, brand
MAX_CURRENCY = 20
MAX_URL = 2048
MAX_TAGS, MAX_TAG = 50, 100
MAX_IMAGES = 100
MAX_EXTRA_KEYS, MAX_EXTRA_KEY, MAX_EXTRA_VALUE = 50, 100, 2000
_EXTRA_INT = 2**63  # the store keeps 64-bit integers

Tag = Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_TAG)]
ImageRef = Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_URL)]


def _extra_value_problem(key: str, value: Any) -> str | None:
    """Why an `extra` value cannot be stored (too long, a non-finite number, a huge integer), or None."""
    if isinstance(value, str):
        return (
            f"{key!r}: at most {MAX_EXTRA_VALUE} characters, got {len(value)}" if len(value) > MAX_EXTRA_VALUE else None
        )
    stack, seen = [value], 0
    while stack:  # no recursion: a catalog line may nest deeply
        item = stack.pop()
        seen += 1
        if seen > MAX_EXTRA_VALUE:
            return f"{key!r}: at most {MAX_EXTRA_VALUE} characters of JSON"
        if isinstance(item, float) and not math.isfinite(item):
            return f"{key!r}: numbers must be finite"
        if isinstance(item, int) and not isinstance(item, bool) and not -_EXTRA_INT <= item < _EXTRA_INT:
            return f"{key!r}: integers must fit in 64 bits"
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    size = len(json.dumps(value, ensure_ascii=False, default=str))
    return f"{key!r}: at most {MAX_EXTRA_VALUE} characters of JSON, got {size}" if size > MAX_EXTRA_VALUE else None


#: Unicode categories an id may not hold: control (\x00-\x1f, \x7f-\x9f), invisible formatting
#: (bidi overrides, zero-width space, BOM), lone surrogates, line and paragraph separators
_ID_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
#: formatting characters that scripts (Persian, Indic) and emoji need: allowed in ids
_ID_ALLOWED_FORMAT = frozenset({"\u200c", "\u200d"})


def product_id_problem(product_id: str) -> str | None:
    """Why a product id cannot be one (None when it can). An id is a path in the HTTP API
    (`/products/{id}`, `/products/{id}/similar`): a control character, a `.`/`..` segment (clients
    remove it before sending) or a last segment `similar` would make a product that can be created
    but never read or deleted there, so catalogs and the API refuse them alike."""
    bad = next(
        (c for c in product_id if unicodedata.category(c) in _ID_REFUSED_CATEGORIES and c not in _ID_ALLOWED_FORMAT),
        None,
    )
    if bad is not None:
        return (
            f"may not contain control characters or invisible formatting characters (found U+{ord(bad):04X}); "
            "letters, digits, spaces and punctuation are fine"
        )
    segments = product_id.split("/")
    if any(segment in (".", "..") for segment in segments):
        return (
            "may not be '.' or '..' nor have such a segment between slashes ('a/../b'): clients drop it from "
            "URLs; dots inside a segment ('a.b', 'v1..2') are fine"
        )
    if len(segments) > 1 and segments[-1] == "similar":
        return (
            "may not end with '/similar' (the URL of 'more like this' for the id before it); "
            "'similar' elsewhere is fine"
        )
    return None


def normalise_key(value: str) -> str:
    """Lower-case, trim and collapse spaces so `Dairy ` and `dairy` filter alike."""
    return " ".join(value.split()).casefold()


def result_key(payload: dict[str, Any], point_id: str = "") -> str:
    """What one search result stands for: the product's variant group when it has one (variants are one
    card), else the product (its photos are one card)."""
    group = payload.get("group_id")
    if group:
        return f"group\x00{group}"
    return str(payload.get("product_id", point_id))


def point_id_for(product_id: str, image_ref: str) -> str:
    """Deterministic point id from product id + image identity: re-indexing never duplicates."""
    return str(uuid.uuid5(POINT_NAMESPACE, f"{product_id}\x00{image_ref}"))


class Product(BaseModel):
    """A catalog item. `images` is its similarity group: shop photo first, then real-life photos."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: str = Field(
        min_length=1,
        max_length=200,
        description="slashes, spaces and any script are fine; no control "
        "characters, no '.' or '..' segment, no last segment 'similar' (the id is a URL path)",
    )
    title: str = Field(min_length=1, max_length=MAX_TITLE)
    description: str = Field("", max_length=MAX_DESCRIPTION)
    price: float | None = Field(None, ge=0, allow_inf_nan=False)
    currency: str | None = Field(None, max_length=MAX_CURRENCY)
    category: str | None = Field(None, max_length=MAX_NAME)
    brand: str | None = Field(None, max_length=MAX_NAME)
    tags: list[Tag] = Field(
        default_factory=list, max_length=MAX_TAGS, description=f"at most {MAX_TAGS}, {MAX_TAG} characters each"
    )
    url: str | None = Field(None, max_length=MAX_URL)
    group_id: str | None = Field(
        None,
        max_length=MAX_NAME,
        description="variants of one product (sizes, colours) share it: a search answers with one card per "
        "group, the best-matching variant's (Merchant item_group_id, YML group_id, Shopify handle)",
    )
    in_stock: bool = True
    images: list[ImageRef] = Field(default_factory=list, max_length=MAX_IMAGES, description="paths or http(s) URLs")
    extra: dict[str, Any] = Field(
        default_factory=dict,
        description="unknown catalog columns, kept in the payload "
        f"(at most {MAX_EXTRA_KEYS} keys of {MAX_EXTRA_KEY} characters, each value at most "
        f"{MAX_EXTRA_VALUE} characters as JSON; numbers finite)",
    )

    @field_validator("id")
    @classmethod
    def _id_is_addressable(cls, product_id: str) -> str:
        """Every id the API accepts can be read, searched from and deleted over the API."""
        problem = product_id_problem(product_id)
        if problem:
            raise ValueError(problem)
        return product_id

    @field_validator("tags")
    @classmethod
    def _clean_tags(cls, tags: list[str]) -> list[str]:
        return [t.strip() for t in tags if t and t.strip()]

    @field_validator("extra")
    @classmethod
    def _extra_keeps_to_itself(cls, extra: dict[str, Any]) -> dict[str, Any]:
        """An extra key named like a field ("id", "title") or a key the indexer writes would overwrite
        it in the stored payload: refuse it with its name."""
        clash = sorted(k for k in extra if k in cls.model_fields or k in RESERVED_PAYLOAD_KEYS)
        if clash:
            raise ValueError(
                f"{', '.join(repr(k) for k in clash[:5])}: reserved (a product field or a key visearch "
                "writes); rename the key"
            )
        return extra

    @field_validator("extra")
    @classmethod
    def _extra_is_bounded(cls, extra: dict[str, Any]) -> dict[str, Any]:
        """Extra columns go into every photo's payload: a bounded number of bounded, storable values."""
        if len(extra) > MAX_EXTRA_KEYS:
            raise ValueError(f"at most {MAX_EXTRA_KEYS} keys, got {len(extra)}")
        for key, value in extra.items():
            if len(key) > MAX_EXTRA_KEY:
                raise ValueError(f"key {key[:20]!r}...: at most {MAX_EXTRA_KEY} characters")
            problem = _extra_value_problem(key, value)
            if problem:
                raise ValueError(problem)
        return extra

    def payload(self, image_ref: str, image_sha256: str, image_index: int) -> dict[str, Any]:
        """The payload of one point (one image of this product): product fields + filter keys."""
        data: dict[str, Any] = self.model_dump(exclude={"extra"})
        data.update(self.extra)
        data["product_id"] = self.id
        data["image"] = image_ref
        data["image_index"] = image_index
        data["image_sha256"] = image_sha256
        data["f_category"] = normalise_key(self.category) if self.category else None
        data["f_brand"] = normalise_key(self.brand) if self.brand else None
        data["f_tags"] = [normalise_key(t) for t in self.tags]
        return data

    def words(self, ocr_text: str = "") -> str:
        """The product's text signal: title first (it matters most and models truncate long texts),
        then brand, category, tags, the words read off the photo, and the description."""
        parts = [self.title, self.brand or "", self.category or "", ", ".join(self.tags), ocr_text, self.description]
        return ". ".join(" ".join(p.split()) for p in parts if p and p.strip())

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Product:
        """Rebuild the product from any of its points' payload."""
        known = set(cls.model_fields) - {"extra"}
        fields = {k: v for k, v in payload.items() if k in known}
        extra = {k: v for k, v in payload.items() if k not in known and k not in RESERVED_PAYLOAD_KEYS and k != "extra"}
        try:
            return cls(**fields, extra=extra)
        except ValidationError:  # stored before today's size caps: still readable as it was written
            return cls.model_construct(**fields, extra=extra)


class Filters(BaseModel):
    """Metadata filters; all given conditions must hold (AND). Values match case-insensitively."""

    model_config = ConfigDict(extra="forbid")

    categories: list[str] = Field(default_factory=list, description="any of these categories")
    brands: list[str] = Field(default_factory=list, description="any of these brands")
    tags: list[str] = Field(default_factory=list, description="every one of these tags")
    colours: list[str] = Field(default_factory=list, description="any of these dominant colours (red, navy...)")
    price_min: float | None = Field(None, ge=0)
    price_max: float | None = Field(None, ge=0)
    in_stock: bool | None = None
    exclude_product_ids: list[str] = Field(default_factory=list)

    @field_validator("categories", "brands", "tags", "colours")
    @classmethod
    def _normalise(cls, values: list[str]) -> list[str]:
        return [normalise_key(v) for v in values if v and v.strip()]

    @model_validator(mode="after")
    def _price_range_ordered(self) -> Filters:
        if self.price_min is not None and self.price_max is not None and self.price_min > self.price_max:
            raise ValueError(f"price_min ({self.price_min}) is above price_max ({self.price_max})")
        return self

    def is_empty(self) -> bool:
        """True when no condition is set (the store may then use its fastest path)."""
        return self == Filters()


class Query(BaseModel):
    """One search: a photo (or several, an album), a text, or a stored point ("more like this")."""

    model_config = ConfigDict(extra="forbid")

    images: list[bytes] = Field(default_factory=list, description="raw image bytes; several = one album query")
    text: str | None = None
    similar_to: str | None = Field(None, description="point id for 'more like this'")
    cursor: str | None = Field(None, description="`SearchResult.next_cursor` of an earlier search: its next page")
    filters: Filters = Field(default_factory=Filters)
    limit: int = Field(5, ge=1, le=1000)
    offset: int = Field(0, ge=0, description="products to skip (pagination)")

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> Query:
        given = sum(
            [bool(self.images), bool(self.text and self.text.strip()), bool(self.similar_to), bool(self.cursor)]
        )
        if given == 0:
            raise ValueError("a query needs an image, a text, a point id or a cursor to search from")
        if (self.similar_to or self.cursor) and given > 1:
            raise ValueError("'similar_to' and 'cursor' cannot be combined with anything else to search from")
        return self

    @property
    def kind(self) -> Literal["image", "text", "similar", "page"]:
        """What the query searches from (image and similar share the image cut-off; a page keeps its own)."""
        if self.cursor:
            return "page"
        if self.similar_to:
            return "similar"
        return "image" if self.images else "text"


#: a narrow no-break space: thousands in a price never wrap onto two lines
PRICE_THOUSANDS = "\u202f"


def price_text(price: float | None, currency: str | None = None) -> str:
    """`27.78 SEK`, `12 EUR`, `1 234.50`; empty without a price. The one price format of every
    channel and of the CLI."""
    if price is None:
        return ""
    amount = f"{price:,.2f}".replace(",", PRICE_THOUSANDS).removesuffix(".00")
    return f"{amount} {currency}".strip() if currency else amount


class Card(BaseModel):
    """What a messenger shows for one product: photo, title, price, link, score, ids for buttons."""

    product_id: str
    point_id: str
    title: str
    image: str | None
    price: float | None = None
    currency: str | None = None
    url: str | None = None
    description: str = ""
    category: str | None = None
    brand: str | None = None
    in_stock: bool = True
    score: float
    signals: dict[str, float] = Field(
        default_factory=dict, description="cosine per matching signal (image, words) of a text query"
    )
    rank_score: float | None = Field(
        None,
        description="the value the cards are ordered by: `score`, or a text query's fused signals (core.fusion), plus a photo query's geometric-verification bonus (core.local_features) and any colour boost",
    )
    image_file: str | None = Field(None, description="absolute path of a local catalog image, for uploading it")

    @classmethod
    def from_hit(cls, hit: Hit, image_root: str | None = None, uploads_root: str | None = None) -> Card:
        """Build a card from the best-scoring point of a product.

        A local image ref is resolved by `visearch.core.media.locate_photo` (the same answer the
        /media route serves), so adapters can upload the file; URLs are left for the messenger to fetch.
        """
        p = hit.payload
        local = locate_photo(p, Path(image_root) if image_root else None, Path(uploads_root) if uploads_root else None)
        return cls(
            product_id=str(p.get("product_id", "")),
            point_id=hit.point_id,
            title=str(p.get("title", "")),
            image=p.get("image"),
            price=p.get("price"),
            currency=p.get("currency"),
            url=p.get("url"),
            description=str(p.get("description") or ""),
            category=p.get("category"),
            brand=p.get("brand"),
            in_stock=bool(p.get("in_stock", True)),
            score=hit.score,
            signals=dict(hit.signals),
            rank_score=hit.score if hit.rank_score is None else hit.rank_score,
            image_file=str(local.file) if local.file else None,
        )

    @property
    def photo(self) -> PhotoLocation:
        """Where the card's photo is: the catalog's URL or the local file (see `visearch.core.media`)."""
        if self.image and is_url(self.image):
            return PhotoLocation(url=self.image)
        return PhotoLocation(file=Path(self.image_file) if self.image_file else None)


class SearchResult(BaseModel):
    """Cards in rank order; `cut_off` tells how many products were hidden by the relevance cut-off."""

    cards: list[Card]
    cut_off: int = 0
    min_score: float
    next_cursor: str | None = Field(None, description="pass as `Query.cursor` for the next page; None = last page")
    min_score_words: float | None = Field(
        None,
        description="the words signal's cut-off when a text query was also matched against the product words (then `min_score` is the image signal's, and cards are ordered by their fused `rank_score`)",
    )

    @property
    def no_match(self) -> bool:
        """True when nothing passed the cut-off: adapters say so instead of showing junk."""
        return not self.cards


class PointRecord(BaseModel):
    """One point to write: id, normalised image vector, optional text vector (the product's words), payload."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    id: str
    vector: list[float]
    payload: dict[str, Any]
    text_vector: list[float] | None = None


class Hit(BaseModel):
    """One scored point returned by a store (`signals`: each fused signal's cosine, see core.fusion)."""

    point_id: str
    score: float
    payload: dict[str, Any]
    signals: dict[str, float] = Field(default_factory=dict)
    rank_score: float | None = None  # what the ranking ordered by, when not `score` (fusion, colour boost)


class StoredPoint(BaseModel):
    """One point read back from a store (scroll, retrieve)."""

    point_id: str
    payload: dict[str, Any]
    vector: list[float] | None = None
    text_vector: list[float] | None = None


class CollectionInfo(BaseModel):
    """What a collection is: who built it and how big it is."""

    name: str
    encoder_id: str
    dim: int
    points: int
    backend: str
    text_dim: int | None = Field(
        None, description="dimension of the text vector (the catalog's words); None = image only"
    )


class Facets(BaseModel):
    """What a collection can be filtered by, with product counts (for /filters and the web page)."""

    products: int
    categories: dict[str, int] = Field(default_factory=dict)
    brands: dict[str, int] = Field(default_factory=dict)
    tags: dict[str, int] = Field(default_factory=dict)
    colours: dict[str, int] = Field(default_factory=dict)
    price_min: float | None = None
    price_max: float | None = None
    currencies: list[str] = Field(default_factory=list)
    in_stock: int = 0
