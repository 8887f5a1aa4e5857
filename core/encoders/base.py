"""What an encoder is: images and texts in, L2-normalised float32 vectors of one space out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image


@runtime_checkable
class Encoder(Protocol):
    """The interface every encoder implements. Methods are synchronous and CPU-heavy:
    the serving path calls them off the event loop (see `visearch.core.search`)."""

    #: stable identifier of model + weights + bridge version, stored with the collection
    model_id: str
    #: vector dimension
    dim: int
    #: default relevance cut-offs (cosine) for photo and text queries
    min_score_image: float
    min_score_text: float

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Embed RGB images; returns (n, dim) float32, rows L2-normalised."""
        ...

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts (too-long texts are truncated, never an error); (n, dim) float32, L2-normalised."""
        ...


@runtime_checkable
class WordsEncoder(Protocol):
    """An encoder that also reads words: the catalog's titles, tags and OCR text, and the customer's
    words, embedded in one text-to-text space (a second vector next to the image vector)."""

    #: dimension of the words vectors
    words_dim: int
    #: default relevance cut-off (cosine) of the words signal
    min_score_words: float

    def embed_words(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts for text-to-text matching; (n, words_dim) float32, L2-normalised."""
        ...


def words_dim(encoder: object) -> int | None:
    """The encoder's words dimension, or None when it has no words signal (pHash, CNN baselines...)."""
    return encoder.words_dim if isinstance(encoder, WordsEncoder) else None


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation that leaves all-zero rows at zero instead of NaN."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    normalised: np.ndarray = vectors / np.maximum(norms, 1e-12)  # numpy types this quotient as Any
    return normalised


def quiet_model_loading() -> None:
    """No transformers progress bar while weights load (a bar on every start is noise in logs).
    Called where a model loads through transformers, not before: importing it costs ~0.7 s."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
