"""The ONNX Runtime backends give the same vectors as torch, and their cache never serves a stale or broken file."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visearch.core.errors import ConfigError, EncoderUnavailableError

TEXTS = ["milk", "red bell pepper", "a bunch of yellow bananas", "organic oat milk one litre", "where is my order"]


def mean_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum(axis=1).mean())


@pytest.fixture(scope="module")
def grocery_photos(grocery_dir: Path) -> list[Image.Image]:
    """Real in-store photos, spread over the val classes."""
    paths = sorted((grocery_dir / "val").rglob("*.jpg"))[::37][:8]
    return [Image.open(p).convert("RGB") for p in paths]


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture
def clip_copy(tiny_clip_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny CLIP: tests write exports next to it and change its weights."""
    return Path(shutil.copytree(tiny_clip_dir, tmp_path / "tiny-clip"))


@pytest.mark.parametrize("backend, floor", [("onnx", 0.9999), ("onnx-int8", 0.99)])
def test_offline_onnx_matches_torch(
    offline_encoder, grocery_photos, onnx_cache: Path, backend: str, floor: float
) -> None:
    from visearch.core.encoders.offline import OfflineEncoder

    encoder = OfflineEncoder(backend=backend, onnx_cache=onnx_cache)
    assert mean_cosine(encoder.embed_images(grocery_photos), offline_encoder.embed_images(grocery_photos)) >= floor
    assert mean_cosine(encoder.embed_texts(TEXTS), offline_encoder.embed_texts(TEXTS)) >= floor
    assert mean_cosine(encoder.embed_words(TEXTS), offline_encoder.embed_words(TEXTS)) >= floor
    expected = offline_encoder.model_id + ("+int8" if backend == "onnx-int8" else "")
    assert encoder.model_id == expected
    assert encoder.embed_images([]).shape == (0, encoder.dim)


def test_finetuned_head_runs_on_onnx_features(
    offline_encoder, grocery_photos, onnx_cache: Path, tmp_path: Path
) -> None:
    from visearch.core.encoders.finetuned import HEAD_FILE, MODEL_FILE, FineTunedOfflineEncoder, apply_head

    rng = np.random.default_rng(0)
    head = {
        "w1": rng.normal(0, 0.05, (64, 1280)),
        "b1": np.zeros(64),
        "w2": rng.normal(0, 0.05, (1280, 64)),
        "b2": np.zeros(1280),
    }
    np.savez(tmp_path / HEAD_FILE, **{k: v.astype(np.float32) for k, v in head.items()})
    (tmp_path / MODEL_FILE).write_text(json.dumps({"format": 1, "base": "offline", "version": "abc123"}))

    tuned = FineTunedOfflineEncoder(tmp_path, backend="onnx-int8", onnx_cache=onnx_cache)
    visual, _ = tuned.image_features(grocery_photos)
    reference = apply_head(
        {k: v.astype(np.float32) for k, v in head.items()}, offline_encoder.image_features(grocery_photos)[0]
    )
    assert mean_cosine(visual, reference) >= 0.99
    assert tuned.model_id.endswith("+int8+head:abc123")


@pytest.mark.parametrize("backend, floor", [("onnx", 0.9999), ("onnx-int8", 0.99)])
def test_clip_onnx_matches_torch(clip_copy: Path, backend: str, floor: float) -> None:
    from visearch.core.encoders.clip import ClipEncoder

    images = [Image.new("RGB", (40 + 7 * i, 30 + 5 * i), (30 * i, 120, 250 - 30 * i)) for i in range(5)]
    texts = [*TEXTS, "milk " * 200]  # beyond 77 tokens: truncated, as with torch
    reference = ClipEncoder(str(clip_copy))
    encoder = ClipEncoder(str(clip_copy), backend=backend)
    assert mean_cosine(encoder.embed_images(images), reference.embed_images(images)) >= floor
    assert mean_cosine(encoder.embed_texts(texts), reference.embed_texts(texts)) >= floor
    assert encoder.model_id == reference.model_id + ("+int8" if backend == "onnx-int8" else "")
    assert list((clip_copy / "visearch-onnx").glob("*.onnx")), "exports live next to a local model"


