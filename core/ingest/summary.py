"""What an ingest run did: counts, problems (each with its source position), notes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

#: the stages of an ingest run, in pipeline order (`IndexSummary.seconds`)
STAGES = ("fetch", "decode", "image vectors", "colours", "ocr", "local features", "words vectors", "write")


class StageClock:
    """Seconds per stage, for one worker's piece of work (merged into the summary by the event loop)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - started


@dataclass(frozen=True, slots=True)
class Timed(Generic[T]):
    """A function's result and the seconds it took."""

    value: T
    seconds: float


def timed(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> Timed[T]:
    """Call `fn` and time it (on whichever thread runs it)."""
    started = time.perf_counter()
    value = fn(*args, **kwargs)
    return Timed(value, time.perf_counter() - started)


@dataclass(frozen=True)
class Problem:
    """One thing that went wrong: where in the source, which product, which image, why.

    Typed fields, so a caller words it for its own audience: the CLI prints `str(problem)`, the
    HTTP API names the photo as its caller sent it."""

    line: int | None
    product_id: str | None
    image: str | None
    reason: str

    def __str__(self) -> str:
        parts = [f"line {self.line}" if self.line is not None else "catalog"]
        if self.product_id:
            parts.append(f"product {self.product_id}")
        if self.image:
            parts.append(f"image {self.image}")
        return f"{', '.join(parts)}: {self.reason}"


@dataclass
class IndexSummary:
    """What a run did. Counts are of images (points) except `products` and `skipped` (rows).

    - products:  catalog rows that parsed into a product
    - images:    images those products list
    - indexed:   images written with a new vector (embedded, or copied from an identical stored image)
    - embedded:  of `indexed`, images that went through the encoder
    - unchanged: images skipped because image, metadata and encoder are as stored
    - updated:   images whose product metadata changed: payload rewritten, vector kept
    - skipped:   catalog rows not indexed at all (parse errors, no image)
    - failed:    images that could not be fetched or decoded (the product's other images still count)
    - deleted:   points removed (images a product dropped; with sync, products gone from the catalog)
    - features:  images whose local features (core.local_features) were extracted in this run

    `ok` is False when any row was skipped or any image failed (the CLI exits non-zero).
    """

    products: int = 0
    images: int = 0
    indexed: int = 0
    embedded: int = 0
    unchanged: int = 0
    updated: int = 0
    skipped: int = 0
    failed: int = 0
    deleted: int = 0
    features: int = 0
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: products none of whose listed images could be used: whatever they had stored is kept as it was
    kept: list[str] = field(default_factory=list)
    #: products with at least one listed image stored by the end of the run (written or unchanged)
    stored_products: set[str] = field(default_factory=set)
    #: seconds spent in each stage (`STAGES`), summed over the workers that run at once: stages
    #: overlap, so they add up to more than the run's wall time. Where a slow run spends its time.
    seconds: dict[str, float] = field(default_factory=dict)

    def add_seconds(self, seconds: dict[str, float]) -> None:
        for stage, spent in seconds.items():
            self.seconds[stage] = self.seconds.get(stage, 0.0) + spent

    @property
    def ok(self) -> bool:
        return not (self.skipped or self.failed)

    def counts(self) -> dict[str, int]:
        return {
            "products": self.products,
            "images": self.images,
            "indexed": self.indexed,
            "embedded": self.embedded,
            "unchanged": self.unchanged,
            "updated": self.updated,
            "skipped": self.skipped,
            "failed": self.failed,
            "deleted": self.deleted,
            "features": self.features,
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "counts": self.counts(),
            "problems": [str(p) for p in self.problems],
            "notes": list(self.notes),
            "seconds": {stage: round(self.seconds[stage], 3) for stage in STAGES if stage in self.seconds},
        }

    def describe(self) -> str:
        """One summary line (plus notes) for people."""
        line = (
            f"{self.products} products: {self.indexed} images indexed, {self.unchanged} unchanged, "
            f"{self.updated} updated (metadata only), {self.deleted} deleted; "
            f"{self.skipped} rows skipped, {self.failed} images failed"
        )
        return "\n".join([line, *self.notes])
