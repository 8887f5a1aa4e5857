"""`visearch train --encoder clip`: fine-tune CLIP's image tower on the shop's own similarity groups.

The model is loaded and saved as a sentence-transformers model, so the result is a folder that
`ClipEncoder` (and `VISEARCH_MODEL_DIR` / `--model`) loads like any other CLIP folder. Only the image
side learns: the vision projection (`visual_projection`), and with `unfreeze_blocks=N` the last N
transformer blocks of the vision encoder (with its final layer norm). Everything else, the text
tower included, stays frozen, so the text side of the shared space does not move; the image side
moves a little, which is why the learning rate is small and early stopping keeps the best epoch.

The data, split, augmentation, losses and scores are the offline path's (`indexer/train.py`):
batches of P products x 2 photos (or two views of a product's only photo), in-batch negatives
(`mnrl`) by default, Recall@1/5 and MRR on held-out customer photos before and after. Views are
drawn on the fly (one draw in `views` is the plain photo). Runs on CUDA when it is there, else CPU.

Not measured here: no CLIP weights can be had on the build machines, so the default learning rate is
the usual one for tuning a pretrained projection, not one tuned on the grocery set.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from visearch.core.encoders.clip import ClipEncoder, weights_digest
from visearch.core.errors import CatalogError, ConfigError
from visearch.indexer.train import (
    Scores,
    TrainConfig,
    TrainResult,
    augment,
    holdout_split,
    run_epochs,
    run_record,
    score,
    similarity_groups,
    write_model_info,
)

#: photos are shrunk once to this many times the model's input side: enough for random crops, and
#: a 4000 px shop photo is not resized from full size at every epoch
KEEP_SIDE_FACTOR = 2


@dataclass
class ClipTrainConfig(TrainConfig):
    """`TrainConfig` with CLIP's defaults: a small learning rate, and how many blocks learn."""

    lr: float = 2e-5
    unfreeze_blocks: int = 0  # last vision encoder blocks that learn besides the projection


@dataclass
class _Split:
    """Which photos train, which are the queries and which the gallery of the held-out score."""

    train: list[int]
    query_images: list[Image.Image]
    query_owner: list[int]
    gallery: list[int]


def pick_device(device: str | None) -> str:
    """The asked device, else CUDA when torch sees one, else the CPU."""
    import torch

    if device:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def trainable_parameters(clip: Any, unfreeze_blocks: int) -> list[Any]:
    """Freeze the whole CLIP model but the vision projection (and the last N vision blocks)."""
    clip.requires_grad_(False)
    modules = [clip.visual_projection]
    if unfreeze_blocks > 0:
        layers = clip.vision_model.encoder.layers
        if unfreeze_blocks > len(layers):
            raise ConfigError(f"--unfreeze-blocks {unfreeze_blocks}: the vision encoder has only {len(layers)} blocks")
        modules += [*layers[-unfreeze_blocks:], clip.vision_model.post_layernorm]
    for module in modules:
        module.requires_grad_(True)
    return [p for module in modules for p in module.parameters()]


def input_side(image_processor: Any) -> int:
    """The side of the square the processor feeds the model (224 for ViT-B/32)."""
    crop = getattr(image_processor, "crop_size", None) or {}
    size = getattr(image_processor, "size", None) or {}
    return int(crop.get("height") or size.get("shortest_edge") or size.get("height") or 224)


def shrink(img: Image.Image, side: int) -> Image.Image:
    """A copy whose shorter side is at most `side` (never enlarged)."""
    short = min(img.size)
    if short <= side:
        return img
    scale = side / short
    return img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.BICUBIC)


def image_features(clip: Any, pixels: Any) -> Any:
    """Unit image embeddings; `get_image_features` returns a tensor or (transformers 5) an output object."""
    import torch
    import torch.nn.functional as F

    out = clip.get_image_features(pixel_values=pixels)
    features = out if isinstance(out, torch.Tensor) else out.pooler_output
    return F.normalize(features.float(), dim=-1)


