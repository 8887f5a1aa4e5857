"""One raw record (column -> value, from a CSV row or a JSON object) into a `Product`, or the reasons it cannot be.

Shared by the readers whose rows are flat records (CSV, JSON Lines); every problem on a row
becomes one short reason, so one pass over the report fixes the whole row.
"""

from __future__ import annotations

import math
import re
from typing import Any

from pydantic import ValidationError

from visearch.core.catalog.model import CatalogRow, CatalogWarning, RowError
from visearch.core.domain import RESERVED_PAYLOAD_KEYS, Product

#: columns that map to Product fields (matched case-insensitively); everything else goes to `extra`
KNOWN_COLUMNS = frozenset(
    {
        "id",
        "title",
        "image",
        "images",
        "description",
        "price",
        "currency",
        "category",
        "brand",
        "tags",
        "url",
        "group_id",
        "in_stock",
    }
)
#: payload keys the indexer writes itself: a catalog column with one of these names would be overwritten
RESERVED_COLUMNS = RESERVED_PAYLOAD_KEYS - KNOWN_COLUMNS | {"extra"}
TRUE_WORDS = frozenset({"true", "yes", "y", "1", "t", "in stock"})
FALSE_WORDS = frozenset({"false", "no", "n", "0", "f", "out of stock"})

_AMBIGUOUS_THOUSANDS = re.compile(r"^-?\d{1,3},\d{3}$")
_GROUPED = re.compile(r"-?\d{1,3}(?:,\d{3}){2,}|-?\d{1,3}(?:\.\d{3}){2,}")


def column_name(name: str) -> str:
    return name.strip()


def reserved_warnings(names: list[str]) -> list[CatalogWarning]:
    """A warning for each column whose name the indexer writes itself (its values would be overwritten)."""
    return [
        CatalogWarning(f"column {name!r} is a name the indexer uses internally; its values are ignored")
        for name in names
        if name.lower() in RESERVED_COLUMNS
    ]


def json_type(value: Any) -> str:
    return {list: "a list", str: "a string", int: "a number", float: "a number", bool: "true/false"}.get(
        type(value), "null" if value is None else type(value).__name__
    )


def product_from_record(line: int | None, record: dict[str, Any]) -> CatalogRow | RowError:
    """Turn one raw record (column -> value) into a Product; every problem becomes a short reason."""
    known = {k.lower(): v for k, v in record.items() if k.lower() in KNOWN_COLUMNS}
    reasons: list[str] = []

    def take(name: str, parse: Any) -> Any:
        try:
            return parse(known.get(name), name)
        except ValueError as exc:
            reasons.append(str(exc))
            return None

    product_id = take("id", _text)
    title = take("title", _text)
    if not product_id and not any(r.startswith("id:") for r in reasons):
        reasons.insert(0, "missing id")
    if not title and not any(r.startswith("title:") for r in reasons):
        reasons.append("missing title")
    images = (take("image", _list) or []) + (take("images", _list) or [])
    fields: dict[str, Any] = {
        "id": product_id,
        "title": title,
        "description": take("description", _text) or "",
        "price": take("price", parse_price),
        "currency": take("currency", _text) or None,
        "category": take("category", _text) or None,
        "brand": take("brand", _text) or None,
        "tags": take("tags", _list) or [],
        "url": take("url", _text) or None,
        "group_id": take("group_id", _text) or None,
        "in_stock": take("in_stock", _bool),
        "images": list(dict.fromkeys(images)),  # the same image twice is one image
        "extra": {
            k: v
            for k, v in record.items()
            if k.lower() not in KNOWN_COLUMNS and k.lower() not in RESERVED_COLUMNS and v not in (None, "")
        },
    }
    if fields["in_stock"] is None:
        fields["in_stock"] = True
    product_id = product_id or None
    if reasons:
        return RowError(line, product_id, "; ".join(reasons))
    try:
        return CatalogRow(line, Product(**fields))
    except ValidationError as exc:
        return RowError(line, product_id, validation_reason(exc))


def validation_reason(exc: ValidationError) -> str:
    """Pydantic's errors as `field: message` pairs, one short line."""
    parts = []
    for err in exc.errors():
        loc = err.get("loc", ())
        where = str(loc[0]) if loc else "row"
        for part in loc[1:]:
            where += f"[{part}]" if isinstance(part, int) else f".{part}"
        parts.append(f"{where}: {str(err['msg']).removeprefix('Value error, ')}")
    return "; ".join(parts)


def _text(value: Any, name: str) -> str:
    """A text field: strings and numbers are fine (an id of 5 is "5"); lists, objects, true/false are not."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"{name}: expected text, got {json_type(value)}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _list(value: Any, name: str) -> list[str]:
    """`a|b` in CSV, a JSON list in JSONL, or a single value."""
    if value is None or value == "":
        return []
    if isinstance(value, list):
        items = []
        for item in value:
            if item is None:
                continue
            if isinstance(item, (dict, list, bool)):
                raise ValueError(f"{name}: expected a list of text, found {json_type(item)} in it")
            if str(item).strip():
                items.append(str(item).strip())
        return items
    if isinstance(value, (dict, bool)):
        raise ValueError(f"{name}: expected text or a list, got {json_type(value)}")
    return [part.strip() for part in str(value).split("|") if part.strip()]


def parse_price(value: Any, name: str) -> float | None:
    """Numbers as written in shops: `12.50`, `12,50`, `1 234,50`, `1,234.50`; never a guess."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ValueError(f"{name}: not a number ({value!r})")
    if isinstance(value, (int, float)):
        price = float(value)
    elif isinstance(value, str):
        text = value.strip().replace("\u00a0", "").replace("\u202f", "").replace(" ", "").replace("_", "")
        if _AMBIGUOUS_THOUSANDS.match(text):
            raise ValueError(
                f"{name}: ambiguous number {value!r} (thousands or decimals?); "
                f"write {text.replace(',', '')} or {text.replace(',', '.')}"
            )
        if "," in text and "." in text:
            # the last separator is the decimal one: 1,234.50 or 1.234,50
            text = (
                text.replace(",", "") if text.rfind(".") > text.rfind(",") else text.replace(".", "").replace(",", ".")
            )
        elif _GROUPED.fullmatch(text):
            text = re.sub(r"[,.]", "", text)  # 12,345,678 or 12.345.678: thousands only
        elif text.count(",") == 1:
            text = text.replace(",", ".")
        try:
            price = float(text)
        except ValueError:
            raise ValueError(f"{name}: not a number ({value!r})") from None
    else:
        raise ValueError(f"{name}: not a number ({json_type(value)})")
    if not math.isfinite(price):
        raise ValueError(f"{name}: not a number ({value!r})")
    if price < 0:
        raise ValueError(f"{name}: must not be negative ({value!r})")
    return price


def _bool(value: Any, name: str) -> bool | None:
    """true/false/yes/no/1/0 (any case); empty means unset."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    word = str(value).strip().casefold()
    if not word:
        return None
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"{name}: expected true/false/yes/no/1/0, got {value!r}")
