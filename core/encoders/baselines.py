"""Baselines to measure the real encoders against, as encoders: pHash and raw ImageNet CNN features.

Both plug into the same index and search code, so `visearch eval --method phash,cnn,encoder`
compares them on the same catalog, queries, grouping and metrics.

- **pHash** (perceptual hash, the classic near-duplicate detector): greyscale, 32x32, 2-D DCT,
  the 8x8 lowest frequencies, one bit per coefficient (above or below their median). Bits become
  a ±1/8 vector, so cosine similarity ranks exactly like Hamming distance: cos = 1 - 2*H/64.
- **CNN features** ("pretrained VGG16 features" approach, here EfficientNet-Lite0 from the offline
  encoder's wheel): the 1280-d pooled feature, L2-normalised (cosine = Euclidean ranking).

Neither embeds text: text queries are reported as skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Protocol

import numpy as np
from PIL import Image

from visearch.core.encoders.base import l2_normalise
from visearch.core.errors import EncoderUnavailableError

HASH_SIDE = 32
HASH_BITS_SIDE = 8


@lru_cache(maxsize=1)
def _dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II basis (n x n): D @ x is the DCT of x."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    basis: np.ndarray = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)  # numpy: Any
    basis[0] /= np.sqrt(2.0)
    return basis


def phash_bits(img: Image.Image) -> np.ndarray:
    """The 64 pHash bits of an image (bool array)."""
    grey = img.convert("L").resize((HASH_SIDE, HASH_SIDE), Image.Resampling.LANCZOS)
    pixels = np.asarray(grey, dtype=np.float64)
    d = _dct_matrix(HASH_SIDE)
    low = (d @ pixels @ d.T)[:HASH_BITS_SIDE, :HASH_BITS_SIDE].ravel()
    median = np.median(low[1:])  # the DC term says only how bright the image is
    bits: np.ndarray = low > median  # numpy types the comparison as Any
    return bits


class PHashEncoder:
    """pHash as a 64-d ±1/8 vector: cosine ranking = Hamming ranking."""

    model_id = "baseline:phash-dct-64"
    dim = HASH_BITS_SIDE * HASH_BITS_SIDE
    min_score_image = 0.5  # at most 16 of 64 bits differ
    min_score_text = 1.0

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        bits = np.stack([phash_bits(img) for img in images])
        vectors: np.ndarray = (np.where(bits, 1.0, -1.0) / np.sqrt(self.dim)).astype(np.float32)  # numpy: Any
        return vectors

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        raise EncoderUnavailableError("pHash compares pictures only; it cannot search by text")


class ImageFeatures(Protocol):
    """What the CNN baseline needs of the offline encoder: its pooled visual features."""

    def image_features(self, images: Sequence[Image.Image]) -> tuple[np.ndarray, np.ndarray]:
        """Unit visual features (n, 1280) and class probabilities (n, 1000)."""
        ...


class CnnFeatureEncoder:
    """Raw ImageNet CNN features (EfficientNet-Lite0 pooled, 1280-d), no metric learning, no text."""

    model_id = "baseline:efficientnet-lite0-pooled"
    dim = 1280
    min_score_image = 0.5
    min_score_text = 1.0

    def __init__(self, offline: ImageFeatures | None = None, device: str = "cpu", batch_size: int = 32) -> None:
        if offline is None:
            from visearch.core.encoders.offline import OfflineEncoder

            offline = OfflineEncoder(device=device, batch_size=batch_size)
        self._offline = offline

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        visual, _ = self._offline.image_features(images)
        return l2_normalise(visual)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        raise EncoderUnavailableError("raw CNN features compare pictures only; they cannot search by text")
