"""CLIP through sentence-transformers: the primary encoder (one space for photos and texts).

`ClipEncoder("clip-ViT-B-32")` loads the model from the Hugging Face cache, or downloads it when the
Hub can be reached; `ClipEncoder("/path/to/folder")` loads a local folder (a model saved with
`SentenceTransformer.save`, a plain Hugging Face CLIP folder, or a fine-tuned model written by
`visearch train`) and never touches the network.

When the weights cannot be had, the constructor fails fast with `EncoderUnavailableError` instead of
letting huggingface_hub retry for a minute or more: the cache is tried first (no network), then the
Hub's API is asked once, with a short timeout, whether the model exists, and only then are the
files downloaded. Measured here (no network): 0.1 s to fail, versus 70 s for a plain
`SentenceTransformer("clip-ViT-B-32")`.

`text_model` (VISEARCH_CLIP_TEXT_MODEL) swaps CLIP's text tower for another sentence-transformers
text model trained into the same space, e.g. `clip-ViT-B-32-multilingual-v1` (50+ languages,
distilled into ViT-B/32's text space): it embeds the queries *and* the catalog's words, the image
tower is untouched. Its name is appended to `model_id` (`+text:NAME`, always last), so a collection
remembers it and one built with another text model (or none) is refused (`TextModelMismatchError`).
It always runs on torch: VISEARCH_BACKEND=onnx / onnx-int8 applies to the image tower only.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from visearch.core.encoders.base import l2_normalise, quiet_model_loading
from visearch.core.errors import TEXT_MODEL_MARK, ConfigError, EncoderUnavailableError

if TYPE_CHECKING:
    from visearch.core.runtime.onnx import InferenceSession

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "clip-ViT-B-32"
#: sentence-transformers' organisation for bare model names ("clip-ViT-B-32")
HUB_ORGANISATION = "sentence-transformers"
#: CLIP's text window (tokens); longer texts are truncated by the tokenizer
CLIP_MAX_TOKENS = 77
#: seconds to wait for the Hub to answer before declaring it unreachable
HUB_PROBE_TIMEOUT = 3.0
#: files whose bytes make the weights of a local folder (hashed into model_id)
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".onnx")
#: our ONNX exports of a local folder's towers; not `onnx/` (sentence-transformers' own ONNX folder),
#: and left out of `weights_digest` so exporting never changes the model id
ONNX_SUBFOLDER = "visearch-onnx"

# Default relevance cut-offs (cosine) for CLIP ViT-B/32. Not measured here: no CLIP weights can be
# had on the build machines. Typical ViT-B/32 cosines: the same object photographed twice scores
# ~0.8-0.95, same category different item ~0.65-0.8, unrelated photos ~0.4-0.6, so 0.75 keeps
# "this product or a close look-alike". Text-image cosines are much lower: a matching caption
# scores ~0.25-0.35, an unrelated one ~0.1-0.2, so 0.20 drops the junk. Calibrate with
# `visearch eval` on the shop's photos and override with VISEARCH_MIN_SCORE_IMAGE / _TEXT.
CLIP_MIN_SCORE_IMAGE = 0.75
CLIP_MIN_SCORE_TEXT = 0.20
# Text-to-text cosines of CLIP's text tower run high (unrelated short texts ~0.6-0.7, a paraphrase
# ~0.85+); 0.80 is a starting point, not a measurement: calibrate with VISEARCH_MIN_SCORE_WORDS.
CLIP_MIN_SCORE_WORDS = 0.80


class ClipEncoder:
    """A sentence-transformers CLIP model (hub name or local folder) as an `Encoder`."""

    def __init__(
        self,
        model_name_or_path: str = DEFAULT_MODEL,
        device: str = "auto",
        batch_size: int = 32,
        backend: str = "torch",
        threads: int = 1,
        onnx_cache: Path | str | None = None,
        text_model: str | None = None,
    ) -> None:
        from visearch.core.runtime.devices import torch_device
        from visearch.core.runtime.onnx import check_backend

        self.backend = check_backend(backend)
        #: as configured (`auto` included): the ONNX sessions pick their provider from it
        self.device = device
        # torch runs the model on the device; with ONNX Runtime the torch model only preprocesses
        # and is traced for the export, both on the CPU (a separate text model always runs in torch)
        model_device = torch_device(device) if self.backend == "torch" else "cpu"
        self.batch_size = max(1, int(batch_size))
        self.min_score_image = CLIP_MIN_SCORE_IMAGE
        self.min_score_text = CLIP_MIN_SCORE_TEXT

        name = str(model_name_or_path).strip() or DEFAULT_MODEL
        folder = Path(name).expanduser()
        self._image_session: InferenceSession | None = None
        self._text_session: InferenceSession | None = None
        self._text_model: Any = None
        if folder.is_dir():
            self._model = _load_folder(folder, model_device)
            self.model_id = f"clip:{folder.resolve().name}@{weights_digest(folder)}"
            onnx_folder = folder / ONNX_SUBFOLDER
        else:
            if _looks_like_path(name):
                raise _unavailable(name, f"folder {name} does not exist")
            self._model = _load_hub(name, model_device)
            self.model_id = f"clip:{_short_hub_name(name)}"
            onnx_folder = None
        self.name = name

        modalities = getattr(self._model, "modalities", None)
        if modalities is not None and "image" not in modalities:
            raise _unavailable(name, f"the model takes {sorted(modalities)}, not images: it is not a CLIP model")
        _cap_text_window(self._model)
        self.dim = _embedding_dim(self._model)
        # the words signal: the text side (CLIP's own tower, or the text model) on both sides
        self.words_dim = self.dim
        self.min_score_words = CLIP_MIN_SCORE_WORDS
        #: the separate text model's name or folder as configured; None = CLIP's own text tower
        self.text_model_name = (text_model or "").strip() or None
        text_id = self._load_text_model(self.text_model_name, torch_device(device)) if self.text_model_name else None
        if self.backend != "torch":
            self._open_onnx(onnx_folder, threads, onnx_cache)
            if self.backend == "onnx-int8":
                self.model_id += "+int8"
        if text_id is not None:
            self.model_id += f"{TEXT_MODEL_MARK}{text_id}"  # last: errors.split_text_model reads it from there

    def _load_text_model(self, name: str, device: str) -> str:
        """Load the separate text model; refuse one that takes no text or embeds into another dimension.
        Returns its id (`name`, or folder name @ weights digest) for `model_id`."""
        folder = Path(name).expanduser()
        setting = "VISEARCH_CLIP_TEXT_MODEL"
        if folder.is_dir():
            model = _load_folder(folder, device, setting)
            text_id = f"{folder.resolve().name}@{weights_digest(folder)}"
        else:
            if _looks_like_path(name):
                raise _unavailable(name, f"folder {name} does not exist", setting)
            model = _load_hub(name, device, setting)
            text_id = _short_hub_name(name)
        modalities = getattr(model, "modalities", None)
        if modalities is not None and "text" not in modalities:
            raise _unavailable(name, f"the model takes {sorted(modalities)}, not text", setting)
        text_dim = _embedding_dim(model)
        if text_dim != self.dim:
            raise ConfigError(
                f"VISEARCH_CLIP_TEXT_MODEL {name!r} embeds texts into {text_dim} dimensions, but the CLIP image "
                f"model {self.name!r} into {self.dim}: the text model must be trained into the image model's space "
                f"(e.g. clip-ViT-B-32-multilingual-v1 with clip-ViT-B-32). Pick a matching pair, or unset "
                f"VISEARCH_CLIP_TEXT_MODEL to use CLIP's own text tower."
            )
        self._text_model = model
        return text_id

    @property
    def sentence_transformer(self) -> Any:
        """The loaded CLIP `SentenceTransformer`: `visearch train --encoder clip` fine-tunes and saves it."""
        return self._model

    # -- the Encoder interface --------------------------------------------------------------------

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(n, dim) float32 unit rows."""
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        rgb = [img if img.mode == "RGB" else img.convert("RGB") for img in images]
        if self._image_session is not None:
            return self._encode_onnx(rgb, self._image_session)
        return self._encode(self._model, rgb)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32 unit rows, from the text model when one is set, else CLIP's text tower
        (texts beyond its window, 77 tokens for CLIP, are truncated by the tokenizer)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        inputs = [str(t) for t in texts]
        if self._text_model is not None:
            return self._encode(self._text_model, inputs)
        if self._text_session is not None:
            return self._encode_onnx(inputs, self._text_session)
        return self._encode(self._model, inputs)

    def embed_words(self, texts: Sequence[str]) -> np.ndarray:
        """The words signal: the same text side, compared with the catalog's embedded titles and tags."""
        return self.embed_texts(texts)

    def _encode(self, model: Any, inputs: list[Any]) -> np.ndarray:
        vectors = model.encode(
            inputs,
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return l2_normalise(np.asarray(vectors, dtype=np.float32))

    def _encode_onnx(self, inputs: list[Any], session: InferenceSession) -> np.ndarray:
        """One tower through ONNX Runtime; inputs prepared by the SentenceTransformer's own processor."""
        out: list[np.ndarray] = []
        for start in range(0, len(inputs), self.batch_size):
            features = self._model.preprocess(inputs[start : start + self.batch_size])
            if "pixel_values" in features:
                feeds = {"pixel_values": np.asarray(features["pixel_values"], dtype=np.float32)}
            else:
                feeds = {k: np.asarray(features[k], dtype=np.int64) for k in ("input_ids", "attention_mask")}
            out.append(session.run(None, feeds)[0])
        return l2_normalise(np.concatenate(out))

    def _open_onnx(self, folder: Path | None, threads: int, onnx_cache: Path | str | None) -> None:
        """Open (exporting once) both towers, the text tower only without a separate text model:
        next to a local model in visearch-onnx/, else in the cache folder."""
        from visearch.core.runtime.onnx import cached_session, default_cache_dir, module_digest, writable_dir

        cache = default_cache_dir(onnx_cache)
        target = writable_dir(folder, cache) if folder is not None else cache
        digest = module_digest(self._model)
        base = self.model_id.split("@")[0].replace("clip:", "clip-").replace("/", "_")
        int8 = self.backend == "onnx-int8"
        self._image_session = cached_session(
            target,
            f"{base}-image",
            digest,
            int8,
            threads,
            lambda path: export_image_tower(self._model, path),
            self.device,
        )
        if self._text_model is None:
            self._text_session = cached_session(
                target,
                f"{base}-text",
                digest,
                int8,
                threads,
                lambda path: export_text_tower(self._model, path),
                self.device,
            )


def _clip_model(model: Any) -> Any:
    """The transformers CLIPModel inside the SentenceTransformer (module 0), in fp32 on the CPU for export."""
    inner = getattr(model[0], "auto_model", None) or getattr(model[0], "model", None)
    if inner is None or not hasattr(inner, "get_image_features"):
        raise EncoderUnavailableError(
            "this CLIP model has no transformers CLIPModel inside; set VISEARCH_BACKEND=torch"
        )
    return inner


def _pooled(output: Any) -> Any:
    """get_*_features returns a tensor (older transformers) or an output whose pooler_output is the embedding."""
    return output if hasattr(output, "dim") else output.pooler_output


def export_image_tower(model: Any, path: Path) -> None:
    """Export pixel_values (n, 3, H, W) -> projected image embeddings (n, dim); dynamic batch."""
    from PIL import Image as PILImage

    pixels = model.preprocess([PILImage.new("RGB", (64, 48)), PILImage.new("RGB", (48, 64))])["pixel_values"]
    axes = {"pixel_values": {0: "n"}, "image_embeds": {0: "n"}}
    _export_tower(model, path, "get_image_features", (pixels.float().cpu(),), ["pixel_values"], "image_embeds", axes)


def export_text_tower(model: Any, path: Path) -> None:
    """Export input_ids, attention_mask (n, seq) -> projected text embeddings (n, dim); dynamic batch and length."""
    features = model.preprocess(["a photo of the milk and more words", "milk"])
    example = (features["input_ids"].cpu(), features["attention_mask"].cpu())
    axes = {"input_ids": {0: "n", 1: "seq"}, "attention_mask": {0: "n", 1: "seq"}, "text_embeds": {0: "n"}}
    _export_tower(model, path, "get_text_features", example, ["input_ids", "attention_mask"], "text_embeds", axes)


def _export_tower(
    model: Any,
    path: Path,
    features_method: str,
    example: tuple[Any, ...],
    input_names: list[str],
    output_name: str,
    dynamic_axes: dict[str, dict[int, str]],
) -> None:
    """Export one CLIP tower: `features_method` of the CLIPModel, its inputs named as the method takes them."""
    import torch

    from visearch.core.runtime.onnx import export_module

    clip = _clip_model(model)

    class Tower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.clip = clip

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            named = dict(zip(input_names, inputs, strict=True))
            return _pooled(getattr(self.clip, features_method)(**named))

    export_module(Tower().float().cpu().eval(), example, path, input_names, [output_name], dynamic_axes)


def weights_digest(folder: Path, length: int = 12) -> str:
    """Short SHA-256 of the weight files under `folder` (relative names + bytes): same weights, same id."""
    digest = hashlib.sha256()
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix in WEIGHT_SUFFIXES and ONNX_SUBFOLDER not in p.relative_to(folder).parts
    )
    for path in files:
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:length]


