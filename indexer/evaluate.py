"""`visearch eval`: Recall@k and MRR of the configured encoder on a catalog and a query set.

QUERIES is a CSV with `image` (a path, relative to the CSV) or `text`, and `expected`:
the product id, or several `|`-separated, that count as a hit.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from visearch.core.domain import Query
from visearch.core.errors import CatalogError, VisearchError
from visearch.core.search import SearchService


@dataclass(frozen=True)
class EvalQuery:
    """One labelled query: a photo path or a text, and the product ids that count as a hit."""

    line: int
    expected: frozenset[str]
    image: Path | None = None
    text: str | None = None


@dataclass
class EvalReport:
    """Recall@k per k, MRR (over the top max(k)), and the queries that could not run."""

    ks: tuple[int, ...]
    queries: int = 0
    hits_at: dict[int, int] = field(default_factory=dict)
    reciprocal_rank_sum: float = 0.0
    errors: list[str] = field(default_factory=list)
    #: per query kind ("image"/"text"): score of the expected product when it ranks first
    right_scores: dict[str, list[float]] = field(default_factory=dict)
    #: per query kind: the top score when the first result is the wrong product
    wrong_scores: dict[str, list[float]] = field(default_factory=dict)
    #: seconds each query took, embedding and ranking (re-ranking included)
    seconds: list[float] = field(default_factory=list)
    #: per value of the breakdown field (the expected product's category, say): [queries, hits@1]
    groups: dict[str, list[int]] = field(default_factory=dict)

    def recall(self, k: int) -> float:
        return self.hits_at.get(k, 0) / self.queries if self.queries else 0.0

    @property
    def mrr(self) -> float:
        return self.reciprocal_rank_sum / self.queries if self.queries else 0.0

    def ms_per_query(self, quantile: float = 0.5) -> float:
        """Milliseconds per query at this quantile (0.5: the median)."""
        if not self.seconds:
            return 0.0
        ordered = sorted(self.seconds)
        return 1000 * ordered[min(len(ordered) - 1, int(quantile * len(ordered)))]

    def group_recall(self) -> dict[str, float]:
        """Recall@1 per value of the breakdown field."""
        return {name: hits / total for name, (total, hits) in sorted(self.groups.items()) if total}

    def as_dict(self) -> dict[str, object]:
        return {
            "queries": self.queries,
            **{f"recall@{k}": round(self.recall(k), 4) for k in self.ks},
            f"mrr@{max(self.ks)}": round(self.mrr, 4),
            "ms_per_query_p50": round(self.ms_per_query(0.5), 1),
            "ms_per_query_p95": round(self.ms_per_query(0.95), 1),
            "recall@1_by_group": {k: round(v, 4) for k, v in self.group_recall().items()},
            "errors": self.errors,
        }


def read_queries(path: Path) -> list[EvalQuery]:
    """Parse the queries CSV; a row without image/text or expected is a CatalogError naming its line."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise CatalogError(f"cannot read queries file {path}: {exc.strerror or exc}") from None
    queries = []
    for line, row in enumerate(rows, start=2):
        expected = frozenset(p.strip() for p in (row.get("expected") or "").split("|") if p.strip())
        image = (row.get("image") or "").strip()
        text = (row.get("text") or "").strip()
        if not expected or not (image or text):
            raise CatalogError(f"{path}:{line}: a query needs `expected` and one of `image` or `text`")
        image_path = (path.parent / image) if image else None
        queries.append(EvalQuery(line=line, expected=expected, image=image_path, text=None if image else text))
    return queries


async def evaluate(
    service: SearchService,
    queries: list[EvalQuery],
    ks: tuple[int, ...],
    group_of: dict[str, str] | None = None,
) -> EvalReport:
    """Run every query the way the service answers it (multi-crop, verification, fusion: whatever
    its settings say), with no relevance cut-off, and count where the first expected product ranks.

    `group_of`: product id -> the value its queries are broken down by (its category, say)."""
    report = EvalReport(ks=tuple(sorted(ks)))
    depth = max(ks)
    await service.check_collection()
    for q in queries:
        try:
            data = q.image.read_bytes() if q.image is not None else None
            started = time.perf_counter()
            query = Query(images=[data], limit=depth) if data is not None else Query(text=q.text, limit=depth)
            plan = replace(await service.plan(query), min_score=-2.0)  # no cut-off on the photo side
            ranked, _ = await service.rank(plan, depth)
            report.seconds.append(time.perf_counter() - started)
        except (OSError, ValueError, VisearchError) as exc:
            report.errors.append(f"line {q.line}: {exc}")
            continue
        report.queries += 1
        product_ids = [str(hit.payload.get("product_id")) for hit in ranked[:depth]]
        rank = next((i for i, pid in enumerate(product_ids, start=1) if pid in q.expected), None)
        if group_of is not None:
            group = group_of.get(sorted(q.expected)[0], "") or "(none)"
            counts = report.groups.setdefault(group, [0, 0])
            counts[0] += 1
            counts[1] += rank == 1
        if ranked:
            kind = "image" if q.image is not None else "text"
            bucket = report.right_scores if rank == 1 else report.wrong_scores
            bucket.setdefault(kind, []).append(float(ranked[0].score))
        if rank is not None:
            report.reciprocal_rank_sum += 1.0 / rank
            for k in report.ks:
                if rank <= k:
                    report.hits_at[k] = report.hits_at.get(k, 0) + 1
    return report


@dataclass(frozen=True)
class Calibration:
    """A relevance cut-off read off the eval data instead of a magic constant."""

    kind: str
    threshold: float
    keep: float  # share of correct first results that pass
    wrong_passing: float | None  # share of wrong first results that pass
    unrelated_passing: float | None  # share of unrelated photos that would still get a result
    samples: int


def calibrate(
    report: EvalReport, keep: float = 0.95, unrelated: dict[str, list[float]] | None = None
) -> list[Calibration]:
    """Per query kind: the highest cut-off that still lets `keep` of the correct first results through."""
    import numpy as np

    out = []
    for kind, scores in sorted(report.right_scores.items()):
        threshold = float(np.quantile(np.asarray(scores), 1.0 - keep))
        wrong = report.wrong_scores.get(kind, [])
        others = (unrelated or {}).get(kind)
        out.append(
            Calibration(
                kind=kind,
                threshold=round(threshold, 3),
                keep=keep,
                wrong_passing=(sum(s >= threshold for s in wrong) / len(wrong)) if wrong else None,
                unrelated_passing=(sum(s >= threshold for s in others) / len(others)) if others else None,
                samples=len(scores),
            )
        )
    return out


async def top_scores(service: SearchService, photos: list[Path]) -> list[float]:
    """The best score each (unrelated) photo gets, with no cut-off: how much junk a threshold lets through."""
    scores = []
    for photo in photos:
        try:
            plan = replace(await service.plan(Query(images=[photo.read_bytes()], limit=1)), min_score=-2.0)
            hits, _ = await service.rank(plan, 1)  # what the service answers, re-ranking included
        except (OSError, VisearchError):
            continue
        if hits:
            scores.append(float(hits[0].score))
    return scores
