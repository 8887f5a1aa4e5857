"""Read a catalog (CSV or JSONL) into products, reporting bad rows by line instead of failing.

Only a file that cannot be read at all raises `CatalogError` (missing, not UTF-8, unknown
format, no id/title column, ambiguous header, no rows): then nothing must be indexed or
deleted. Everything row-level becomes a `RowError` with the line number and every reason
found on that row, so one pass over the report fixes the whole row.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from visearch.core.domain import RESERVED_PAYLOAD_KEYS, Product
from visearch.core.errors import CatalogError

#: columns that map to Product fields (matched case-insensitively); everything else goes to `extra`
KNOWN_COLUMNS = frozenset({"id", "title", "image", "images", "description", "price", "currency", "category",
                           "brand", "tags", "url", "in_stock"})
#: payload keys the indexer writes itself: a catalog column with one of these names would be overwritten
RESERVED_COLUMNS = RESERVED_PAYLOAD_KEYS - KNOWN_COLUMNS | {"extra"}
TRUE_WORDS = frozenset({"true", "yes", "y", "1", "t", "in stock"})
FALSE_WORDS = frozenset({"false", "no", "n", "0", "f", "out of stock"})
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
SUPPORTED = "CSV (.csv, header row with at least id,title) or JSON Lines (.jsonl / .ndjson, one object per line)"

_AMBIGUOUS_THOUSANDS = re.compile(r"^-?\d{1,3},\d{3}$")
_GROUPED = re.compile(r"-?\d{1,3}(?:,\d{3}){2,}|-?\d{1,3}(?:\.\d{3}){2,}")


@dataclass(frozen=True)
class CatalogRow:
    """A product and the line of the catalog it came from."""

    line: int
    product: Product


@dataclass(frozen=True)
class RowError:
    """A row that could not become a product: where, which id (if readable), why."""

    line: int
    product_id: str | None
    reason: str
    #: the row's shape is broken (wrong field count, invalid JSON, rows swallowed by a quote): it may
    #: hide other rows, so `sync` deletes nothing while the file has one
    structural: bool = False

    def __str__(self) -> str:
        who = f" ({self.product_id})" if self.product_id else ""
        return f"line {self.line}{who}: {self.reason}"


@dataclass
class CatalogReadResult:
    """Every good row as a product, every bad row as an error, plus file-level warnings."""

    path: Path
    rows: list[CatalogRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: ids found on any line of the file read on its own: `sync` never deletes them, whatever the
    #: rows around them did to the parse
    mentioned_ids: set[str] = field(default_factory=set)
    #: rows with a quoted field spanning lines outside `description`: legal CSV, but what an unclosed
    #: quote pairing with a later one looks like, so `sync` deletes nothing while there is one
    suspect_lines: list[int] = field(default_factory=list)

    @property
    def structurally_sound(self) -> bool:
        """No broken row shape and no row that may have swallowed others."""
        return not self.suspect_lines and not any(err.structural for err in self.errors)

    @property
    def products(self) -> list[Product]:
        return [row.product for row in self.rows]


def read_catalog(path: Path) -> CatalogReadResult:
    """Parse the whole catalog; only an unreadable file or unknown format raises CatalogError."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise CatalogError(
            f"{path}: unknown catalog format {path.suffix or '(no extension)'!r}; supported: {SUPPORTED}"
        )
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise CatalogError(f"{path}: catalog file not found") from None
    except IsADirectoryError:
        raise CatalogError(f"{path}: is a directory, not a catalog file") from None
    except UnicodeDecodeError as exc:
        raise CatalogError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save the catalog as UTF-8"
        ) from None
    except OSError as exc:
        raise CatalogError(f"{path}: cannot read catalog: {exc.strerror or exc}") from None

    result = CatalogReadResult(path=path)
    if fmt == "csv":
        records = _csv_records(path, text, result.warnings, result.suspect_lines)
        result.mentioned_ids = _ids_on_lines(text)
    else:
        records = _jsonl_records(text, result.warnings)
    first_line: dict[str, int] = {}
    seen_any = False
    for line, record in records:
        seen_any = True
        if isinstance(record, RowError):
            result.errors.append(record)
            continue
        row = product_from_record(line, record)
        if isinstance(row, RowError):
            result.errors.append(row)
        elif row.product.id in first_line:
            result.errors.append(
                RowError(line, row.product.id, f"duplicate id, first seen on line {first_line[row.product.id]}")
            )
        else:
            first_line[row.product.id] = line
            result.rows.append(row)
    if not seen_any:
        raise CatalogError(f"{path}: the catalog has no product rows")
    return result


# --- formats --------------------------------------------------------------------------------