def _load_folder(folder: Path, device: str, setting: str = "VISEARCH_CLIP_MODEL") -> Any:
    quiet_model_loading()
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(str(folder), device=device, local_files_only=True)
    except Exception as exc:
        raise _unavailable(str(folder), f"{type(exc).__name__}: {_first_line(exc)}", setting) from exc


def _load_hub(name: str, device: str, setting: str = "VISEARCH_CLIP_MODEL") -> Any:
    """Cache first (no network); then, only if the Hub answers quickly, a normal (downloading) load."""
    quiet_model_loading()
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(name, device=device, local_files_only=True)
    except Exception as exc:
        cached_error = f"{type(exc).__name__}: {_first_line(exc)}"
    logger.debug("CLIP model %r not in the local cache (%s)", name, cached_error)

    repo_id = name if "/" in name else f"{HUB_ORGANISATION}/{name}"
    state, why = hub_status(repo_id)
    if state != "available":
        raise _unavailable(name, f"it is not in the local Hugging Face cache and {why}", setting)
    logger.info("downloading model %r (%s) from the Hugging Face Hub", name, setting)
    try:
        return SentenceTransformer(name, device=device)
    except Exception as exc:
        raise _unavailable(name, f"{type(exc).__name__}: {_first_line(exc)}", setting) from exc


