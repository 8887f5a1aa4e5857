"""CSV catalogs: a header row with at least id and title, one product a row.

Parsed strictly: a quote never closed, or text after a closing quote, stops the whole file
(`CatalogError` naming the line the row starts on) instead of silently swallowing the rows after
it. A row whose quoted field looks like it swallowed other rows is an error of its own, and so is
each row it swallowed (`sync` then deletes nothing).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from visearch.core.catalog.model import CatalogItem, MentionedIds, RowError, SuspectRow
from visearch.core.catalog.records import (
    column_name,
    product_from_record,
    reserved_warnings,
)
from visearch.core.errors import CatalogError

#: what `read_catalog` says a CSV catalog must look like
CSV_SHAPE = "CSV (.csv, header row with at least id,title)"


def read_csv(text: str, source: str) -> Iterator[CatalogItem]:
    """Each row as a product or an error, with the line it starts on (quoted fields may span lines;
    blank lines are skipped), plus the header's warnings and the ids found on every line.

    `newline=""` keeps U+2028 and friends inside fields: only \\n, \\r and \\r\\n end a line.
    Parsed strictly: a quote never closed, or text after a closing quote, stops the whole file
    (`CatalogError` naming the line the row starts on) instead of silently swallowing the rows after it.
    """
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    names = _read_header(reader, source)
    lowered = [n.lower() for n in names]
    yield from reserved_warnings(names)
    yield MentionedIds(frozenset(_ids_on_lines(text)))

    start = reader.line_num + 1
    while (cells := _next_row(reader, text, source, start)) is not None:
        line, start = start, reader.line_num + 1
        if any(c.strip() for c in cells):  # else a blank line (or a row of empty cells)
            yield from _row_items(line, cells, names, lowered)


class _RowReader(Protocol):
    """What `csv.reader` returns, as this module uses it: rows, and the line the last one ended on."""

    line_num: int

    def __next__(self) -> list[str]: ...


def _read_header(reader: _RowReader, source: str) -> list[str]:
    """The header's column names; `CatalogError` for a broken, empty or repeating header, or one without id and title."""
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise CatalogError(f"{source}:1: broken CSV header ({exc})") from None
    if not header or not any(h.strip() for h in header):
        raise CatalogError(f"{source}: empty catalog (no header row); expected {CSV_SHAPE}")
    names = [column_name(h) for h in header]
    lowered = [n.lower() for n in names]
    dupes = sorted({n for n in lowered if n and lowered.count(n) > 1})
    if dupes:
        raise CatalogError(f"{source}: the header repeats column(s) {', '.join(dupes)}; each column must appear once")
    missing = {"id", "title"} - set(lowered)
    if missing:
        found = ", ".join(n for n in names if n) or "nothing"
        raise CatalogError(f"{source}: the header has no {', '.join(sorted(missing))} column (found: {found})")
    return names


def _next_row(reader: _RowReader, text: str, source: str, start: int) -> list[str] | None:
    """The row starting on line `start`, None at the end; broken CSV is a `CatalogError` that stops the file."""
    try:
        return next(reader)
    except StopIteration:
        return None
    except csv.Error as exc:
        if _quote_left_open(text, start):
            raise CatalogError(
                f"{source}:{start}: a quoted field in the row starting on line {start} is never "
                "closed, so every line after it would be read as one field; close the quote "
                '(a quote inside a field is written twice: "")'
            ) from None
        raise CatalogError(
            f"{source}:{start}: broken CSV in the row starting on line {start} ({exc}); "
            "a field with a quote must be quoted whole, with inner quotes doubled"
        ) from None


def _row_items(line: int, cells: list[str], names: list[str], lowered: list[str]) -> Iterator[CatalogItem]:
    """What one non-blank row yields: its product (after a `SuspectRow` when a one-line field spans lines),
    or structural errors when a quote swallowed other rows or the row has non-empty surplus fields."""
    swallowed = _swallowed_line(cells, names, lowered)
    if swallowed is not None:
        yield from _swallowed_errors(line, cells[lowered.index("id")].strip() or None, swallowed)
        return
    if any(
        ("\n" in value or "\r" in value) and name != "description" for name, value in zip(lowered, cells, strict=False)
    ):
        yield SuspectRow(line)
    if any(c.strip() for c in cells[len(names) :]):
        product_id = cells[lowered.index("id")].strip() or None
        yield RowError(
            line,
            product_id,
            f"{len(cells)} fields but the header has {len(names)} (a field with a comma or | must be quoted)",
            structural=True,
        )
        return
    # a short row (trailing empty fields left out) leaves its last columns unset; a long row's surplus is empty here
    yield product_from_record(line, {name: value for name, value in zip(names, cells, strict=False) if name})


def _swallowed_errors(line: int, product_id: str | None, swallowed: _Swallowed) -> Iterator[RowError]:
    """The row whose quoted field holds other rows, then each row it swallowed: all structural errors."""
    yield RowError(
        line,
        product_id,
        f"a quoted field spans {swallowed.span} lines and holds what looks "
        "like other rows: a quote is probably not closed where it should be",
        structural=True,
    )
    opened = line + swallowed.opened
    for offset, swallowed_id in swallowed.rows:
        yield RowError(
            opened + offset,
            swallowed_id,
            f"this row was swallowed by the quote opened on line {opened}: close that quote",
            structural=True,
        )


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
    for name, value in zip(lowered, cells, strict=False):  # rows may be shorter or longer than the header
        inner = _LINE_BREAK.split(value)
        if len(inner) == 1:
            continue
        wide = any(line.count(",") >= len(names) - 1 for line in inner[1:])
        rows = [
            (offset, found)
            for offset, line in enumerate(inner[1:], start=1)
            if (found := _row_id(line, lowered)) is not None
        ]
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
