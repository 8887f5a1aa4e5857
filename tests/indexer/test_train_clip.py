"""`visearch train --encoder clip`: CLIP's image projection tuned on similarity groups (tiny random CLIP, no download)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from visearch.core.config import load_settings
from visearch.core.encoders.clip import ClipEncoder, weights_digest
from visearch.core.encoders.factory import load_encoder
from visearch.indexer.cli import app
from visearch.indexer.train import TrainResult
from visearch.indexer.train_clip import ClipTrainConfig, train_clip

CLASSES = ["Banana", "Kiwi", "Lemon", "Lime", "Mango", "Avocado"]
#: a fixed batch (plain photos, views=1) and a high learning rate: the loss falls every run, on any machine
FAST = ClipTrainConfig(epochs=10, lr=1e-2, views=1, products_per_batch=6, patience=100, unfreeze_blocks=1, seed=0)


def small_copy(photo: Path, target: Path, side: int = 64) -> str:
    """A 64 px copy: the tiny CLIP looks at 32 px, and small photos keep the tests fast."""
    Image.open(photo).convert("RGB").resize((side, side)).save(target, "JPEG", quality=90)
    return target.name


@pytest.fixture(scope="module")
def clip_catalog(tmp_path_factory: pytest.TempPathFactory, grocery_dir: Path) -> Path:
    """Six products with three real photos each (one per product is held out)."""
    root = tmp_path_factory.mktemp("clip-groups")
    rows = []
    for name in CLASSES:
        found = sorted((grocery_dir / "train").rglob(f"{name}/*.jpg"))[:3]
        assert len(found) == 3, name
        images = [small_copy(photo, root / f"{name}-{photo.name}") for photo in found]
        rows.append({"id": name.lower(), "title": name, "image": "|".join(images)})
    with (root / "catalog.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["id", "title", "image"])
        writer.writeheader()
        writer.writerows(rows)
    return root / "catalog.csv"


@pytest.fixture(scope="module")
def trained(clip_catalog: Path, tiny_clip_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    return train_clip(
        clip_catalog, tmp_path_factory.mktemp("clip-model") / "tuned", str(tiny_clip_dir), FAST, device="cpu"
    )


def test_training_lowers_the_loss_and_writes_a_clip_folder(trained: TrainResult) -> None:
    assert trained.losses[-1] < 0.5 * trained.losses[0]
    assert trained.images == 18 and trained.products == 6
    assert trained.before.queries == trained.after.queries == 6
    assert trained.best_epoch > 0 and trained.after.better_than(trained.before)
    assert trained.model_dir is not None
    info = json.loads((trained.model_dir / "visearch-model.json").read_text())
    assert info["format"] == 1 and info["base"] == "clip" and info["version"] == trained.version
    assert info["before"]["recall1"] == trained.before.recall1 and info["after"]["mrr"] == trained.after.mrr
    assert (trained.model_dir / "modules.json").is_file(), "a sentence-transformers folder"


def test_only_the_image_side_learns(trained: TrainResult, tiny_clip_dir: Path) -> None:
    from safetensors.torch import load_file

    assert trained.model_dir is not None
    base, tuned = load_file(tiny_clip_dir / "model.safetensors"), load_file(trained.model_dir / "model.safetensors")
    assert base.keys() == tuned.keys()
    changed = {name for name in base if not np.array_equal(base[name].numpy(), tuned[name].numpy())}
    assert "visual_projection.weight" in changed
    assert any(name.startswith("vision_model.encoder.layers.1.") for name in changed), "unfreeze_blocks=1"
    frozen = (
        "text_model.",
        "text_projection.",
        "logit_scale",
        "vision_model.embeddings.",
        "vision_model.encoder.layers.0.",
    )
    assert not [name for name in changed if name.startswith(frozen)]


@pytest.mark.parametrize("encoder", ["clip", "offline"])
def test_trained_folder_loads_as_clip_with_a_new_model_id(
    trained: TrainResult, tiny_clip_dir: Path, clip_catalog: Path, encoder: str
) -> None:
    tuned = load_encoder(load_settings(model_dir=trained.model_dir, encoder=encoder))
    assert isinstance(tuned, ClipEncoder), "the folder's visearch-model.json says it is CLIP"
    base = ClipEncoder(str(tiny_clip_dir))
    assert tuned.model_id != base.model_id
    assert tuned.model_id.endswith(f"@{trained.version}") and trained.version != weights_digest(tiny_clip_dir)
    vectors = tuned.embed_images([Image.open(next(clip_catalog.parent.glob("Kiwi-*.jpg")))])
    assert vectors.shape == (1, base.dim) and np.linalg.norm(vectors[0]) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("loss", ["ms", "triplet"])
def test_augmented_views_other_losses_and_eval_queries(
    clip_catalog: Path, tiny_clip_dir: Path, grocery_dir: Path, tmp_path: Path, loss: str
) -> None:
    queries = [
        (Image.open(next((grocery_dir / "val").rglob(f"{name}/*.jpg"))).resize((64, 64)), name.lower())
        for name in CLASSES[:3]
    ]
    cfg = ClipTrainConfig(loss=loss, epochs=2, views=4, products_per_batch=3, patience=100)  # type: ignore[arg-type]
    result = train_clip(clip_catalog, tmp_path / loss, str(tiny_clip_dir), cfg, eval_queries=queries, device="cpu")
    assert len(result.losses) == 2 and all(np.isfinite(result.losses))
    assert result.before.queries == 3


def test_cli_trains_clip_and_prints_the_table(clip_catalog: Path, tiny_clip_dir: Path, tmp_path: Path) -> None:
    env = {
        "VISEARCH_CLIP_MODEL": str(tiny_clip_dir),
        "HF_HUB_OFFLINE": "1",
        "VISEARCH_DATA_DIR": str(tmp_path / "data"),
    }
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--encoder",
            "clip",
            "--catalog",
            str(clip_catalog),
            "--output",
            str(tmp_path / "model"),
            "--epochs",
            "2",
            "--unfreeze-blocks",
            "1",
        ],
        env=env,
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "zero-shot" in result.stdout and "fine-tuned" in result.stdout and "Recall@1" in result.stdout
    assert "trained on 18 photos of 6 products" in result.stdout
    assert json.loads((tmp_path / "model" / "visearch-model.json").read_text())["base"] == "clip"


def test_cli_says_when_clip_weights_are_missing(clip_catalog: Path, tmp_path: Path) -> None:
    env = {"VISEARCH_CLIP_MODEL": str(tmp_path / "no-such-model"), "HF_HUB_OFFLINE": "1"}
    result = CliRunner().invoke(
        app,
        ["train", "--encoder", "clip", "--catalog", str(clip_catalog), "--output", str(tmp_path / "model")],
        env=env,
        catch_exceptions=False,
    )
    assert result.exit_code == 2
    assert "CLIP weights could not be loaded" in result.output and "VISEARCH_CLIP_MODEL" in result.output


def test_cli_unfreeze_blocks_is_for_clip(clip_catalog: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--encoder",
            "offline",
            "--catalog",
            str(clip_catalog),
            "--output",
            str(tmp_path / "model"),
            "--unfreeze-blocks",
            "2",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 2 and "--unfreeze-blocks is for --encoder clip" in result.output


def test_too_many_unfrozen_blocks_is_a_clear_error(clip_catalog: Path, tiny_clip_dir: Path, tmp_path: Path) -> None:
    from visearch.core.errors import ConfigError

    with pytest.raises(ConfigError, match="only 2 blocks"):
        train_clip(
            clip_catalog, tmp_path / "m", str(tiny_clip_dir), ClipTrainConfig(epochs=1, unfreeze_blocks=5), device="cpu"
        )
