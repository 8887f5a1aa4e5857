"""Search quality tools: the pHash / CNN baselines and `visearch train` (fine-tuning on similarity groups)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visearch.core.config import load_settings
from visearch.core.domain import Query
from visearch.core.encoders.baselines import PHashEncoder, phash_bits
from visearch.core.encoders.factory import load_encoder
from visearch.core.errors import EncoderMismatchError, EncoderUnavailableError
from visearch.core.ingest import index_catalog
from visearch.core.search import SearchService
from visearch.core.store.factory import open_store
from visearch.indexer.train import TrainConfig, train_offline

SAMPLE = Path(__file__).resolve().parents[2] / "indexer" / "demo_data" / "grocery"


def recompressed(img: Image.Image, scale: float, quality: int) -> Image.Image:
    small = img.resize((int(img.width * scale), int(img.height * scale)))
    buffer = io.BytesIO()
    small.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def test_phash_finds_near_duplicates_and_cosine_ranks_like_hamming() -> None:
    banana = Image.open(SAMPLE / "images" / "banana.jpg").convert("RGB")
    milk = Image.open(SAMPLE / "images" / "arla-standard-milk.jpg").convert("RGB")
    copy = recompressed(banana, 0.5, 40)

    def hamming(x: Image.Image, y: Image.Image) -> int:
        return int(np.sum(phash_bits(x) != phash_bits(y)))

    assert hamming(banana, copy) <= 6 < hamming(banana, milk)
    vectors = PHashEncoder().embed_images([banana, copy, milk])
    cosines = vectors[0] @ vectors.T
    assert cosines[0] == pytest.approx(1.0)
    assert cosines[1] == pytest.approx(1 - 2 * hamming(banana, copy) / 64)
    assert cosines[2] == pytest.approx(1 - 2 * hamming(banana, milk) / 64)
    with pytest.raises(EncoderUnavailableError, match="cannot search by text"):
        PHashEncoder().embed_texts(["banana"])


def test_eval_compares_methods_in_one_table(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from visearch.indexer.cli import app

    env = {"VISEARCH_ENCODER": "offline", "HF_HUB_OFFLINE": "1", "VISEARCH_DATA_DIR": str(tmp_path)}
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "--catalog",
            str(SAMPLE / "catalog.csv"),
            "--queries",
            str(SAMPLE / "queries.csv"),
            "--method",
            "encoder,phash,cnn",
            "--k",
            "1,5",
            "--calibrate",
            "--json",
        ],
        env=env,
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    rows = {r["method"]: r for r in json.loads(result.stdout)}
    assert set(rows) == {"encoder", "phash", "cnn"}
    assert rows["cnn"]["encoder"] == "baseline:efficientnet-lite0-pooled"
    assert len(rows["phash"]["errors"]) == 2, "the two text queries cannot run on an image-only baseline"
    assert rows["cnn"]["recall@5"] > rows["phash"]["recall@5"]
    image_cut = next(c for c in rows["encoder"]["calibration"] if c["kind"] == "image")
    assert 0 < image_cut["threshold"] < 1 and image_cut["samples"] >= 1


@pytest.fixture(scope="module")
def groups_catalog(tmp_path_factory: pytest.TempPathFactory, grocery_dir: Path) -> Path:
    """Six products, each with its shop photo and four in-store photos from the train split."""
    root = tmp_path_factory.mktemp("groups")
    rows = []
    classes = ["Banana", "Kiwi", "Lemon", "Lime", "Mango", "Avocado"]
    for name in classes:
        found = sorted((grocery_dir / "train").rglob(f"{name}/*.jpg"))[:4]
        assert found, name
        paths = []
        for photo in found:
            target = root / f"{name}-{photo.name}"
            target.write_bytes(photo.read_bytes())
            paths.append(target.name)
        rows.append({"id": name.lower(), "title": name, "image": "|".join(paths)})
    with (root / "catalog.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["id", "title", "image"])
        writer.writeheader()
        writer.writerows(rows)
    return root / "catalog.csv"


def test_training_lowers_the_loss_and_writes_a_model_that_loads_and_searches(
    groups_catalog: Path, offline_encoder, tmp_path: Path
) -> None:
    cfg = TrainConfig(epochs=8, views=2, products_per_batch=6, patience=100, lr=5e-3)
    result = train_offline(groups_catalog, tmp_path / "model", offline_encoder, cfg)
    assert result.losses[-1] < result.losses[0]
    assert result.images == 24 and result.products == 6
    info = json.loads((tmp_path / "model" / "visearch-model.json").read_text())
    assert info["base"] == "offline" and info["version"] == result.version

    settings = load_settings(encoder="offline", model_dir=tmp_path / "model", data_dir=tmp_path / "data")
    tuned = load_encoder(settings)
    assert tuned.model_id.endswith(f"+head:{result.version}")
    assert tuned.model_id != offline_encoder.model_id

    async def index_and_search() -> None:
        store = open_store(settings)
        await index_catalog(groups_catalog, offline_encoder, store, settings)
        with pytest.raises(EncoderMismatchError, match="--reembed"):
            await SearchService(tuned, store, settings).check_collection()
        await index_catalog(groups_catalog, tuned, store, settings, recreate=True)
        service = SearchService(tuned, store, settings)
        try:
            photo = (groups_catalog.parent / next(groups_catalog.parent.glob("Kiwi-*.jpg")).name).read_bytes()
            result = await service.search(Query(images=[photo], limit=1))
            assert result.cards[0].product_id == "kiwi"
            assert (await service.search(Query(text="lemon", limit=3))).cards, "text still works"
        finally:
            await service.close()

    asyncio.run(index_and_search())


@pytest.mark.parametrize("loss", ["ms", "triplet"])
def test_other_losses_train(groups_catalog: Path, offline_encoder, tmp_path: Path, loss: str) -> None:
    cfg = TrainConfig(loss=loss, epochs=3, views=2, products_per_batch=6, patience=100)  # type: ignore[arg-type]
    result = train_offline(groups_catalog, tmp_path / loss, offline_encoder, cfg)
    assert all(np.isfinite(result.losses)) and result.losses[0] > 0


# --- colour ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rgb", "name"),
    [
        ((200, 30, 35), "red"),
        ((25, 35, 90), "navy"),
        ((245, 215, 40), "yellow"),
        ((225, 205, 165), "beige"),
        ((50, 150, 50), "green"),
        ((20, 20, 20), "black"),
    ],
)
def test_colour_of_single_colour_images(rgb: tuple[int, int, int], name: str) -> None:
    from visearch.core.colour import dominant_colours

    assert dominant_colours(Image.new("RGB", (120, 80), rgb)) == [name]


def test_plain_background_is_ignored() -> None:
    from visearch.core.colour import dominant_colours

    shot = Image.new("RGB", (200, 200), (255, 255, 255))
    shot.paste((40, 90, 200), (60, 40, 140, 160))  # a blue product on a white studio background
    assert dominant_colours(shot) == ["blue"]


@pytest.mark.parametrize(("photo", "name"), [("banana", "yellow"), ("red-bell-pepper", "red"), ("vine-tomato", "red")])
def test_colour_of_real_photos_with_an_obvious_colour(photo: str, name: str) -> None:
    from visearch.core.colour import dominant_colours

    assert dominant_colours(Image.open(SAMPLE / "images" / f"{photo}.jpg"))[0] == name