def _csv_records(path: Path, text: str, warnings: list[str],
                 suspect_lines: list[int]) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    """CSV rows with the line each row starts on (quoted fields may span lines; blank lines are skipped).

    `newline=""` keeps U+2028 and friends inside fields: only \\n, \\r and \\r\\n end a line.
    Parsed strictly: a quote never closed, or text after a closing quote, stops the whole file
    (`CatalogError` naming the line the row starts on) instead of silently swallowing the rows after it.
    """
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise CatalogError(f"{path}:1: broken CSV header ({exc})") from None
    if not header or not any(h.strip() for h in header):
        raise CatalogError(f"{path}: empty catalog (no header row); expected {SUPPORTED}")
    names = [_column_name(h) for h in header]
    lowered = [n.lower() for n in names]
    dupes = sorted({n for n in lowered if n and lowered.count(n) > 1})
    if dupes:
        raise CatalogError(f"{path}: the header repeats column(s) {', '.join(dupes)}; each column must appear once")
    missing = {"id", "title"} - set(lowered)
    if missing:
        found = ", ".join(n for n in names if n) or "nothing"
        raise CatalogError(f"{path}: the header has no {', '.join(sorted(missing))} column (found: {found})")
    _warn_reserved(names, warnings)

    start = reader.line_num + 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if _quote_left_open(text, start):
                raise CatalogError(f"{path}:{start}: a quoted field in the row starting on line {start} is never "
                                   "closed, so every line after it would be read as one field; close the quote "
                                   "(a quote inside a field is written twice: \"\")") from None
            raise CatalogError(f"{path}:{start}: broken CSV in the row starting on line {start} ({exc}); "
                               "a field with a quote must be quoted whole, with inner quotes doubled") from None
        line, start = start, reader.line_num + 1
        if not any(c.strip() for c in cells):
            continue  # blank line (or a row of empty cells)
        swallowed = _swallowed_line(cells, names, lowered)
        if swallowed is not None:
            product_id = cells[lowered.index("id")].strip() or None
            yield line, RowError(line, product_id, f"a quoted field spans {swallowed.span} lines and holds what looks "
                                                   "like other rows: a quote is probably not closed where it should be",
                                 structural=True)
            opened = line + swallowed.opened
            for offset, swallowed_id in swallowed.rows:
                yield opened + offset, RowError(opened + offset, swallowed_id,
                                                f"this row was swallowed by the quote opened on line {opened}: "
                                                "close that quote", structural=True)
            continue
        if any(("\n" in value or "\r" in value) and name != "description" for name, value in zip(lowered, cells)):
            suspect_lines.append(line)
        if len(cells) > len(names):
            surplus = cells[len(names):]
            if any(c.strip() for c in surplus):
                product_id = cells[lowered.index("id")].strip() or None
                yield line, RowError(line, product_id,
                                     f"{len(cells)} fields but the header has {len(names)} "
                                     "(a field with a comma or | must be quoted)", structural=True)
                continue
        yield line, {name: value for name, value in zip(names, cells) if name}


def _jsonl_records(text: str, warnings: list[str]) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    """One JSON object per line; blank lines ignored; bad JSON is a row error.

    Split on \\n only: JSON strings may hold U+2028 or \\x85 unescaped, which `splitlines` would cut.
    """
    reserved_seen: set[str] = set()
    for line, raw in enumerate(text.split("\n"), start=1):
        raw = raw.rstrip("\r")
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            yield line, RowError(line, _salvage_id(raw), f"invalid JSON: {exc.msg} (column {exc.colno})",
                                 structural=True)
            continue
        if not isinstance(value, dict):
            yield line, RowError(line, None, f"expected a JSON object, got {_json_type(value)}")
            continue
        record = {_column_name(str(k)): v for k, v in value.items()}
        new = {k for k in record if k.lower() in RESERVED_COLUMNS} - reserved_seen
        if new:
            reserved_seen |= new
            _warn_reserved(sorted(new), warnings)
        yield line, record


#: a multi-line field in one of these columns is a quote left open, not a real value
_SINGLE_LINE_COLUMNS = frozenset({"id", "image", "images", "price", "currency", "url", "in_stock"})
#: what ends a physical line for the CSV reader (`newline=""`): not U+2028 and friends
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
#: an image cell as catalogs write it: an http(s) URL, or a file name with an image extension (and a query)
_IMAGE_REF = re.compile(r"https?://\S+|[^?#]*[^\s?#]\.(?:jpe?g|png|webp|gif|bmp)(?:\?\S*)?", re.IGNORECASE)


@dataclass(frozen=True)
class _Swallowed:
    """A multi-line field that looks like an unclosed quote, and the rows it holds."""

    #: physical lines from the row's first line to the line where the field's quote opens
    opened: int
    #: lines the field spans
    span: int
    #: (lines after the opening line, id) of each line inside the field that reads as a row of its own
    rows: list[tuple[int, str]]