def test_changed_weights_are_exported_again(clip_copy: Path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    from visearch.core.encoders.clip import ClipEncoder

    first = ClipEncoder(str(clip_copy), backend="onnx")
    before = {p.name for p in (clip_copy / "visearch-onnx").glob("*.onnx")}
    weights = clip_copy / "model.safetensors"
    state = load_file(weights)
    name = next(k for k in state if k.endswith("visual_projection.weight"))
    state[name] = state[name] + 0.5 * torch.ones_like(state[name])
    save_file(state, weights, metadata={"format": "pt"})

    second = ClipEncoder(str(clip_copy), backend="onnx")
    after = {p.name for p in (clip_copy / "visearch-onnx").glob("*.onnx")}
    assert after - before, "new weights must give new export files, never the stale ones"
    assert second.model_id != first.model_id
    image = [Image.new("RGB", (40, 40), (200, 30, 30))]
    assert mean_cosine(second.embed_images(image), ClipEncoder(str(clip_copy)).embed_images(image)) >= 0.9999


def test_corrupt_cached_file_is_exported_again(clip_copy: Path, caplog: pytest.LogCaptureFixture) -> None:
    from visearch.core.encoders.clip import ClipEncoder

    ClipEncoder(str(clip_copy), backend="onnx")
    for path in (clip_copy / "visearch-onnx").glob("*.onnx"):
        path.write_bytes(b"not an onnx model")
    with caplog.at_level(logging.WARNING, logger="visearch.core.runtime.onnx"):
        encoder = ClipEncoder(str(clip_copy), backend="onnx")
    assert "unreadable" in caplog.text and "exporting it again" in caplog.text
    assert encoder.embed_texts(["milk"]).shape == (1, encoder.dim)


def test_a_failing_export_says_so_and_names_the_way_out(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from visearch.core.runtime.onnx import cached_session

    attempts: list[Path] = []

    def broken_export(path: Path) -> None:
        attempts.append(path)
        raise RuntimeError("exporter crashed")

    with (
        caplog.at_level(logging.WARNING, logger="visearch.core.runtime.onnx"),
        pytest.raises(EncoderUnavailableError, match="VISEARCH_BACKEND=torch"),
    ):
        cached_session(tmp_path, "tower", "abc123", int8=False, threads=1, export=broken_export)
    assert len(attempts) == 2  # tried twice, then gave up with a message naming the fix
    assert "exporting" in caplog.text and "failed" in caplog.text and "exporter crashed" in caplog.text
    assert "unreadable" not in caplog.text  # nothing was cached, so nothing was "unreadable"
    assert not list(tmp_path.glob("*.onnx"))


def test_quantizing_prints_no_preprocessing_advice(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import torch

    from visearch.core.runtime.onnx import cached_session, export_module

    layer = torch.nn.Linear(8, 4)
    export = lambda path: export_module(layer, (torch.ones(1, 8),), path, ["x"], ["y"], {"x": {0: "b"}})  # noqa: E731
    with caplog.at_level(logging.INFO):
        session = cached_session(tmp_path, "linear", "d1", int8=True, threads=1, export=export)
    assert "pre-processing" not in caplog.text
    assert session.run(None, {"x": np.ones((2, 8), dtype=np.float32)})[0].shape == (2, 4)


def test_bogus_backend_is_a_clear_config_error() -> None:
    from visearch.core.config import load_settings
    from visearch.core.runtime.onnx import check_backend

    with pytest.raises(ConfigError, match="VISEARCH_BACKEND"):
        load_settings(backend="bogus", _env_file=None)
    with pytest.raises(EncoderUnavailableError, match=r"VISEARCH_BACKEND.*torch, onnx, onnx-int8"):
        check_backend("bogus")


def test_settings_reach_the_encoder(monkeypatch: pytest.MonkeyPatch, clip_copy: Path, tmp_path: Path) -> None:
    from visearch.core.config import load_settings
    from visearch.core.encoders.factory import load_encoder

    monkeypatch.setenv("VISEARCH_BACKEND", "onnx-int8")
    settings = load_settings(encoder="clip", clip_model=str(clip_copy), onnx_cache=tmp_path / "cache", _env_file=None)
    encoder = load_encoder(settings)
    assert encoder.model_id.endswith("+int8")
