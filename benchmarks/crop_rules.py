"""How to combine the framings of a multi-crop photo query: the rules compared on one index.

Indexes CATALOG with the offline encoder (no local features, no verification: the embedding only),
embeds every query photo's framings (`visearch.core.local_features.crops`: the photo, its centre,
its four corners at 70%) and ranks the products by each rule, exactly (every point scored):

* full: the photo alone (the baseline);
* mean vector: the framings' normalised mean vector, one search;
* best framing: each product's best match over all framings (max over framings);
* mean of matches: per framing each product's best match, averaged over the framings (what
  `SearchService` does, `visearch.core.search.mean_over_views`);
* full + best crop: the photo's match plus the best crop's.

    python benchmarks/crop_rules.py --catalog /tmp/grocery/catalog.csv --queries /tmp/grocery/queries.csv
    (the sets from `python benchmarks/grocery_catalog.py --out /tmp/grocery [--with-train]`)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from visearch.core.config import load_settings
from visearch.core.encoders.base import l2_normalise
from visearch.core.encoders.offline import OfflineEncoder
from visearch.core.ingest import index_catalog
from visearch.core.local_features import crops
from visearch.core.store.factory import open_store
from visearch.indexer.evaluate import read_queries

RULES = ("full", "mean vector", "best framing", "mean of matches", "full + best crop")


async def indexed_vectors(catalog: Path, encoder: OfflineEncoder, data_dir: Path) -> tuple[np.ndarray, list[str]]:
    """Every point's image vector and product id, from the real ingest pipeline."""
    settings = load_settings(data_dir=data_dir, encoder="offline", local_features=False)
    store = open_store(settings)
    try:
        summary = await index_catalog(catalog, encoder, store, settings)
        if not summary.ok:
            raise SystemExit(f"indexing failed: {summary.problems[:3]}")
        points = [p async for p in store.scroll(with_vectors=True) if p.vector is not None]
    finally:
        await store.close()
    return np.array([p.vector for p in points], np.float32), [str(p.payload["product_id"]) for p in points]


def rule_scores(views: np.ndarray, vectors: np.ndarray, owner: np.ndarray, products: int) -> dict[str, np.ndarray]:
    """Product scores under each rule for one query's framings (row 0: the whole photo)."""
    per_view = np.full((len(views), products), -9.0)
    sims = views @ vectors.T
    for row in range(len(views)):
        np.maximum.at(per_view[row], owner, sims[row])
    mean = l2_normalise(views.mean(axis=0, keepdims=True))[0]
    by_mean = np.full(products, -9.0)
    np.maximum.at(by_mean, owner, vectors @ mean)
    return {
        "full": per_view[0],
        "mean vector": by_mean,
        "best framing": per_view.max(axis=0),
        "mean of matches": per_view.mean(axis=0),
        "full + best crop": per_view[0] + per_view[1:].max(axis=0),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--catalog", type=Path, required=True)
    ap.add_argument("--queries", type=Path, required=True)
    args = ap.parse_args(argv)
    encoder = OfflineEncoder("cpu", 32)
    with tempfile.TemporaryDirectory(prefix="visearch-crop-rules-") as tmp:
        vectors, point_products = asyncio.run(indexed_vectors(args.catalog, encoder, Path(tmp)))
    names = sorted(set(point_products))
    index = {name: i for i, name in enumerate(names)}
    owner = np.array([index[p] for p in point_products])
    ranks: dict[str, list[int]] = {rule: [] for rule in RULES}
    for query in read_queries(args.queries):
        if query.image is None:
            continue
        views = np.asarray(encoder.embed_images(crops(Image.open(query.image).convert("RGB"))), np.float32)
        wanted = {index[p] for p in query.expected if p in index}
        for rule, scores in rule_scores(views, vectors, owner, len(names)).items():
            order = np.argsort(-scores)
            ranks[rule].append(next(i for i, product in enumerate(order) if product in wanted))
    print(f"{len(ranks['full'])} photo queries, {len(names)} products, {len(point_products)} photos: {args.catalog}")
    print(f"  {'rule':<18} Recall@1  Recall@5")
    for rule, found in ranks.items():
        r = np.array(found)
        print(f"  {rule:<18} {np.mean(r < 1):>8.3f}  {np.mean(r < 5):>8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
