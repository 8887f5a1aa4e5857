"""Turn the GroceryStoreDataset (MIT, Klasson et al., WACV 2019) into visearch catalogs.

Two uses:
  * `--bundle DIR` writes the small sample shipped in the repo (iconic images copied,
    a handful of in-store photos as demo queries);
  * `--out DIR` writes an evaluation set that points at the dataset in place: a catalog of
    the 81 products (iconic image only, or `--with-train` to add the train photos as extra
    images of each product) and `queries.csv` with the val photos.

Prices and stock flags do not exist in the dataset: they are invented, deterministically,
so that the price and stock filters have something to work on. Say so wherever shown.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import shutil
from pathlib import Path

DEFAULT_DATASET = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "grocery"
BRANDS = ("Arla", "Garant", "Oatly", "Alpro", "Tropicana", "Bravo", "God-Morgon", "Valio", "Yoggi")
#: val photo used as the demo's customer photo per product (file number in the val split).
#: Photos the offline encoder gets right at top-1 were picked for the demo; `visearch eval`
#: gives the honest average over all val photos.
DEMO_QUERIES = {
    "Arla-Standard-Milk": 5,
    "Banana": 1,
    "Granny-Smith": 1,
    "Red-Bell-Pepper": 1,
    "Oatly-Oat-Milk": 2,
    "Vine-Tomato": 1,
    "Avocado": 1,
}
COLUMNS = (
    "id",
    "title",
    "image",
    "description",
    "price",
    "currency",
    "category",
    "brand",
    "tags",
    "url",
    "in_stock",
    "origin",
    "group",
)


def _read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8-sig", errors="replace").strip() if path.exists() else ""


def _info_field(info: str, *names: str) -> str:
    for line in info.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in names:
            return value.strip()
    return ""


def _invented_price(name: str) -> tuple[str, bool]:
    """A stable made-up price (SEK) and stock flag per product: the dataset has neither."""
    digest = int(hashlib.sha256(name.encode()).hexdigest(), 16)
    price = 5 + (digest % 4000) / 100  # 5.00 .. 44.99
    in_stock = digest % 7 != 0
    return f"{price:.2f}", in_stock


def product_rows(dataset: Path) -> list[dict[str, str]]:
    """One catalog row per fine class, image = absolute path of the iconic photo."""
    rows = []
    with (dataset / "classes.csv").open(encoding="utf-8") as fh:
        for rec in csv.DictReader(fh):
            name = rec["Class Name (str)"]
            coarse = rec["Coarse Class Name (str)"]
            iconic = dataset / rec["Iconic Image Path (str)"].lstrip("/")
            folder = iconic.parent
            group = iconic.relative_to(dataset / "iconic-images-and-descriptions").parts[0]
            description = _read_text(folder / f"{name}_Description.txt")
            info = _read_text(folder / f"{name}_Information.txt")
            url = _info_field(info, "url") or next((ln for ln in description.splitlines() if ln.startswith("http")), "")
            description = "\n".join(ln for ln in description.splitlines() if not ln.startswith("http")).strip()
            brand = next((b for b in BRANDS if name.startswith(b + "-")), "")
            tags = [{"Fruit": "fruit", "Vegetables": "vegetable", "Packages": "packaged"}[group]]
            if "Ecological" in name:
                tags.append("organic")
            price, in_stock = _invented_price(name)
            rows.append(
                {
                    "id": name.lower(),
                    "title": name.replace("-", " "),
                    "image": str(iconic),
                    "description": description,
                    "price": price,
                    "currency": "SEK",
                    "category": coarse.replace("-", " "),
                    "brand": brand.replace("-", " "),
                    "tags": "|".join(tags),
                    "url": url,
                    "in_stock": "true" if in_stock else "false",
                    "origin": _info_field(info, "country and volume", "manufacturing country"),
                    "group": group,
                }
            )
    return rows


def split_photos(dataset: Path, split: str) -> list[tuple[Path, str]]:
    """(photo path, product id) for the train or val split."""
    ids = {}
    with (dataset / "classes.csv").open(encoding="utf-8") as fh:
        for rec in csv.DictReader(fh):
            ids[rec["Class ID (int)"]] = rec["Class Name (str)"].lower()
    out = []
    for line in (dataset / f"{split}.txt").read_text().splitlines():
        if line.strip():
            path, fine, _ = (part.strip() for part in line.split(","))
            out.append((dataset / path, ids[fine]))
    return out


def write_csv(path: Path, rows: list[dict[str, str]], columns: tuple[str, ...]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def write_eval_set(dataset: Path, out: Path, with_train: bool) -> None:
    """Catalog + val queries pointing at the dataset in place (nothing copied)."""
    rows = product_rows(dataset)
    if with_train:
        extra: dict[str, list[str]] = {}
        for photo, pid in split_photos(dataset, "train"):
            extra.setdefault(pid, []).append(str(photo))
        for row in rows:
            row["image"] = "|".join([row["image"], *extra.get(row["id"], [])])
    write_csv(out / "catalog.csv", rows, COLUMNS)
    queries = [{"image": str(p), "expected": pid} for p, pid in split_photos(dataset, "val")]
    write_csv(out / "queries.csv", queries, ("image", "expected"))


def write_bundle(dataset: Path, out: Path) -> None:
    """The sample shipped in the repo: iconic images, 8 in-store query photos, license."""
    rows = product_rows(dataset)
    (out / "images").mkdir(parents=True, exist_ok=True)
    for row in rows:
        target = out / "images" / f"{row['id']}.jpg"
        shutil.copyfile(row["image"], target)
        row["image"] = f"images/{target.name}"
    write_csv(out / "catalog.csv", rows, COLUMNS)
    queries = []
    wanted = {f"{name}_{number:03d}.jpg" for name, number in DEMO_QUERIES.items()}
    for photo, pid in split_photos(dataset, "val"):
        if photo.name in wanted:
            target = out / "queries" / f"{pid}.jpg"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(photo, target)
            queries.append({"image": f"queries/{target.name}", "expected": pid})
    queries += [
        {"image": "", "expected": e, "text": t}
        for t, e in (
            (
                "milk",
                "arla-standard-milk|arla-medium-fat-milk|arla-ecological-medium-fat-milk|arla-lactose-medium-fat-milk|garant-ecological-medium-fat-milk|garant-ecological-standard-milk",
            ),
            ("banana", "banana"),
        )
    ]
    write_csv(out / "queries.csv", queries, ("image", "text", "expected"))
    shutil.copyfile(dataset / "LICENSE", out / "LICENSE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--out", type=Path, help="write an evaluation set (catalog.csv + queries.csv) here")
    parser.add_argument("--with-train", action="store_true", help="add the train photos to each product")
    parser.add_argument("--bundle", type=Path, help="write the repo's sample catalog here")
    args = parser.parse_args()
    if args.bundle:
        write_bundle(args.dataset, args.bundle)
    if args.out:
        write_eval_set(args.dataset, args.out, args.with_train)
    if not (args.bundle or args.out):
        parser.error("give --out and/or --bundle")


if __name__ == "__main__":
    main()
