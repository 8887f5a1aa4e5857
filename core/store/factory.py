"""Pick the configured vector store; that is all (the rules both backends share are in `schema.py`).

The backends are imported lazily so the embedded path never pays for importing
qdrant-client (and the server path never loads the edge engine).
"""

from __future__ import annotations

from visearch.core.config import Settings
from visearch.core.store.base import IndexSettings, VectorStore


def index_settings(settings: Settings) -> IndexSettings:
    """The vector-index part of the settings (`VISEARCH_HNSW_*`, `VISEARCH_QUANTIZATION*`)."""
    return IndexSettings(
        hnsw_m=settings.hnsw_m,
        hnsw_ef_construct=settings.hnsw_ef_construct,
        hnsw_ef=settings.hnsw_ef,
        quantization=settings.quantization,
        quantization_rescore=settings.quantization_rescore,
        quantization_oversampling=settings.quantization_oversampling,
        indexing_threshold_kb=settings.indexing_threshold_kb,
        vectors_on_disk=settings.vectors_on_disk,
        filtered=settings.filtered_search,
        hnsw_payload_m=settings.hnsw_payload_m,
    )


def open_store(settings: Settings) -> VectorStore:
    """The Qdrant server store when `VISEARCH_QDRANT_URL` is set, else the embedded engine in `data_dir`.

    Opening the embedded store takes its data-directory lock right away, so a second
    process fails here with `StoreLockedError` instead of later, half-way through a job.
    """
    if settings.qdrant_url:
        from visearch.core.store.server import ServerStore

        api_key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        return ServerStore(
            settings.collection,
            url=settings.qdrant_url,
            api_key=api_key,
            timeout=settings.qdrant_timeout,
            shard_number=settings.qdrant_shard_number,
            replication_factor=settings.qdrant_replication_factor,
            write_consistency_factor=settings.qdrant_write_consistency_factor,
            index=index_settings(settings),
        )
    from visearch.core.store.edge import EdgeStore

    return EdgeStore(settings.data_dir, settings.collection, index=index_settings(settings))
