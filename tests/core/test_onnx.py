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
def onnx_cache(onnx_cache_dir: Path) -> Path:
    """The run's export cache (the offline encoder is exported into it once)."""
    return onnx_cache_dir


@pytest.fixture
def clip_copy(tiny_clip_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny CLIP: tests write exports next to it and change its weights."""
    return Path(shutil.copytree(tiny_clip_dir, tmp_path / "tiny-clip"))


@pytest.mark.parametrize("backend, floor", [("onnx", 0.9999), ("onnx-int8", 0.99)])
def test_offline_onnx_matches_torch(
    torch_offline_encoder, grocery_photos, onnx_cache: Path, backend: str, floor: float
) -> None:
    from visearch.core.encoders.offline import OfflineEncoder

    reference = torch_offline_encoder
    encoder = OfflineEncoder(backend=backend, onnx_cache=onnx_cache)
    assert mean_cosine(encoder.embed_images(grocery_photos), reference.embed_images(grocery_photos)) >= floor
    assert mean_cosine(encoder.embed_texts(TEXTS), reference.embed_texts(TEXTS)) >= floor
    assert mean_cosine(encoder.embed_words(TEXTS), reference.embed_words(TEXTS)) >= floor
    expected = reference.model_id + ("+int8" if backend == "onnx-int8" else "")
    assert encoder.model_id == expected
    assert encoder.embed_images([]).shape == (0, encoder.dim)


def test_finetuned_head_runs_on_onnx_features(
    torch_offline_encoder, grocery_photos, onnx_cache: Path, tmp_path: Path
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
        {k: v.astype(np.float32) for k, v in head.items()}, torch_offline_encoder.image_features(grocery_photos)[0]
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


def test_onnx_tokenizer_gives_sentence_transformers_ids() -> None:
    """The warm start tokenizes with `tokenizers` alone; the ids must be the ones MiniLM was exported with."""
    from sentence_transformers import SentenceTransformer

    from visearch.core.encoders.offline import load_text_tokenizer, offline_weight_files, tokenize

    text_dir = offline_weight_files().text_dir
    model = SentenceTransformer(str(text_dir), device="cpu", local_files_only=True)
    texts = [
        "  Organic OAT milk, 1 l  ",
        "",
        "Äpfel & Birnen – süß",
        "молоко 3,2%",
        "牛奶",
        "word " * 400,  # beyond max_seq_length: truncated the same way
        "emoji 🍌🍎",
    ]
    ours = tokenize(load_text_tokenizer(text_dir), texts)
    theirs = model.preprocess(texts)
    for name in ("input_ids", "attention_mask"):
        assert ours[name].tolist() == theirs[name].tolist(), name
    assert ours["input_ids"].shape[1] == model.max_seq_length


WARM_START = """
import json, sys
import numpy as np
from PIL import Image
from visearch.core.encoders.offline import OfflineEncoder
encoder = OfflineEncoder(backend="onnx")
text = encoder.embed_texts(["red bell pepper"])
after_text = sorted(m for m in ("torch", "sentence_transformers", "transformers") if m in sys.modules)
image = encoder.embed_images([Image.open(sys.argv[1]).convert("RGB")])
after_image = sorted(m for m in ("torch", "sentence_transformers", "transformers") if m in sys.modules)
np.save(sys.argv[2], np.concatenate([text, image]))
print(json.dumps({"after_text": after_text, "after_image": after_image}))
"""


def test_warm_onnx_start_imports_no_torch(offline_encoder, grocery_dir: Path, tmp_path: Path) -> None:
    """With the exports and class anchors cached, a new process embeds texts and photos through ONNX
    Runtime alone (torch + sentence-transformers cost ~7 s to import) and gets the same vectors."""
    import subprocess
    import sys

    photo = sorted((grocery_dir / "val").rglob("*.jpg"))[0]
    expected = np.concatenate(
        [
            offline_encoder.embed_texts(["red bell pepper"]),
            offline_encoder.embed_images([Image.open(photo).convert("RGB")]),
        ]
    )  # the fixture's exports and anchors are in the run's cache now
    out = tmp_path / "vectors.npy"
    done = subprocess.run(
        [sys.executable, "-c", WARM_START, str(photo), str(out)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    imported = json.loads(done.stdout.strip().splitlines()[-1])
    assert imported == {"after_text": [], "after_image": []}
    assert mean_cosine(np.load(out), expected) >= 0.9999


def test_damaged_class_anchors_are_computed_again(
    offline_encoder, onnx_cache: Path, grocery_photos, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from visearch.core.encoders.offline import OfflineEncoder

    offline_encoder.embed_images(grocery_photos[:1])  # the anchors are cached by now
    cache = Path(shutil.copytree(onnx_cache, tmp_path / "cache"))
    anchors = sorted(cache.glob("*-anchors-*.npy"))
    assert anchors, "the class anchors are cached beside the exports"
    for path in anchors:
        path.write_bytes(b"not an array")
    with caplog.at_level(logging.WARNING):
        encoder = OfflineEncoder(backend="onnx", onnx_cache=cache)
        vectors = encoder.embed_images(grocery_photos)
    assert "unreadable" in caplog.text
    assert mean_cosine(vectors, offline_encoder.embed_images(grocery_photos)) >= 0.9999
    fp32 = [p for p in anchors if ".int8" not in p.name]
    assert np.load(fp32[0]).shape == (1000, 384)  # rewritten whole


def test_device_setting_is_checked_and_cpu_means_cpu(caplog: pytest.LogCaptureFixture) -> None:
    from visearch.core.config import load_settings
    from visearch.core.runtime.devices import CPU_PROVIDER, CUDA_PROVIDER, onnx_providers

    with pytest.raises(ConfigError, match=r"VISEARCH_DEVICE.*'gpu' is no device"):
        load_settings(device="gpu", _env_file=None)
    assert load_settings(device="cuda:1", _env_file=None).device == "cuda:1"
    assert onnx_providers("cpu") == [CPU_PROVIDER]
    import onnxruntime

    if CUDA_PROVIDER not in onnxruntime.get_available_providers():  # the plain wheel: the CPU, and why
        with caplog.at_level(logging.WARNING):
            assert onnx_providers("cuda") == [CPU_PROVIDER]
            assert onnx_providers("auto") == [CPU_PROVIDER]
        assert caplog.text.count("onnxruntime-gpu") == 1  # asked for cuda: said once; auto: quietly the CPU
    else:
        assert onnx_providers("auto")[0] == CUDA_PROVIDER


def test_texts_batched_by_length_keep_their_own_vectors(offline_encoder) -> None:
    """The ONNX text path sorts a batch by length and puts the vectors back: each row must be its own text's."""
    texts = [("milk " * (i % 17)) + f"item {i}" + (" with a long description" * (i % 5)) for i in range(70)]
    batched = offline_encoder.embed_words(texts)
    alone = np.concatenate([offline_encoder.embed_words([t]) for t in texts])
    assert float((batched * alone).sum(axis=1).min()) >= 0.9999


def test_a_damaged_tokenizer_file_is_a_clear_error(tmp_path: Path) -> None:
    from visearch.core.encoders.offline import load_text_tokenizer, offline_weight_files

    folder = Path(
        shutil.copytree(
            offline_weight_files().text_dir, tmp_path / "minilm", ignore=shutil.ignore_patterns("*.safetensors")
        )
    )
    (folder / "tokenizer.json").write_text("{ not json", encoding="utf-8")
    with pytest.raises(EncoderUnavailableError, match=r"MiniLM's tokenizer at .*minilm cannot be read"):
        load_text_tokenizer(folder)
