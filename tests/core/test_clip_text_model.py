"""VISEARCH_CLIP_TEXT_MODEL: a separate text model (multilingual-style) for CLIP's text side.

The text model is a tiny random BERT + mean pooling + a Dense layer to the tiny CLIP's dimension,
saved with `SentenceTransformer.save`: the layout of `clip-ViT-B-32-multilingual-v1`, built here
(never downloaded)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visearch.core.config import load_settings
from visearch.core.encoders.clip import ClipEncoder
from visearch.core.encoders.factory import load_encoder
from visearch.core.errors import (
    ConfigError,
    EncoderMismatchError,
    EncoderUnavailableError,
    TextModelMismatchError,
    split_text_model,
)
from visearch.core.search import SearchService
from visearch.core.store.factory import open_store

#: the tiny CLIP's projection dimension (tests/conftest.py `build_tiny_clip`)
TINY_CLIP_DIM = 16
LETTERS = "abcdefghijklmnopqrstuvwxyzабвгдеєжзиіїйклмнопрстуфхцчшщьюяёъыэ'áéíóúüñçßöä"


def build_tiny_text_model(folder: Path, dim: int, seed: int = 1) -> Path:
    """A random text-only sentence-transformers model (BERT, mean pooling, Dense to `dim`) saved to `folder`."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Pooling, Transformer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    source = folder.parent / f"{folder.name}-transformer"
    source.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *LETTERS, *(f"##{c}" for c in LETTERS)]
    (source / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(str(source / "vocab.txt"), do_lower_case=True, strip_accents=False)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_attention_heads=2,
        num_hidden_layers=2,
        max_position_embeddings=128,
    )
    BertModel(config).eval().save_pretrained(source)
    tokenizer.save_pretrained(source)
    word = Transformer(str(source), max_seq_length=128)
    pool = Pooling(word.get_embedding_dimension(), pooling_mode="mean")
    dense = Dense(pool.get_embedding_dimension(), dim, activation_function=torch.nn.Tanh())
    SentenceTransformer(modules=[word, pool, dense], device="cpu").save(str(folder))
    return folder


@pytest.fixture(scope="module")
def text_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_text_model(tmp_path_factory.mktemp("text-model") / "tiny-multilingual", TINY_CLIP_DIM)


@pytest.fixture(scope="module")
def plain(tiny_clip_dir: Path) -> ClipEncoder:
    return ClipEncoder(str(tiny_clip_dir))


@pytest.fixture(scope="module")
def with_text(tiny_clip_dir: Path, text_model_dir: Path) -> ClipEncoder:
    return ClipEncoder(str(tiny_clip_dir), text_model=str(text_model_dir))


TEXTS = ["сік апельсиновий", "м'ясо", "leche entera", "the milk"]


def test_texts_come_from_the_text_model_images_from_clip(
    plain: ClipEncoder, with_text: ClipEncoder, text_model_dir: Path
) -> None:
    from sentence_transformers import SentenceTransformer

    own = SentenceTransformer(str(text_model_dir), device="cpu", local_files_only=True)
    expected = own.encode(TEXTS, convert_to_numpy=True, normalize_embeddings=True)
    texts = with_text.embed_texts(TEXTS)
    assert texts.shape == (len(TEXTS), TINY_CLIP_DIM)
    assert np.allclose(texts, expected, atol=1e-5)
    assert np.allclose(with_text.embed_words(TEXTS), texts, atol=1e-6)  # the words signal: the same text side
    assert not np.allclose(texts, plain.embed_texts(TEXTS), atol=1e-2)  # not CLIP's own text tower
    images = [Image.new("RGB", (64, 48), (200, 10, 10)), Image.new("RGB", (30, 90), (10, 10, 200))]
    assert np.allclose(with_text.embed_images(images), plain.embed_images(images), atol=1e-6)  # image tower as is
    assert with_text.dim == with_text.words_dim == plain.dim


def test_the_model_id_records_the_text_model_last(plain: ClipEncoder, with_text: ClipEncoder) -> None:
    base, text_model = split_text_model(with_text.model_id)
    assert base == plain.model_id
    assert text_model is not None and text_model.startswith("tiny-multilingual@")
    assert split_text_model(plain.model_id) == (plain.model_id, None)  # an id from before the setting: none


