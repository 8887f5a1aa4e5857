"""One translation of `Filters` into a neutral condition tree; each backend adapts the tree to its client.

The rules (which payload field a filter reads, that every tag must be present, that excluded products
are a `must_not`) live here once; `edge.py` and `server.py` only turn each condition into their own
client's types, so the two backends cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from visearch.core.domain import Filters


@dataclass(frozen=True)
class AnyOf:
    """The payload field holds one of these keywords (for a list field: any of its values does)."""

    field: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Equals:
    """The payload field holds exactly this keyword or bool."""

    field: str
    value: str | bool


@dataclass(frozen=True)
class Between:
    """The payload field is a number within the bounds (None: unbounded on that side)."""

    field: str
    gte: float | None
    lte: float | None


Condition = AnyOf | Equals | Between


@dataclass(frozen=True)
class ConditionTree:
    """Every `must` condition holds and no `must_not` one does."""

    must: tuple[Condition, ...] = ()
    must_not: tuple[Condition, ...] = ()


def filter_conditions(filters: Filters | None) -> ConditionTree | None:
    """The conditions `Filters` stands for; None when there is nothing to filter on."""
    if filters is None or filters.is_empty():
        return None
    must: list[Condition] = []
    if filters.categories:
        must.append(AnyOf("f_category", tuple(filters.categories)))
    if filters.brands:
        must.append(AnyOf("f_brand", tuple(filters.brands)))
    must.extend(Equals("f_tags", tag) for tag in filters.tags)  # every tag must be present: one condition per tag
    if filters.colours:
        must.append(AnyOf("colours", tuple(filters.colours)))
    if filters.price_min is not None or filters.price_max is not None:
        must.append(Between("price", filters.price_min, filters.price_max))
    if filters.in_stock is not None:
        must.append(Equals("in_stock", bool(filters.in_stock)))
    must_not: list[Condition] = []
    if filters.exclude_product_ids:
        must_not.append(AnyOf("product_id", tuple(filters.exclude_product_ids)))
    if not must and not must_not:
        return None
    return ConditionTree(must=tuple(must), must_not=tuple(must_not))


def products_condition(product_ids: Sequence[str]) -> ConditionTree:
    """The points of these products (deletes and scrolls by product)."""
    return ConditionTree(must=(AnyOf("product_id", tuple(str(p) for p in product_ids)),))
