"""A fine-tuned offline encoder: the frozen EfficientNet-Lite0 features through a small trained head.

`visearch train` writes a model folder:

    visearch-model.json   what it is: {"format": 1, "base": "offline", "version": "<sha256 prefix>", ...}
    head.npz              the head's weights (numpy arrays, no pickle)

The head is residual, `h(x) = normalise(x + W2 relu(W1 x + b1) + b2)`, with W2 starting at zero,
so an untrained head is the zero-shot encoder. Only the visual block of the offline vector changes;
the ConSE text block stays, so text queries keep working. The model id carries the head's version,
so a collection built with one model refuses vectors from another (encoder-mismatch check).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Unpack

import numpy as np
from PIL import Image

from visearch.core.encoders.base import l2_normalise
from visearch.core.encoders.offline import OfflineEncoder, OfflineOptions
from visearch.core.errors import EncoderUnavailableError

MODEL_FILE = "visearch-model.json"
HEAD_FILE = "head.npz"
FORMAT = 1


def read_model_info(model_dir: Path) -> dict[str, Any] | None:
    """The folder's visearch-model.json, or None when the folder is not a visearch model."""
    path = Path(model_dir) / MODEL_FILE
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EncoderUnavailableError(f"{path} cannot be read: {exc}") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise EncoderUnavailableError(
            f"{path} is not a visearch model of format {FORMAT}; retrain with `visearch train`"
        )
    return info


def finetuned_model_id(base_id: str, version: str) -> str:
    """The id of the offline encoder `base_id` with the trained head `version` on top."""
    return f"{base_id}+head:{version}"


def apply_head(weights: dict[str, np.ndarray], visual: np.ndarray) -> np.ndarray:
    """h(x) = normalise(x + W2 relu(W1 x + b1) + b2) on unit rows."""
    hidden = np.maximum(visual @ weights["w1"].T + weights["b1"], 0.0)
    return l2_normalise((visual + hidden @ weights["w2"].T + weights["b2"]).astype(np.float32))


class FineTunedOfflineEncoder(OfflineEncoder):
    """The offline encoder with a trained head on its visual features."""

    def __init__(self, model_dir: Path | str, **options: Unpack[OfflineOptions]) -> None:
        model_dir = Path(model_dir)
        info = read_model_info(model_dir)
        if info is None or info.get("base") != "offline":
            raise EncoderUnavailableError(
                f"{model_dir} is not a fine-tuned offline model (no {MODEL_FILE} with base offline)"
            )
        try:
            with np.load(model_dir / HEAD_FILE, allow_pickle=False) as data:
                self._head = {name: data[name].astype(np.float32) for name in ("w1", "b1", "w2", "b2")}
        except (OSError, KeyError, ValueError) as exc:
            raise EncoderUnavailableError(f"{model_dir / HEAD_FILE} cannot be loaded: {exc}") from None
        super().__init__(**options)
        self.model_info = info
        self.model_id = finetuned_model_id(self.model_id, str(info["version"]))

    def image_features(self, images: Sequence[Image.Image]) -> tuple[np.ndarray, np.ndarray]:
        visual, probs = super().image_features(images)
        return apply_head(self._head, visual), probs
