"""Text queries on a clothing catalog: precision@10 of words like "shoes", "a dress", "a hat".

The catalog is built from `../shared/datasets/clothing` (real photos labelled T-Shirt, Shoes,
Dress...): one product per photo. Each query is a short phrase a customer types; a result counts
when its photo carries the query's label. Two catalogs, three ways of answering, in one run:

* catalog "neutral titles": every title is "Item N", so only the photos can match the words;
* catalog "half titled": half of each label's products get a shop-like title drawn from a few per
  label ("Ankle boots", "Canvas trainers", "Parka", "Crew-neck tee"...: often *not* the query's
  word), the other half stay "Item N";
* answered by the photos only (`VISEARCH_WEIGHT_WORDS=0`: the "before" figure), or by photos and
  words fused (the default), or by the words alone (`VISEARCH_WEIGHT_IMAGE=0`).

The photo side has no relevance cut-off here (the whole ranking is measured, as in the "before"
figure); the words side keeps its own cut-off (`min_score_words`), as it runs in production.

    python benchmarks/text_queries.py               # up to 60 photos per label (about 550 photos)
    python benchmarks/text_queries.py --per-label 20 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import os
import shutil
import sys
import tempfile
from pathlib import Path

from _common import REPO_ROOT, dump_json, machine_info, print_machine, table

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from visearch.core.config import load_settings
from visearch.core.domain import Query
from visearch.core.encoders.base import Encoder
from visearch.core.ingest import index_catalog
from visearch.core.search import SearchService
from visearch.core.store.factory import open_store
from visearch.indexer.progress import TqdmProgress

DATASET = REPO_ROOT.parent / "shared" / "datasets" / "clothing"
QUERIES = {
    "shoes": "Shoes",
    "a dress": "Dress",
    "a hat": "Hat",
    "t-shirt": "T-Shirt",
    "pants": "Pants",
    "shorts": "Shorts",
    "a skirt": "Skirt",
    "a jacket": "Outwear",
    "a shirt": "Shirt",
    "a hoodie": "Hoodie",
}
#: titles a shop might give (several avoid the query's own word on purpose)
SHOP_TITLES = {
    "Shoes": ["Leather sneakers", "Ankle boots", "Canvas trainers", "Running shoes"],
    "Dress": ["Floral midi dress", "Evening gown", "Summer sundress", "Wrap dress"],
    "Hat": ["Baseball cap", "Wool beanie", "Straw sun hat", "Bucket hat"],
    "T-Shirt": ["Crew-neck tee", "Graphic T-shirt", "Cotton tee", "V-neck t-shirt"],
    "Pants": ["Chino trousers", "Slim jeans", "Cargo pants", "Joggers"],
    "Shorts": ["Denim shorts", "Running shorts", "Bermuda shorts", "Swim trunks"],
    "Skirt": ["Pleated skirt", "Denim mini skirt", "A-line midi skirt", "Tulle skirt"],
    "Outwear": ["Denim jacket", "Puffer coat", "Parka", "Rain jacket"],
    "Shirt": ["Oxford shirt", "Flannel shirt", "Linen button-down", "Poplin shirt"],
    "Hoodie": ["Zip hoodie", "Hooded sweatshirt", "Pullover hoodie", "Fleece hoodie"],
}
MODES = {
    "photos only (before)": {"weight_words": 0.0},
    "photos + words (fused)": {},
    "words only": {"weight_image": 0.0},
}


def build_catalog(folder: Path, per_label: int, titled: bool) -> dict[str, str]:
    """A CSV catalog of up to `per_label` photos per queried label; returns product id -> label."""
    wanted = set(QUERIES.values())
    counts: dict[str, int] = {}
    labels: dict[str, str] = {}
    rows = []
    with (DATASET / "images.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            label = row["label"]
            if label not in wanted or counts.get(label, 0) >= per_label:
                continue
            photo = DATASET / "images" / f"{row['image']}.jpg"
            if not photo.is_file():
                continue
            n = counts[label] = counts.get(label, 0) + 1
            product_id = f"item-{len(rows) + 1}"
            labels[product_id] = label
            title = f"Item {len(rows) + 1}"
            if titled and n % 2 == 0:  # every other product of each label gets a shop title
                options = SHOP_TITLES[label]
                title = options[(n // 2) % len(options)]
            rows.append({"id": product_id, "title": title, "image": str(photo)})
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "catalog.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["id", "title", "image"])
        writer.writeheader()
        writer.writerows(rows)
    return labels


async def measure(folder: Path, labels: dict[str, str], encoder: Encoder) -> dict[str, dict[str, float]]:
    """Precision@10 per query in every mode, on one collection indexed once."""
    base = load_settings(data_dir=folder / "data", encoder="offline", collection="clothing", min_score_text=0.0)
    store = open_store(base)
    out: dict[str, dict[str, float]] = {}
    try:
        with TqdmProgress() as progress:
            summary = await index_catalog(folder / "catalog.csv", encoder, store, base, progress=progress)
        if summary.failed:
            print(f"{summary.failed} photos failed to index", file=sys.stderr)
        for mode, overrides in MODES.items():
            service = SearchService(encoder, store, base.model_copy(update=overrides))
            precision = {}
            for text, label in QUERIES.items():
                cards = (await service.search(Query(text=text, limit=10))).cards
                precision[text] = sum(labels.get(c.product_id) == label for c in cards) / 10
            out[mode] = precision
    finally:
        await store.close()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-label", type=int, default=60)
    ap.add_argument("--quick", action="store_true", help="15 photos per label")
    ap.add_argument("--json", nargs="?", const="-", default=None)
    args = ap.parse_args(argv)
    from visearch.core.encoders.offline import OfflineEncoder

    encoder = OfflineEncoder()
    folder = Path(tempfile.mkdtemp(prefix="visearch-text-bench-"))
    results: dict[str, dict[str, dict[str, float]]] = {}
    try:
        for catalog, titled in (("neutral titles", False), ("half titled", True)):
            labels = build_catalog(folder / catalog.replace(" ", "-"), 15 if args.quick else args.per_label, titled)
            results[catalog] = asyncio.run(measure(folder / catalog.replace(" ", "-"), labels, encoder))
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(folder)
    info = machine_info(encoder=encoder.model_id, photos=len(labels))
    out = sys.stderr if args.json == "-" else sys.stdout
    with contextlib.redirect_stdout(out):
        print_machine(info)
    columns = [(catalog, mode) for catalog in results for mode in MODES]
    rows = [[q, QUERIES[q], *(f"{results[c][m][q]:.1f}" for c, m in columns)] for q in QUERIES]
    rows.append(["mean", "", *(f"{sum(results[c][m].values()) / len(QUERIES):.2f}" for c, m in columns)])
    print(table(["query", "label", *(f"{c}: {m}" for c, m in columns)], rows), file=out)
    if args.json:
        dump_json({"machine": info, "precision_at_10": results}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