def split_photos(
    owners: Sequence[int],
    product_ids: Sequence[str],
    images: Sequence[Image.Image],
    eval_queries: list[tuple[Image.Image, str]] | None,
    seed: int,
) -> _Split:
    """The held-out split of `visearch.indexer.train`, or every photo trains and `eval_queries` score."""
    if eval_queries:
        index = {pid: i for i, pid in enumerate(product_ids)}
        kept = [(img, index[pid]) for img, pid in eval_queries if pid in index]
        if not kept:
            raise CatalogError("no --eval-queries row expects a product of the catalog")
        everything = list(range(len(images)))
        return _Split(everything, [img for img, _ in kept], [owner for _, owner in kept], everything)
    train_idx, held, gallery = holdout_split(owners, seed)
    if not held:
        raise CatalogError("no product has 3 or more photos to hold one out: pass --eval-queries")
    return _Split(train_idx, [images[i] for i in held], [owners[i] for i in held], gallery)


class _ClipTrainer:
    """One training run: the CLIP model, its preprocessing and a thread pool for the photo views."""

    def __init__(self, st_model: Any, device: str, pool: ThreadPoolExecutor, batch_size: int) -> None:
        import torch

        self.clip = st_model[0].model  # the Hugging Face CLIPModel inside the sentence-transformers module
        processor = st_model[0].processor
        self.image_processor = getattr(processor, "image_processor", processor)
        self.device = torch.device(device)
        self.pool = pool
        self.batch_size = batch_size

    def pixels(self, images: Sequence[Image.Image]) -> Any:
        """Preprocess photos exactly as `SentenceTransformer.encode` does, one photo per worker."""
        import torch

        def one(img: Image.Image) -> Any:
            return self.image_processor(images=[img.convert("RGB")], return_tensors="pt")["pixel_values"][0]

        return torch.stack(list(self.pool.map(one, images))).to(self.device)

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(n, dim) unit rows, as the deployed encoder would store them."""
        import torch

        self.clip.eval()
        chunks = []
        with torch.no_grad():
            for start in range(0, len(images), self.batch_size):
                chunks.append(
                    image_features(self.clip, self.pixels(images[start : start + self.batch_size])).cpu().numpy()
                )
        return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros((0, 0), dtype=np.float32)

    def views(self, specs: Sequence[tuple[Image.Image, int | None]], colour: bool) -> Any:
        """Pixels of each (photo, seed): the plain photo when seed is None, else an augmented view."""

        def one(spec: tuple[Image.Image, int | None]) -> Image.Image:
            img, seed = spec
            return img if seed is None else augment(img, random.Random(seed), colour)

        return self.pixels(list(self.pool.map(one, specs)))


def snapshot(params: Sequence[Any]) -> list[Any]:
    """CPU copies of the trainable weights: the best epoch's, kept off the GPU."""
    return [p.detach().to("cpu", copy=True) for p in params]


def restore(params: Sequence[Any], saved: Sequence[Any]) -> None:
    """Put a snapshot back (the best epoch's weights are the ones saved)."""
    import torch

    with torch.no_grad():
        for p, value in zip(params, saved, strict=True):
            p.copy_(value.to(p.device))


def batch_specs(
    chosen: Sequence[int],
    by_product: dict[int, list[int]],
    images: Sequence[Image.Image],
    views: int,
    rng: random.Random,
) -> tuple[list[tuple[Image.Image, int | None]], list[int]]:
    """Two photos per product (two views of the only one), each the plain photo once in `views` draws."""
    specs: list[tuple[Image.Image, int | None]] = []
    labels: list[int] = []
    for p in chosen:
        photos = by_product[p]
        pair = rng.sample(photos, 2) if len(photos) >= 2 else [photos[0], photos[0]]
        for k, i in enumerate(pair):
            forced = len(photos) < 2 and k == 1  # the second view of a single photo is never the plain one
            plain = not forced and rng.randrange(max(1, views)) == 0
            specs.append((images[i], None if plain else rng.getrandbits(32)))
            labels.append(p)
    return specs, labels


