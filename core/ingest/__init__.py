"""Ingest: products from any catalog reader (or an API call) written into the collection."""

from visearch.core.ingest.planning import (
    ExistingPoint,
    SyncPlan,
    plan_sync,
    refuse_mass_delete,
)
from visearch.core.ingest.progress import Progress, SilentProgress
from visearch.core.ingest.service import IngestService, index_catalog
from visearch.core.ingest.summary import IndexSummary, Problem
from visearch.core.ingest.writing import product_hash

__all__ = [
    "ExistingPoint",
    "IndexSummary",
    "IngestService",
    "Problem",
    "Progress",
    "SilentProgress",
    "SyncPlan",
    "index_catalog",
    "plan_sync",
    "product_hash",
    "refuse_mass_delete",
]