def test_a_text_model_of_another_dimension_is_refused(tiny_clip_dir: Path, tmp_path: Path) -> None:
    wide = build_tiny_text_model(tmp_path / "wide", 24)
    with pytest.raises(ConfigError, match=r"24 dimensions.*into 16.*VISEARCH_CLIP_TEXT_MODEL") as err:
        ClipEncoder(str(tiny_clip_dir), text_model=str(wide))
    assert "unset" in str(err.value)


def test_a_missing_text_model_names_its_setting(
    tiny_clip_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    for name in ("./no/such/text-model", "clip-ViT-B-32-multilingual-v1"):
        with pytest.raises(EncoderUnavailableError, match="VISEARCH_CLIP_TEXT_MODEL") as err:
            ClipEncoder(str(tiny_clip_dir), text_model=name)
        assert "VISEARCH_ENCODER=offline" not in str(err.value)


def test_the_setting_is_validated_at_start(
    tiny_clip_dir: Path, text_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError, match=r"VISEARCH_CLIP_TEXT_MODEL.*VISEARCH_ENCODER=clip"):
        load_settings(encoder="offline", clip_text_model=str(text_model_dir))
    assert load_settings(clip_text_model="  ").clip_text_model is None  # `VISEARCH_CLIP_TEXT_MODEL=` means unset
    monkeypatch.setenv("VISEARCH_CLIP_TEXT_MODEL", str(text_model_dir))
    encoder = load_encoder(load_settings(encoder="clip", clip_model=str(tiny_clip_dir)))
    assert isinstance(encoder, ClipEncoder) and encoder.text_model_name == str(text_model_dir)


def test_auto_does_not_trade_a_named_text_model_for_the_offline_encoder(
    tiny_clip_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    settings = load_settings(encoder="auto", clip_model=str(tiny_clip_dir), clip_text_model=str(tmp_path / "absent"))
    with caplog.at_level(logging.WARNING), pytest.raises(EncoderUnavailableError, match="VISEARCH_CLIP_TEXT_MODEL"):
        load_encoder(settings)
    assert not [r for r in caplog.records if "offline encoder" in r.getMessage()]


async def _built_by(encoder: ClipEncoder, data_dir: Path) -> None:
    store = open_store(load_settings(data_dir=data_dir, encoder="clip"))
    try:
        await store.ensure_collection(encoder.model_id, encoder.dim, text_dim=encoder.words_dim)
    finally:
        await store.close()


@pytest.mark.parametrize("built_with_text", [False, True])
async def test_a_collection_of_another_text_model_is_refused(
    plain: ClipEncoder, with_text: ClipEncoder, tmp_path: Path, built_with_text: bool
) -> None:
    """Built with no text model (as every collection made before the setting) and opened with one, or the
    reverse: refused by the store and by the search service, with the one setting to change."""
    builder, opener = (with_text, plain) if built_with_text else (plain, with_text)
    await _built_by(builder, tmp_path)
    settings = load_settings(data_dir=tmp_path, encoder="clip")
    store = open_store(settings)
    try:
        with pytest.raises(TextModelMismatchError) as err:
            await store.ensure_collection(opener.model_id, opener.dim, text_dim=opener.words_dim)
        assert isinstance(err.value, EncoderMismatchError)  # callers that catch the general error still do
        message = str(err.value)
        assert "VISEARCH_CLIP_TEXT_MODEL" in message and "--reembed" in message
        assert ("unset it" in message) is not built_with_text
        service = SearchService(opener, store, settings)
        with pytest.raises(TextModelMismatchError):
            await service.check_collection()
        info = await SearchService(builder, store, settings).check_collection()  # its own encoder: fine
        assert info.encoder_id == builder.model_id
    finally:
        await store.close()


def test_another_image_model_is_still_the_general_mismatch(plain: ClipEncoder) -> None:
    from visearch.core.errors import encoder_mismatch

    error = encoder_mismatch("c", "offline:x", 1664, plain.model_id + "+text:m", plain.dim)
    assert type(error) is EncoderMismatchError and "VISEARCH_CLIP_TEXT_MODEL" in str(error)
