"""What a catalog reader yields, and the whole catalog the ingest service writes.

A reader (CSV, JSON Lines, a shop feed) is a stream of `CatalogItem`s: each product with the
position it came from, each row that could not become one, and what the reader noticed about the
source as a whole (warnings, ids seen on any line, rows that may have swallowed others). `collect`
folds any such stream into a `Catalog`; the ingest service never asks where it came from.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from visearch.core.domain import Product
from visearch.core.errors import CatalogError


@dataclass(frozen=True)
class CatalogRow:
    """A product and where it starts in its source: the line of a file or feed (None: no lines, e.g. an API call)."""

    line: int | None
    product: Product


@dataclass(frozen=True)
class RowError:
    """A row that could not become a product: where, which id (if readable), why."""

    line: int | None
    product_id: str | None
    reason: str
    #: the row's shape is broken (wrong field count, invalid JSON, rows swallowed by a quote): it may
    #: hide other rows, so `sync` deletes nothing while the source has one
    structural: bool = False

    def __str__(self) -> str:
        who = f" ({self.product_id})" if self.product_id else ""
        where = f"line {self.line}" if self.line is not None else "row"
        return f"{where}{who}: {self.reason}"


@dataclass(frozen=True)
class CatalogWarning:
    """Something about the whole source worth telling (a column the indexer ignores)."""

    text: str


@dataclass(frozen=True)
class MentionedIds:
    """Ids found anywhere in the source, read line by line: `sync` never deletes them, whatever the
    rows around them did to the parse."""

    ids: frozenset[str]


@dataclass(frozen=True)
class SuspectRow:
    """A row that parsed, but looks like an unclosed quote paired with a later one (a quoted field
    spanning lines outside `description`): `sync` deletes nothing while there is one."""

    line: int


CatalogItem = CatalogRow | RowError | CatalogWarning | MentionedIds | SuspectRow


@dataclass
class Catalog:
    """Every good row as a product, every bad row as an error, plus what was noticed about the source."""

    #: what the products came from, for messages: a file path, "API request"
    source: str
    rows: list[CatalogRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    mentioned_ids: set[str] = field(default_factory=set)
    suspect_lines: list[int] = field(default_factory=list)

    @property
    def structurally_sound(self) -> bool:
        """No broken row shape and no row that may have swallowed others."""
        return not self.suspect_lines and not any(err.structural for err in self.errors)

    @property
    def products(self) -> list[Product]:
        return [row.product for row in self.rows]

    def named_ids(self) -> set[str]:
        """Every product id the source names: good rows, broken rows with a readable id, any line."""
        return (
            {row.product.id for row in self.rows}
            | {e.product_id for e in self.errors if e.product_id}
            | self.mentioned_ids
        )


def collect(source: str, items: Iterable[CatalogItem], *, require_rows: bool = True) -> Catalog:
    """Fold a reader's stream into a `Catalog`; a product id seen twice is an error on its second row.

    Raises `CatalogError` when `require_rows` and the stream held no row at all (an empty export
    must not look like a shop with nothing in it)."""
    catalog = Catalog(source=source)
    first_line: dict[str, int | None] = {}
    seen_any = False
    for item in items:
        if isinstance(item, CatalogRow):
            seen_any = True
            _add_row(catalog, item, first_line)
        elif isinstance(item, RowError):
            seen_any = True
            catalog.errors.append(item)
        elif isinstance(item, CatalogWarning):
            catalog.warnings.append(item.text)
        elif isinstance(item, MentionedIds):
            catalog.mentioned_ids |= item.ids
        else:
            catalog.suspect_lines.append(item.line)
    if require_rows and not seen_any:
        raise CatalogError(f"{source}: the catalog has no product rows")
    return catalog


def _add_row(catalog: Catalog, row: CatalogRow, first_line: dict[str, int | None]) -> None:
    product_id = row.product.id
    if product_id in first_line:
        first = first_line[product_id]
        seen = f"first seen on line {first}" if first is not None else "listed before"
        catalog.errors.append(RowError(row.line, product_id, f"duplicate id, {seen}"))
        return
    first_line[product_id] = row.line
    catalog.rows.append(row)
