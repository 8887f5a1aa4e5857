"""Read a catalog (CSV or JSONL) into products, reporting bad rows by line instead of failing."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from core.domain import Product
from core.errors import CatalogError

KNOWN_COLUMNS = {"id", "title", "image", "images", "description", "price", "currency", "category",
                 "brand", "tags", "url", "in_stock"}
TRUE_WORDS = {"true", "yes", "y", "1", "in stock", "t"}
FALSE_WORDS = {"false", "no", "n", "0", "out of stock", "f"}
SUPPORTED = ".csv, .jsonl (or .ndjson)"


@dataclass(frozen=True)
class CatalogRow:
    """A product and the line of the catalog it came from."""

    line: int
    product: Product


@dataclass(frozen=True)
class RowError:
    """A row that could not become a product: where, which id (if any), why."""

    line: int
    product_id: str | None
    reason: str

    def __str__(self) -> str:
        who = f" ({self.product_id})" if self.product_id else ""
        return f"line {self.line}{who}: {self.reason}"


@dataclass
class CatalogReadResult:
    """Every good row as a product, every bad row as an error."""

    path: Path
    rows: list[CatalogRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


def read_catalog(path: Path) -> CatalogReadResult:
    """Parse the whole catalog; only an unreadable file or unknown format raises CatalogError."""
    suffix = path.suffix.lower()
    if suffix not in {".csv", ".jsonl", ".ndjson"}:
        raise CatalogError(f"{path}: unknown catalog format {suffix or '(no extension)'!r}; supported: {SUPPORTED}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise CatalogError(f"{path}: catalog file not found") from None
    except UnicodeDecodeError as exc:
        raise CatalogError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save the catalog as UTF-8") from None
    except OSError as exc:
        raise CatalogError(f"{path}: cannot read catalog: {exc.strerror or exc}") from None
    raw = _csv_records(path, text) if suffix == ".csv" else _jsonl_records(text)
    result = CatalogReadResult(path=path)
    first_line: dict[str, int] = {}
    for line, record in raw:
        if isinstance(record, str):  # a parse error already phrased
            result.errors.append(RowError(line, None, record))
            continue
        row = product_from_record(line, record)
        if isinstance(row, RowError):
            result.errors.append(row)
        elif row.product.id in first_line:
            result.errors.append(RowError(line, row.product.id, f"duplicate id, first seen on line {first_line[row.product.id]}"))
        else:
            first_line[row.product.id] = line
            result.rows.append(row)
    return result


def _csv_records(path: Path, text: str) -> list[tuple[int, dict[str, Any] | str]]:
    """CSV rows with the line each row starts on (quoted fields may span lines)."""
    reader = csv.DictReader(text.splitlines(keepends=True))
    if not reader.fieldnames:
        raise CatalogError(f"{path}: empty catalog (no header row)")
    header = {name.strip().lower() for name in reader.fieldnames if name}
    missing = {"id", "title"} - header
    if missing:
        raise CatalogError(f"{path}: the header has no {', '.join(sorted(missing))} column (found: {', '.join(sorted(header))})")
    records: list[tuple[int, dict[str, Any] | str]] = []
    start = reader.line_num + 1
    try:
        for record in reader:
            if None in record:
                records.append((start, f"{len(record[None]) } more field(s) than the header has"))  # type: ignore[index]
            elif any((v or "").strip() for v in record.values()):
                records.append((start, {k.strip().lower(): v for k, v in record.items() if k}))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise CatalogError(f"{path}:{reader.line_num}: broken CSV ({exc})") from None
    return records


def _jsonl_records(text: str) -> list[tuple[int, dict[str, Any] | str]]:
    """One JSON object per line; blank lines ignored; bad JSON is a row error."""
    records: list[tuple[int, dict[str, Any] | str]] = []
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            records.append((line, f"invalid JSON: {exc.msg} (column {exc.colno})"))
            continue
        if not isinstance(value, dict):
            records.append((line, f"expected a JSON object, got {type(value).__name__}"))
            continue
        records.append((line, {str(k).strip().lower(): v for k, v in value.items()}))
    return records


def product_from_record(line: int, record: dict[str, Any]) -> CatalogRow | RowError:
    """Turn one raw record into a Product; every problem becomes a one-line reason."""
    product_id = _text(record.get("id"))
    try:
        images = _list(record.get("images") if record.get("images") not in (None, "") else record.get("image"))
        fields: dict[str, Any] = {
            "id": product_id,
            "title": _text(record.get("title")),
            "description": _text(record.get("description")),
            "price": _price(record.get("price")),
            "currency": _text(record.get("currency")) or None,
            "category": _text(record.get("category")) or None,
            "brand": _text(record.get("brand")) or None,
            "tags": _list(record.get("tags")),
            "url": _text(record.get("url")) or None,
            "in_stock": _bool(record.get("in_stock")),
            "images": images,
            "extra": {k: v for k, v in record.items() if k not in KNOWN_COLUMNS and v not in (None, "")},
        }
    except ValueError as exc:
        return RowError(line, product_id or None, str(exc))
    if not product_id:
        return RowError(line, None, "missing id")
    if not fields["title"]:
        return RowError(line, product_id, "missing title")
    try:
        return CatalogRow(line, Product(**fields))
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        return RowError(line, product_id, f"{where}: {err['msg']}")


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _list(value: Any) -> list[str]:
    """`a|b` in CSV, a JSON list in JSONL, or a single value."""
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value).split("|") if part.strip()]


def _price(value: Any) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ValueError(f"price: not a number ({value!r})")
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip().replace(" ", "")
    if "," in text and "." not in text:
        text = text.replace(",", ".")
    try:
        price = float(text)
    except ValueError:
        raise ValueError(f"price: not a number ({value!r})") from None
    if price != price or price in (float("inf"), float("-inf")):
        raise ValueError(f"price: not a number ({value!r})")
    return price


def _bool(value: Any) -> bool:
    if value is None or value == "":
        return True
    if isinstance(value, bool):
        return value
    word = str(value).strip().casefold()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"in_stock: expected true/false/yes/no/1/0, got {value!r}")