class _ClipLearner:
    """The CLIP model's half of `run_epochs`: the trainable image-side parameters, augmented views on the fly."""

    def __init__(
        self, trainer: _ClipTrainer, images: Sequence[Image.Image], cfg: ClipTrainConfig, evaluate: Callable[[], Scores]
    ) -> None:
        self.trainer = trainer
        self.images = images
        self.cfg = cfg
        self._evaluate = evaluate
        self._params = trainable_parameters(trainer.clip, cfg.unfreeze_blocks)

    def parameters(self) -> list[Any]:
        return self._params

    def embed_batch(
        self, chosen: Sequence[int], by_product: dict[int, list[int]], rng: random.Random
    ) -> tuple[Any, list[int]]:
        specs, labels = batch_specs(chosen, by_product, self.images, self.cfg.views, rng)
        return image_features(self.trainer.clip, self.trainer.views(specs, self.cfg.colour)), labels

    def evaluate(self) -> Scores:
        return self._evaluate()

    def snapshot(self) -> list[Any]:
        return snapshot(self._params)

    def set_training(self, training: bool) -> None:
        self.trainer.clip.train(training)


def fit(
    trainer: _ClipTrainer,
    images: Sequence[Image.Image],
    owners: Sequence[int],
    train_idx: Sequence[int],
    cfg: ClipTrainConfig,
    evaluate: Callable[[], Scores],
    progress: Callable[[str, int, int], None] | None = None,
    on_epoch: Callable[[int, float, Scores], None] | None = None,
) -> TrainResult:
    """The shared training loop (`run_epochs`) on CLIP; the best epoch's weights are put back in the model."""
    learner = _ClipLearner(trainer, images, cfg, evaluate)
    best_state, result = run_epochs(learner, owners, train_idx, cfg, progress, on_epoch)
    restore(learner.parameters(), best_state)
    trainer.clip.eval()
    return result


def save_clip_model(st_model: Any, output: Path, info: dict[str, Any]) -> str:
    """A sentence-transformers folder plus visearch-model.json; the version is ClipEncoder's weights digest."""
    output.mkdir(parents=True, exist_ok=True)
    st_model.save(str(output))
    version = weights_digest(output)
    write_model_info(output, "clip", version, info)
    return version


def train_clip(
    catalog: Path,
    output: Path,
    model_source: str,
    cfg: TrainConfig,
    eval_queries: list[tuple[Image.Image, str]] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    on_epoch: Callable[[int, float, Scores], None] | None = None,
    device: str | None = None,
) -> TrainResult:
    """The whole job: load CLIP -> groups -> held-out split -> train -> save (a sentence-transformers folder)."""
    started = time.monotonic()
    clip_cfg = cfg if isinstance(cfg, ClipTrainConfig) else ClipTrainConfig(**asdict(cfg))
    device = pick_device(device)
    base = ClipEncoder(model_source, device=device)  # cache/hub/folder logic and its EncoderUnavailableError
    product_ids, images, owners = similarity_groups(catalog, clip_cfg.max_pixels)
    split = split_photos(owners, product_ids, images, eval_queries, clip_cfg.seed)
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1), thread_name_prefix="visearch-views") as pool:
        trainer = _ClipTrainer(base.sentence_transformer, device, pool, batch_size=2 * clip_cfg.products_per_batch)
        side = KEEP_SIDE_FACTOR * input_side(trainer.image_processor)
        photos = [shrink(img, side) for img in images]
        queries = [shrink(img, side) for img in split.query_images]
        gallery_images = [photos[i] for i in split.gallery]
        gallery_owner = [owners[i] for i in split.gallery]

        def evaluate() -> Scores:
            return score(trainer.embed(queries), split.query_owner, trainer.embed(gallery_images), gallery_owner)

        result = fit(trainer, photos, owners, split.train, clip_cfg, evaluate, progress, on_epoch)
    result.images, result.products = len(images), len(product_ids)
    record = {
        "base_model_id": base.model_id,
        "base_model": model_source,
        "device": device,
        "epochs_run": result.epochs_run,
        "losses": result.losses,
        **run_record(catalog, clip_cfg, result, started),
    }
    result.version = save_clip_model(base.sentence_transformer, output, record)
    result.model_dir = output
    return result