def _swallowed_line(cells: list[str], names: list[str], lowered: list[str]) -> _Swallowed | None:
    """The field that looks like an unclosed quote that swallowed rows, or None: a line break in a
    one-line column, or a line inside the field that reads as a row (a whole row's commas, or an id
    and an image reference in their columns, as when rows leave their trailing empty fields out)."""
    opened = 0
    for name, value in zip(lowered, cells):
        inner = _LINE_BREAK.split(value)
        if len(inner) == 1:
            continue
        wide = any(line.count(",") >= len(names) - 1 for line in inner[1:])
        rows = [(offset, found) for offset, line in enumerate(inner[1:], start=1)
                if (found := _row_id(line, lowered)) is not None]
        if name in _SINGLE_LINE_COLUMNS or wide or rows:
            return _Swallowed(opened, len(inner), rows)
        opened += len(inner) - 1
    return None


def _row_id(line: str, lowered: list[str]) -> str | None:
    """The id of a line inside a quoted field when, read on its own as CSV, it is a row: an id cell
    and either a whole row's fields or an image reference in an image column."""
    try:
        cells = next(csv.reader([line]), [])
    except csv.Error:
        return None
    column = lowered.index("id")
    product_id = cells[column].strip() if len(cells) > column else ""
    if not product_id:
        return None
    if len(cells) >= len(lowered):
        return product_id
    for name in ("image", "images"):
        if name in lowered and len(cells) > lowered.index(name):
            refs = [ref.strip() for ref in cells[lowered.index(name)].split("|")]
            if any(ref and _IMAGE_REF.fullmatch(ref) for ref in refs):
                return product_id
    return None


def _quote_left_open(text: str, start: int) -> bool:
    """Whether the rest of the file from line `start` has an odd number of quotes (one never closed)."""
    rest = text.split("\n", start - 1)[-1] if start > 1 else text
    return rest.count('"') % 2 == 1


def _ids_on_lines(text: str) -> set[str]:
    """The id cell of every physical line parsed on its own, whatever quote came before it."""
    lines = text.splitlines()
    if not lines:
        return set()
    try:
        header = [h.strip().lower() for h in next(csv.reader([lines[0]]))]
    except (csv.Error, StopIteration):
        return set()
    if "id" not in header:
        return set()
    column = header.index("id")
    found: set[str] = set()
    for line in lines[1:]:
        try:
            cells = next(csv.reader([line]), [])
        except csv.Error:
            continue
        if len(cells) > column and cells[column].strip():
            found.add(cells[column].strip())
    return found


def _salvage_id(raw: str) -> str | None:
    """The `id` of a broken JSON line when it is plainly readable: keeps `sync` from deleting it."""
    match = re.search(r'"id"\s*:\s*(?:"([^"\\]{1,200})"|(-?\d{1,30})\s*[,}])', raw)
    if not match:
        return None
    return (match.group(1) or match.group(2) or "").strip() or None


def _column_name(name: str) -> str:
    return name.strip()


def _warn_reserved(names: list[str], warnings: list[str]) -> None:
    for name in names:
        if name.lower() in RESERVED_COLUMNS:
            warnings.append(f"column {name!r} is a name the indexer uses internally; its values are ignored")


def _json_type(value: Any) -> str:
    return {list: "a list", str: "a string", int: "a number", float: "a number", bool: "true/false"}.get(
        type(value), "null" if value is None else type(value).__name__
    )


# --- one record -----------------------------------------------------------------------------


def product_from_record(line: int, record: dict[str, Any]) -> CatalogRow | RowError:
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
        "price": take("price", _price),
        "currency": take("currency", _text) or None,
        "category": take("category", _text) or None,
        "brand": take("brand", _text) or None,
        "tags": take("tags", _list) or [],
        "url": take("url", _text) or None,
        "in_stock": take("in_stock", _bool),
        "images": list(dict.fromkeys(images)),  # the same image twice is one image
        "extra": {k: v for k, v in record.items()
                  if k.lower() not in KNOWN_COLUMNS and k.lower() not in RESERVED_COLUMNS and v not in (None, "")},
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
        raise ValueError(f"{name}: expected text, got {_json_type(value)}")
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
                raise ValueError(f"{name}: expected a list of text, found {_json_type(item)} in it")
            if str(item).strip():
                items.append(str(item).strip())
        return items
    if isinstance(value, (dict, bool)):
        raise ValueError(f"{name}: expected text or a list, got {_json_type(value)}")
    return [part.strip() for part in str(value).split("|") if part.strip()]


def _price(value: Any, name: str) -> float | None:
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
            raise ValueError(f"{name}: ambiguous number {value!r} (thousands or decimals?); "
                             f"write {text.replace(',', '')} or {text.replace(',', '.')}")
        if "," in text and "." in text:
            # the last separator is the decimal one: 1,234.50 or 1.234,50
            text = text.replace(",", "") if text.rfind(".") > text.rfind(",") else text.replace(".", "").replace(",", ".")
        elif _GROUPED.fullmatch(text):
            text = re.sub(r"[,.]", "", text)  # 12,345,678 or 12.345.678: thousands only
        elif text.count(",") == 1:
            text = text.replace(",", ".")
        try:
            price = float(text)
        except ValueError:
            raise ValueError(f"{name}: not a number ({value!r})") from None
    else:
        raise ValueError(f"{name}: not a number ({_json_type(value)})")
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
