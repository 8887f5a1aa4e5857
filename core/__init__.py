"""visearch engine: configuration, domain types, encoders, vector store, search and ingest services.

`visearch.core` knows no messenger and no CLI; every front end depends on it, never the reverse.
The names below are its public surface (`from visearch.core import SearchService, Settings`); they
are imported on first use, so `import visearch.core.domain` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from visearch.core.lazy import lazy_exports

if TYPE_CHECKING:
    from visearch.core.catalog import Catalog, read_catalog
    from visearch.core.config import Settings, load_settings
    from visearch.core.domain import Card, Filters, Product, Query, SearchResult
    from visearch.core.errors import VisearchError
    from visearch.core.ingest import IngestService
    from visearch.core.search import SearchService
    from visearch.core.store.factory import open_store

#: public name -> the module that defines it
_PUBLIC = {
    "Card": "visearch.core.domain",
    "Catalog": "visearch.core.catalog",
    "Filters": "visearch.core.domain",
    "IngestService": "visearch.core.ingest",
    "Product": "visearch.core.domain",
    "Query": "visearch.core.domain",
    "SearchResult": "visearch.core.domain",
    "SearchService": "visearch.core.search",
    "Settings": "visearch.core.config",
    "VisearchError": "visearch.core.errors",
    "load_settings": "visearch.core.config",
    "open_store": "visearch.core.store.factory",
    "read_catalog": "visearch.core.catalog",
}

__all__ = [
    "Card",
    "Catalog",
    "Filters",
    "IngestService",
    "Product",
    "Query",
    "SearchResult",
    "SearchService",
    "Settings",
    "VisearchError",
    "load_settings",
    "open_store",
    "read_catalog",
]


__getattr__ = lazy_exports(__name__, _PUBLIC)
