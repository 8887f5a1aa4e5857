"""Catalog readers: a source (CSV, JSON Lines; shop feeds next) becomes products with positions and row errors."""

from visearch.core.catalog.files import READERS, SUPPORTED, CatalogReader, read_catalog
from visearch.core.catalog.model import (
    Catalog,
    CatalogItem,
    CatalogRow,
    CatalogWarning,
    MentionedIds,
    RowError,
    SuspectRow,
    collect,
)
from visearch.core.catalog.records import product_from_record, validation_reason

__all__ = [
    "READERS",
    "SUPPORTED",
    "Catalog",
    "CatalogItem",
    "CatalogReader",
    "CatalogRow",
    "CatalogWarning",
    "MentionedIds",
    "RowError",
    "SuspectRow",
    "collect",
    "product_from_record",
    "read_catalog",
    "validation_reason",
]
