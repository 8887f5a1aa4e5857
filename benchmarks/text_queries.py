"""Text queries on a clothing catalog: precision@10 of words like "shoes", "a dress", "a hat".

The catalog is built from `../shared/datasets/clothing` (real photos labelled T-Shirt, Shoes,
Dress...): one product per photo, with a neutral title ("Item 123") so that only the image side
can match the words; the label is kept out of the payload. Each query is a short phrase a
customer types; a result counts when its photo carries the query's label. Precision@10 is
printed per query and on average, with no relevance cut-off (the ranking is what is measured).

This is the "before" figure for the text signals of the quality issue (titles, descriptions and
OCR as a second vector, fused with the image side); run it again after them.

    python benchmarks/text_queries.py               # up to 60 photos per label (about 600 photos)
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

from core.config import load_settings
from core.domain import Filters
from core.search import SearchService
from core.store.factory import open_store
from indexer.pipeline import index_catalog

DATASET = REPO_ROOT.parent / "shared" / "datasets" / "clothing"
QUERIES = {
    "shoes": "Shoes", "a dress": "Dress", "a hat": "Hat", "t-shirt": "T-Shirt", "pants": "Pants",
    "shorts": "Shorts", "a skirt": "Skirt", "a jacket": "Outwear", "a shirt": "Shirt", "a hoodie": "Hoodie",
}


def build_catalog(folder: Path, per_label: int) -> dict[str, str]:
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
            counts[label] = counts.get(label, 0) + 1
            product_id = f"item-{len(rows) + 1}"
            labels[product_id] = label
            rows.append({"id": product_id, "title": f"Item {len(rows) + 1}", "image": str(photo)})
    with (folder / "catalog.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["id", "title", "image"])
        writer.writeheader()
        writer.writerows(rows)
    return labels


async def measure(folder: Path, labels: dict[str, str], encoder_name: str) -> tuple[str, dict[str, float]]:
    settings = load_settings(data_dir=folder / "data", encoder=encoder_name, collection="clothing")
    service = await SearchService.open(settings)
    try:
        summary = await index_catalog(folder / "catalog.csv", service.encoder, service.store, settings, progress=True)
        if summary.failed:
            print(f"{summary.failed} photos failed to index", file=sys.stderr)
        precision = {}
        for text, label in QUERIES.items():
            vector = (await asyncio.to_thread(service.encoder.embed_texts, [text]))[0]
            hits = await service.search_vector([float(x) for x in vector], Filters(), 10)  # rank everything
            top = [labels.get(str(h.payload.get("product_id")), "") for h in hits[:10]]
            precision[text] = sum(t == label for t in top) / 10
        return service.encoder.model_id, precision
    finally:
        await service.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-label", type=int, default=60)
    ap.add_argument("--encoder", default="offline")
    ap.add_argument("--quick", action="store_true", help="15 photos per label")
    ap.add_argument("--json", nargs="?", const="-", default=None)
    args = ap.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="visearch-text-bench-"))
    try:
        labels = build_catalog(folder, 15 if args.quick else args.per_label)
        model_id, precision = asyncio.run(measure(folder, labels, args.encoder))
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(folder)
    info = machine_info(encoder=model_id, photos=len(labels))
    out = sys.stderr if args.json == "-" else sys.stdout
    with contextlib.redirect_stdout(out):
        print_machine(info)
    rows = [[q, QUERIES[q], f"{p:.1f}"] for q, p in precision.items()]
    rows.append(["mean", "", f"{sum(precision.values()) / len(precision):.2f}"])
    print(table(["query", "label", "precision@10"], rows), file=out)
    if args.json:
        dump_json({"machine": info, "precision_at_10": precision}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
