"""Google Merchant Center / Meta catalog feeds in their text form: tab-separated (Google) or CSV (Meta).

The header names the attributes of the XML feed (`id`, `title`, `image_link`, `price`, ...), in any
case, with or without the `g:` prefix, with the older English spelling (`image link`) or Merchant
Center's template form (`Image link [image_link]`). Each row becomes the same attribute values an
XML item gives and goes through `merchant.merchant_product`, so both forms give the same product
for the same data. The text is read incrementally (a 500,000-row feed never sits in memory).
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from visearch.core.catalog.merchant import merchant_product
from visearch.core.catalog.model import CatalogItem, RowError, SuspectRow
from visearch.core.errors import CatalogError

#: the attributes the text form is read for (the XML feed's names); other columns are ignored
MERCHANT_ATTRIBUTES = frozenset(
    {
        "id",
        "title",
        "description",
        "link",
        "image_link",
        "additional_image_link",
        "price",
        "sale_price",
        "sale_price_effective_date",
        "availability",
        "brand",
        "product_type",
        "google_product_category",
        "item_group_id",
        "color",
        "size",
        "gender",
        "material",
        "pattern",
        "age_group",
        "condition",
        "gtin",
        "mpn",
    }
)
#: besides id and title, a Merchant/Meta header has at least one of these
MERCHANT_HINTS = frozenset({"image_link", "link", "availability", "price"})
#: columns of visearch's own CSV that a Merchant/Meta feed does not have (it says `image_link`, `link`,
#: `availability`): a header with one of them is visearch's CSV, even when it also has a `price` column
VISEARCH_COLUMNS = frozenset({"image", "images", "url", "in_stock", "currency", "category", "tags"})
#: attributes whose text form holds several values in one field, comma-separated
LIST_ATTRIBUTES = frozenset({"additional_image_link"})
_TEMPLATE_NAME = re.compile(r"\[([^\[\]]+)\]\s*$")


def attribute_name(header: str) -> str:
    """A header cell as the attribute it names: `g:price` -> `price`, `Image Link` -> `image_link`,
    `Image link [image_link]` (Merchant Center's template) -> `image_link`."""
    name = header.strip().lstrip("\ufeff")
    template = _TEMPLATE_NAME.search(name)
    if template:
        name = template.group(1)
    name = name.strip().casefold().removeprefix("g:")
    return "_".join(name.split())


def is_merchant_header(first_line: str) -> bool:
    """Is this header line a Merchant/Meta text feed's (else, visearch's own CSV)?

    Yes when, under the normalised names (`attribute_name`), it has `id` and `title` plus at least
    one of `image_link`, `link`, `availability`, `price`, and none of the columns only visearch's
    CSV has (`image`/`images`, `url`, `in_stock`, `currency`, `category`, `tags`): visearch's CSV
    may have `price` too, and its demo catalog's header (`id,title,image,...,price,...`) must stay CSV."""
    line = first_line.lstrip("\ufeff").split("\n", 1)[0].rstrip("\r")
    try:
        header = next(csv.reader([line], delimiter=_delimiter(line)), [])
    except csv.Error:
        return False
    names = {attribute_name(cell) for cell in header}
    return {"id", "title"} <= names and bool(names & MERCHANT_HINTS) and not names & VISEARCH_COLUMNS


def read_merchant_table(stream: BinaryIO, source: str, *, currency: str | None = None) -> Iterator[CatalogItem]:
    """Each row of a Merchant/Meta text feed as a product or a row error, with the line the row starts on.

    UTF-8 (a BOM is fine); tab-separated or comma-separated, told from the header line (more tabs than
    commas: tabs). Quoted fields may hold tabs, commas and line breaks (inner quotes doubled), as
    Merchant Center's "quoted fields" and Meta's CSV have them. `currency` is for prices written
    without one. Raises `CatalogError` (naming `source`) for text that is not UTF-8, a header without
    `id` and `title`, or a quote that is never closed (every row after it would be one field): then
    nothing from the feed must be indexed or deleted."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    lines = _LineCounter(text)
    try:
        yield from _read_rows(lines, source, currency)
    except UnicodeDecodeError as exc:
        raise CatalogError(
            f"{source}: not UTF-8 text ({exc.reason} after line {lines.count}); save the feed as UTF-8"
        ) from None
    finally:
        text.detach()  # the caller's stream stays open: closing it is the caller's business


class _LineCounter:
    """The text's physical lines, counting them (for a decoding error's position)."""

    def __init__(self, text: Iterable[str]) -> None:
        self.count = 0
        self._text = iter(text)

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = next(self._text)
        self.count += 1
        return line


def _read_rows(lines: _LineCounter, source: str, currency: str | None) -> Iterator[CatalogItem]:
    header_line = next(lines, "")
    if not header_line.strip():
        raise CatalogError(f"{source}: empty feed (no header row); expected a header like id<TAB>title<TAB>...")
    reader = csv.reader(itertools.chain([header_line], lines), delimiter=_delimiter(header_line), strict=True)
    names = _header(reader, source)
    start = reader.line_num + 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise CatalogError(
                f"{source}:{start}: broken quoting in the row starting on line {start} ({exc}); a field with a "
                'quote must be quoted whole, with inner quotes doubled (12"" pan); nothing was read from the feed'
            ) from None
        line, start = start, reader.line_num + 1
        if any(cell.strip() for cell in cells):  # else a blank line
            yield from _row_items(line, cells, names, currency)


def _header(reader: Iterator[list[str]], source: str) -> list[str]:
    """The header's attribute names; `CatalogError` for a broken header or one without id and title."""
    try:
        header = next(reader, [])
    except csv.Error as exc:
        raise CatalogError(f"{source}:1: broken header row ({exc})") from None
    names = [attribute_name(cell) for cell in header]
    missing = {"id", "title"} - set(names)
    if missing:
        found = ", ".join(cell.strip() for cell in header if cell.strip()) or "nothing"
        raise CatalogError(
            f"{source}: the header has no {' or '.join(sorted(missing))} column (found: {found}); "
            "a Merchant/Meta text feed names its columns id, title, link, image_link, price, ..."
        )
    return names


def _row_items(line: int, cells: list[str], names: list[str], currency: str | None) -> Iterator[CatalogItem]:
    """One non-blank row: its product or row error (a `SuspectRow` first when a one-line field spans lines)."""
    product_id = cells[names.index("id")].strip() if names.index("id") < len(cells) else ""
    if any(cell.strip() for cell in cells[len(names) :]):
        yield RowError(
            line,
            product_id or None,
            f"{len(cells)} fields but the header has {len(names)} (a field with a tab or comma must be quoted)",
            structural=True,
        )
        return
    if any(("\n" in cell or "\r" in cell) and name != "description" for name, cell in zip(names, cells, strict=False)):
        yield SuspectRow(line)  # a quote left open that paired with a later one may have swallowed rows
    values: dict[str, list[str]] = {}
    for name, cell in zip(names, cells, strict=False):  # a short row leaves its last columns unset
        if name not in MERCHANT_ATTRIBUTES:
            continue
        parts = cell.split(",") if name in LIST_ATTRIBUTES else [cell]
        values.setdefault(name, []).extend(part.strip() for part in parts)
    yield merchant_product(values, line, currency)


def _delimiter(header_line: str) -> str:
    """Tab for Google's tab-separated form, comma for Meta's CSV: whichever the header holds more of."""
    return "\t" if header_line.count("\t") > header_line.count(",") else ","
