"""Reading the words printed on a product photo (brand names on packaging) at index time.

RapidOCR (`rapidocr-onnxruntime`: PaddleOCR's detection, direction and recognition networks as
ONNX files inside the wheel, so nothing is downloaded) runs on ONNX Runtime. Measured on this
2-core machine: 0.1-0.4 s per photo, so it is off by default and turned on with `VISEARCH_OCR=true`
or `visearch index --ocr`; a shop whose products carry their names on the box gains the most.

Only confident lines are kept, photos are scaled down first (big phone photos gain nothing and cost
seconds), and a failure on one photo gives an empty text, never a failed index run.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np
from PIL import Image

from visearch.core.errors import EncoderUnavailableError

logger = logging.getLogger(__name__)

#: longest side given to the detector; labels stay readable, time stays bounded
OCR_MAX_SIDE = 1024
#: recognition confidence below which a line is dropped (noise on textures and fabrics)
MIN_CONFIDENCE = 0.6
#: characters of OCR text kept per photo (the words signal truncates long texts anyway)
MAX_CHARS = 300


class TextReader:
    """RapidOCR behind a lock: one engine per process, loaded on first use, safe from any thread."""

    def __init__(self, min_confidence: float = MIN_CONFIDENCE, max_side: int = OCR_MAX_SIDE) -> None:
        self.min_confidence = min_confidence
        self.max_side = max_side
        self._engine: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        if self._engine is None:
            try:
                from rapidocr_onnxruntime import RapidOCR
            except ImportError as exc:
                raise EncoderUnavailableError(
                    f"OCR needs the rapidocr-onnxruntime package ({exc.name} is missing): "
                    "pip install rapidocr-onnxruntime, or index without --ocr / VISEARCH_OCR"
                ) from None
            self._engine = RapidOCR()
        return self._engine

    def read(self, image: Image.Image) -> str:
        """The photo's confident text lines, top to bottom, joined by spaces ("" when none)."""
        img = image if image.mode == "RGB" else image.convert("RGB")
        if max(img.size) > self.max_side:
            img = img.copy()
            img.thumbnail((self.max_side, self.max_side), Image.Resampling.BILINEAR)
        with self._lock:  # the engine's sessions are not documented as thread-safe
            engine = self._load()
            try:
                result, _ = engine(np.asarray(img))
            except Exception as exc:  # an odd photo must not stop an index run
                logger.warning("OCR failed on one photo (%s: %s); indexing it without text", type(exc).__name__, exc)
                return ""
        lines = []
        for box, text, confidence in result or []:
            if float(confidence) >= self.min_confidence and str(text).strip():
                top = min(float(point[1]) for point in box)
                lines.append((top, " ".join(str(text).split())))
        return " ".join(text for _, text in sorted(lines))[:MAX_CHARS]
