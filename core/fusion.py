"""Fusing ranked lists from several signals (the photo side and the catalog's words) into one ranking.

A text query is matched twice: against the product *images* (the encoder's text-to-image space) and
against the product *words* (title, brand, category, tags, description, OCR text; a text-to-text
space). Their cosines live on different scales (the offline encoder's text-to-image cosine tops out
near 0.32, MiniLM text-to-text near 0.9), so they are not added raw. Two fusions, chosen with
`VISEARCH_FUSION`:

* ``weighted`` (default): ``sum_i w_i * (score_i - cut_i) / (1 - cut_i)``, the margin of each cosine
  above its own relevance cut-off, so 0 means "just relevant" and 1 "identical" on every signal.
  A strong title match ("sneakers" -> "Leather sneakers", 0.73) counts for more than a weak one
  ("shoes" -> "Cargo pants", 0.57), which ranks cannot tell apart.
* ``rrf``, reciprocal-rank fusion (Cormack et al. 2009): ``sum_i w_i / (k + rank_i)`` over the
  signals whose list holds the product (rank from 1). Only ranks count, so no scale has to be
  calibrated; `VISEARCH_FUSION_K` (60, the paper's value) flattens (larger) or sharpens (smaller) it.

Measured with benchmarks/text_queries.py (300 clothing photos, half with shop titles), mean
precision@10: rrf 0.70-0.82 and weighted 0.88-0.89 over words cut-offs 0.45-0.60.

Weights: `VISEARCH_WEIGHT_IMAGE` and `VISEARCH_WEIGHT_WORDS` (1.0 each). Only products that passed
a signal's own cut-off enter its list, so fusion never lets junk in; it only orders what is relevant.
One exception, on the words side: a product whose own words contain every word of the query
(`has_all_terms`) passes too. Embeddings see a brand like "tropicana" as sub-word pieces, and a
one-word query against a long product text scores near the cut-off (0.55 for "tropicana" against
"Item 1. TROPICANA Orange Juice"), so literal matches are kept by rule.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from visearch.core.domain import Hit, result_key

FusionMethod = Literal["rrf", "weighted"]

#: words too common to require in a literal match ("a dress" needs only "dress")
STOP_WORDS = frozenset(["a", "an", "the", "and", "or", "of", "for", "with", "in", "on", "to", "by", "at", "from"])
#: payload fields whose words count for a literal match (the same fields the words vector embeds)
WORD_FIELDS = ("title", "brand", "category", "tags", "ocr_text", "description")
_TOKEN = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class Signal:
    """One ranked list of products (best first, one hit per product) with its weight and cut-off."""

    name: str
    hits: Sequence[Hit]
    weight: float = 1.0
    cut_off: float = 0.0


def query_terms(text: str) -> frozenset[str]:
    """The words of a query that a literal match must find (lower-cased, stop words dropped)."""
    return frozenset(t for t in _TOKEN.findall(text.casefold()) if t not in STOP_WORDS)


def has_all_terms(terms: frozenset[str], payload: dict[str, Any]) -> bool:
    """True when the product's own words contain every query term: brand names and model numbers
    ("tropicana", "xr-500") match literally even where the embedding splits them into pieces."""
    if not terms:
        return False
    found: set[str] = set()
    for field in WORD_FIELDS:
        value = payload.get(field)
        text = " ".join(map(str, value)) if isinstance(value, list) else str(value or "")
        found.update(_TOKEN.findall(text.casefold()))
    return terms <= found


def _product(hit: Hit) -> str:
    return result_key(hit.payload, hit.point_id)


def fuse(signals: Sequence[Signal], method: FusionMethod = "rrf", k: float = 60.0) -> list[Hit]:
    """One hit per product, best fused score first.

    The hit kept for a product is the one from the first signal that found it (its photo is the
    card's), with `signals` holding every signal's cosine for it; its `score` stays that cosine and
    `rank_score` is the fused value it is ordered by. Ties keep the order of the first signal, then the next.
    """
    fused: dict[str, float] = {}
    chosen: dict[str, Hit] = {}
    cosines: dict[str, dict[str, float]] = {}
    first_seen: dict[str, tuple[int, int]] = {}
    for s_index, signal in enumerate(signals):
        for rank, hit in enumerate(signal.hits, start=1):
            product = _product(hit)
            if method == "rrf":
                gain = signal.weight / (k + rank)
            else:
                # a literal match may sit just under the cut-off: it counts as "just relevant", not less
                gain = signal.weight * max(0.0, hit.score - signal.cut_off) / max(1e-6, 1.0 - signal.cut_off)
            fused[product] = fused.get(product, 0.0) + gain
            cosines.setdefault(product, {})[signal.name] = hit.score
            if product not in chosen:
                chosen[product] = hit
                first_seen[product] = (s_index, rank)
    order = sorted(fused, key=lambda p: (-fused[p], first_seen[p]))
    return [
        chosen[p].model_copy(update={"signals": {**chosen[p].signals, **cosines[p]}, "rank_score": fused[p]})
        for p in order
    ]