def hub_status(repo_id: str, timeout: float = HUB_PROBE_TIMEOUT) -> tuple[str, str]:
    """Ask the Hub about `repo_id` once, quickly: ("available" | "missing" | "unreachable", why).

    Honours HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE, HF_ENDPOINT, HF_TOKEN and the proxy variables.
    Only a JSON answer from the Hub's API counts: a captive portal or an intercepting gateway that
    answers every request (as on our build machines) is "unreachable", not a Hub.
    """
    import httpx
    from huggingface_hub import constants, get_token

    # read the environment now, not at import (huggingface_hub's constants are frozen at import)
    offline_vars = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    if constants.HF_HUB_OFFLINE or any(
        os.environ.get(v, "").strip().lower() in {"1", "true", "yes", "on"} for v in offline_vars
    ):
        return "unreachable", "offline mode is on (HF_HUB_OFFLINE)"
    endpoint = (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")
    token = get_token()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.get(
            f"{endpoint}/api/models/{repo_id}", headers=headers, timeout=timeout, follow_redirects=True
        )
    except httpx.HTTPError as exc:
        return "unreachable", f"{endpoint} cannot be reached ({type(exc).__name__}: {_first_line(exc)})"
    if "json" not in response.headers.get("content-type", ""):
        return (
            "unreachable",
            f"{endpoint} answered HTTP {response.status_code} but not as the Hugging Face Hub (a proxy or captive portal?)",
        )
    if response.status_code == 200:
        return "available", ""
    if response.status_code in (401, 403, 404):
        return "missing", f"the Hub has no model {repo_id!r} that this machine may read (HTTP {response.status_code})"
    return "unreachable", f"{endpoint} answered HTTP {response.status_code}"


def _unavailable(name: str, reason: str, setting: str = "VISEARCH_CLIP_MODEL") -> EncoderUnavailableError:
    """The error naming the fix; `setting` is the variable that named the model (image or text side)."""
    if setting == "VISEARCH_CLIP_MODEL":
        other = "or set VISEARCH_ENCODER=offline to use the bundled offline encoder."
    else:
        other = f"or unset {setting} to use CLIP's own text tower."
    return EncoderUnavailableError(
        f"{'CLIP' if setting == 'VISEARCH_CLIP_MODEL' else 'text model'} weights could not be loaded for {name!r}: "
        f"{reason}. Either point {setting} at a local folder that holds the model "
        f"(for example one saved with SentenceTransformer.save on a machine with internet), {other}"
    )


def _looks_like_path(name: str) -> bool:
    """A hub id is `name` or `org/name`; anything else (absolute, ./, ~, deeper) is meant as a folder."""
    return name.startswith(("/", ".", "~", "\\")) or name.count("/") > 1 or "\\" in name


def _short_hub_name(name: str) -> str:
    """`sentence-transformers/clip-ViT-B-32` and `clip-ViT-B-32` are the same model: one id."""
    prefix = f"{HUB_ORGANISATION}/"
    return name[len(prefix) :] if name.startswith(prefix) else name


def _cap_text_window(model: Any) -> None:
    """Make sure the tokenizer truncates at CLIP's 77-token window (position embeddings end there)."""
    current = getattr(model, "max_seq_length", None)
    if current is None or current > CLIP_MAX_TOKENS:
        try:
            model.max_seq_length = CLIP_MAX_TOKENS
        except (AttributeError, ValueError):  # pragma: no cover - module without a settable window
            logger.warning("could not cap the CLIP text window at %d tokens", CLIP_MAX_TOKENS)


def _embedding_dim(model: Any) -> int:
    getter = getattr(model, "get_embedding_dimension", None) or getattr(model, "get_sentence_embedding_dimension", None)
    dim = getter() if getter is not None else None
    if not dim:
        probe = model.encode(["a photo"], convert_to_numpy=True, show_progress_bar=False)
        dim = int(np.asarray(probe).shape[1])
    return int(dim)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= 300 else line[:297] + "..."
