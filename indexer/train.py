"""`visearch train`: fine-tune the similarity model on the shop's own similarity groups.

A product with several photos (a shop photo and real-life photos) is a similarity group. For the
offline encoder the backbone stays frozen: each photo's EfficientNet features are computed once,
for the plain photo and a few augmented views (random resized crop, flip, colour jitter, blur),
and a small residual head (`core/encoders/finetuned.py`) is trained on those cached features, so
training takes minutes on a CPU. Losses from the deep-metric-learning family:

- `mnrl` (default): multiple-negatives ranking / N-pair, in-batch negatives, symmetric;
- `ms`: MultiSimilarity with its pair mining (Wang et al. 2019);
- `triplet`: triplet loss with online batch-hard mining.

Batches hold P products x 2 photos each. Held out: one photo of every product with at least three
(or the `--eval-queries` set), searched against all other photos exactly as the deployed encoder
would (visual block through the head + the ConSE text block); Recall@1/5 before and after, early
stopping on Recall@1 (then MRR).
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from visearch.core.catalog import read_catalog
from visearch.core.encoders.base import l2_normalise
from visearch.core.encoders.finetuned import FORMAT, HEAD_FILE, MODEL_FILE, apply_head
from visearch.core.encoders.offline import OfflineEncoder
from visearch.core.errors import CatalogError, VisearchError
from visearch.core.images import load_image_file

Loss = Literal["mnrl", "ms", "triplet"]


@dataclass
class TrainConfig:
    """What `visearch train` can tune; the defaults are what we measured on the grocery set."""

    loss: Loss = "mnrl"
    epochs: int = 40
    products_per_batch: int = 32
    views: int = 4
    hidden: int = 512
    lr: float = 2e-3
    weight_decay: float = 1e-4
    scale: float = 20.0  # mnrl logit scale (1 / temperature)
    margin: float = 0.2  # triplet
    patience: int = 6
    colour: bool = True  # colour jitter; off when colour tells products apart
    seed: int = 0
    max_pixels: int = 40_000_000


@dataclass
class Scores:
    recall1: float
    recall5: float
    mrr: float
    queries: int

    def better_than(self, other: Scores | None) -> bool:
        return other is None or (self.recall1, self.mrr) > (other.recall1, other.mrr)


@dataclass
class TrainResult:
    before: Scores
    after: Scores
    epochs_run: int
    best_epoch: int
    losses: list[float] = field(default_factory=list)
    images: int = 0
    products: int = 0
    model_dir: Path | None = None
    version: str = ""


# --- data ------------------------------------------------------------------------------------------


def similarity_groups(catalog: Path, max_pixels: int) -> tuple[list[str], list[Image.Image], list[int]]:
    """Products with their local photos: (product ids, images, product index per image)."""
    read = read_catalog(catalog)
    product_ids: list[str] = []
    images: list[Image.Image] = []
    owners: list[int] = []
    for row in read.rows:
        local = [ref for ref in row.product.images if not ref.startswith(("http://", "https://"))]
        loaded = []
        for ref in local:
            try:
                loaded.append(load_image_file(catalog.parent / ref, max_pixels))
            except (OSError, VisearchError):
                continue
        if not loaded:
            continue
        product_ids.append(row.product.id)
        for img in loaded:
            images.append(img)
            owners.append(len(product_ids) - 1)
    if not product_ids:
        raise CatalogError(f"{catalog}: no product has a readable local photo to train on")
    return product_ids, images, owners


def augment(img: Image.Image, rng: random.Random, colour: bool) -> Image.Image:
    """A product-photo augmentation: random resized crop, flip, colour jitter, a little blur."""
    width, height = img.size
    area = width * height * rng.uniform(0.5, 1.0)
    ratio = rng.uniform(3 / 4, 4 / 3)
    w = int(min(width, max(8, (area * ratio) ** 0.5)))
    h = int(min(height, max(8, (area / ratio) ** 0.5)))
    left, top = rng.randint(0, width - w), rng.randint(0, height - h)
    out = img.crop((left, top, left + w, top + h))
    if rng.random() < 0.5:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if colour:
        out = ImageEnhance.Brightness(out).enhance(rng.uniform(0.7, 1.3))
        out = ImageEnhance.Contrast(out).enhance(rng.uniform(0.7, 1.3))
        out = ImageEnhance.Color(out).enhance(rng.uniform(0.7, 1.3))
    if rng.random() < 0.3:
        out = out.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.5)))
    return out


def cached_features(
    encoder: OfflineEncoder,
    images: Sequence[Image.Image],
    views: int,
    colour: bool,
    seed: int,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Visual features (n, views, 1280) — view 0 is the plain photo — and the ConSE block (n, 384)."""
    rng = random.Random(seed)
    visual = np.zeros((len(images), views, 1280), dtype=np.float32)
    semantic = np.zeros((len(images), 384), dtype=np.float32)
    for i, img in enumerate(images):
        batch = [img] + [augment(img, rng, colour) for _ in range(views - 1)]
        feats, probs = encoder.backbone_features(batch)  # the frozen backbone, never a head
        visual[i] = feats
        semantic[i] = encoder.semantic_from_probs(probs[:1])[0]
        if progress:
            progress(1)
    return visual, semantic


def holdout_split(owners: Sequence[int], seed: int, share: float = 0.2) -> tuple[list[int], list[int], list[int]]:
    """(train indexes, held-out query indexes, gallery indexes).

    Of each product with 3 or more photos, `share` of the photos after the first (at least one) are
    held out as customer photos; the gallery is every product's first photo (the shop photo), so
    the held-out score measures "customer photo -> shop photo", the hard case, and does not
    saturate on near-duplicate photos of one shooting session.
    """
    rng = random.Random(seed)
    by_product: dict[int, list[int]] = {}
    for i, owner in enumerate(owners):
        by_product.setdefault(owner, []).append(i)
    held: list[int] = []
    for idx in by_product.values():
        if len(idx) >= 3:
            held.extend(rng.sample(idx[1:], max(1, round(share * (len(idx) - 1)))))
    held_set = set(held)
    gallery = [idx[0] for idx in by_product.values()]
    return [i for i in range(len(owners)) if i not in held_set], sorted(held), gallery


# --- evaluation ------------------------------------------------------------------------------------


def full_vectors(
    visual: np.ndarray, semantic: np.ndarray, head: dict[str, np.ndarray] | None, a: float, b: float
) -> np.ndarray:
    """What the deployed encoder would store: [a * head(visual), b * semantic], unit rows."""
    v = apply_head(head, visual) if head is not None else l2_normalise(visual)
    return l2_normalise(np.concatenate([a * v, b * semantic], axis=1))


def score(queries: np.ndarray, query_owner: Sequence[int], gallery: np.ndarray, gallery_owner: Sequence[int]) -> Scores:
    """Recall@1/5 and MRR@5 of product retrieval (a product's best photo counts)."""
    sims = queries @ gallery.T
    owners = np.asarray(gallery_owner)
    hits1 = hits5 = 0
    rr = 0.0
    for row, want in zip(sims, query_owner, strict=True):
        order = np.argsort(-row)
        ranked: list[int] = []
        for j in order:
            if owners[j] not in ranked:
                ranked.append(int(owners[j]))
            if len(ranked) == 5:
                break
        if want in ranked:
            rank = ranked.index(want) + 1
            hits1 += rank == 1
            hits5 += 1
            rr += 1.0 / rank
    n = max(1, len(query_owner))
    return Scores(hits1 / n, hits5 / n, rr / n, len(query_owner))


# --- training --------------------------------------------------------------------------------------


def loss_function(name: Loss, cfg: TrainConfig) -> Callable[..., Any]:
    """The batch loss `cfg.loss` names: (unit embeddings, product labels) -> scalar tensor."""
    import torch
    import torch.nn.functional as F

    def mnrl(emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        anchors, positives = emb[0::2], emb[1::2]
        logits = cfg.scale * anchors @ positives.T
        target = torch.arange(len(anchors), device=emb.device)
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2

    def triplet(emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        dist = 1 - emb @ emb.T
        same = labels[:, None] == labels[None, :]
        eye = torch.eye(len(labels), dtype=torch.bool, device=emb.device)
        hardest_pos = dist.masked_fill(~same | eye, -1).max(dim=1).values
        hardest_neg = dist.masked_fill(same, 4).min(dim=1).values
        return F.relu(hardest_pos - hardest_neg + cfg.margin).mean()

    def multi_similarity(
        emb: torch.Tensor,
        labels: torch.Tensor,
        alpha: float = 2.0,
        beta: float = 50.0,
        base: float = 0.5,
        eps: float = 0.1,
    ) -> torch.Tensor:
        sim = emb @ emb.T
        same = labels[:, None] == labels[None, :]
        eye = torch.eye(len(labels), dtype=torch.bool, device=emb.device)
        total = emb.new_zeros(())
        for i in range(len(labels)):
            pos = sim[i][same[i] & ~eye[i]]
            neg = sim[i][~same[i]]
            if len(pos) == 0 or len(neg) == 0:
                continue
            pos_kept = pos[pos - eps < neg.max()]
            neg_kept = neg[neg + eps > pos.min()]
            if len(pos_kept):
                total = total + torch.log1p(torch.exp(-alpha * (pos_kept - base)).sum()) / alpha
            if len(neg_kept):
                total = total + torch.log1p(torch.exp(beta * (neg_kept - base)).sum()) / beta
        return total / len(labels)

    return {"mnrl": mnrl, "triplet": triplet, "ms": multi_similarity}[name]


SnapshotT = TypeVar("SnapshotT")
SnapshotT_co = TypeVar("SnapshotT_co", covariant=True)


class Learner(Protocol[SnapshotT_co]):
    """The model-specific half of a training run; `run_epochs` is the other half, shared by every model."""

    def parameters(self) -> list[Any]:
        """The tensors the optimiser updates."""
        ...

    def embed_batch(
        self, chosen: Sequence[int], by_product: dict[int, list[int]], rng: random.Random
    ) -> tuple[Any, list[int]]:
        """Unit embeddings (a tensor with grad) of two photos (or views) per chosen product, and their labels."""
        ...

    def evaluate(self) -> Scores:
        """The held-out score of the current weights."""
        ...

    def snapshot(self) -> SnapshotT_co:
        """A copy of the current weights (the best epoch's is kept)."""
        ...

    def set_training(self, training: bool) -> None:
        """Switch the model between training and evaluation mode (dropout, norms)."""
        ...


def products_of(owners: Sequence[int], train_idx: Sequence[int]) -> dict[int, list[int]]:
    """Training photos grouped by product, in first-seen order."""
    by_product: dict[int, list[int]] = {}
    for i in train_idx:
        by_product.setdefault(owners[i], []).append(i)
    return by_product


def run_epochs(
    learner: Learner[SnapshotT],
    owners: Sequence[int],
    train_idx: Sequence[int],
    cfg: TrainConfig,
    progress: Callable[[str, int, int], None] | None = None,
    on_epoch: Callable[[int, float, Scores], None] | None = None,
) -> tuple[SnapshotT, TrainResult]:
    """The training loop every model shares: shuffled batches of P products, AdamW, a held-out score after each
    epoch, early stopping after `cfg.patience` epochs without a better one. Returns the best epoch's weights."""
    import torch

    optimiser = torch.optim.AdamW(learner.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = loss_function(cfg.loss, cfg)
    rng = random.Random(cfg.seed)
    by_product = products_of(owners, train_idx)
    products = list(by_product)
    if len(products) < 2:
        raise CatalogError("training needs at least 2 products with photos (in-batch negatives)")
    batches = [products[s : s + cfg.products_per_batch] for s in range(0, len(products), cfg.products_per_batch)]
    total_steps = sum(1 for chosen in batches if len(chosen) >= 2) * cfg.epochs
    done = [0]

    def step_done() -> None:
        done[0] += 1
        if progress:
            progress("train", done[0], total_steps)

    before = learner.evaluate()
    best, best_state, best_epoch, stale = before, learner.snapshot(), 0, 0
    losses: list[float] = []
    epochs_run = 0
    for epoch in range(1, cfg.epochs + 1):
        epochs_run = epoch
        losses.append(train_epoch(learner, optimiser, loss_fn, products, by_product, cfg, rng, step_done))
        learner.set_training(False)
        current = learner.evaluate()
        if on_epoch:
            on_epoch(epoch, losses[-1], current)
        if current.better_than(best):
            best, best_state, best_epoch, stale = current, learner.snapshot(), epoch, 0
        else:
            stale += 1
            if stale >= cfg.patience:
                break
    return best_state, TrainResult(
        before=before, after=best, epochs_run=epochs_run, best_epoch=best_epoch, losses=losses
    )


def train_epoch(
    learner: Learner[Any],
    optimiser: Any,
    loss_fn: Callable[..., Any],
    products: list[int],
    by_product: dict[int, list[int]],
    cfg: TrainConfig,
    rng: random.Random,
    step_done: Callable[[], None],
) -> float:
    """One pass over the products (shuffled in place) in batches of P, one optimiser step a batch; the mean loss.
    A last batch of a single product is skipped: it has no in-batch negative."""
    import torch

    rng.shuffle(products)
    learner.set_training(True)
    epoch_loss, steps = 0.0, 0
    for start in range(0, len(products), cfg.products_per_batch):
        chosen = products[start : start + cfg.products_per_batch]
        if len(chosen) < 2:
            continue
        emb, labels = learner.embed_batch(chosen, by_product, rng)
        loss = loss_fn(emb, torch.tensor(labels, device=emb.device))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        epoch_loss += loss.item()
        steps += 1
        step_done()
    return epoch_loss / max(1, steps)


class _HeadLearner:
    """The offline model: a residual head on cached, frozen backbone features (`core/encoders/finetuned.py`)."""

    def __init__(
        self, visual: np.ndarray, hidden: int, seed: int, evaluate: Callable[[dict[str, np.ndarray] | None], Scores]
    ) -> None:
        import torch

        torch.manual_seed(seed)
        dim = visual.shape[2]
        self.w1 = torch.nn.Linear(dim, hidden)
        self.w2 = torch.nn.Linear(hidden, dim)
        torch.nn.init.zeros_(self.w2.weight)  # an untrained head is the identity: the zero-shot encoder
        torch.nn.init.zeros_(self.w2.bias)
        self.views = visual.shape[1]
        self.features = torch.from_numpy(visual)
        self._evaluate = evaluate
        self._trained = False

    def parameters(self) -> list[Any]:
        return [*self.w1.parameters(), *self.w2.parameters()]

    def embed_batch(
        self, chosen: Sequence[int], by_product: dict[int, list[int]], rng: random.Random
    ) -> tuple[Any, list[int]]:
        import torch

        rows, labels = [], []
        for p in chosen:  # two different photos (or two views of the only photo) per product
            photos = by_product[p]
            first, second = rng.sample(photos, 2) if len(photos) >= 2 else (photos[0], photos[0])
            for img in (first, second):
                rows.append(self.features[img, rng.randrange(self.views)])
                labels.append(p)
        x = torch.nn.functional.normalize(torch.stack(rows), dim=1)
        self._trained = True
        return torch.nn.functional.normalize(x + self.w2(torch.relu(self.w1(x))), dim=1), labels

    def evaluate(self) -> Scores:
        return self._evaluate(self.snapshot() if self._trained else None)

    def snapshot(self) -> dict[str, np.ndarray]:
        return {
            "w1": self.w1.weight.detach().numpy().copy(),
            "b1": self.w1.bias.detach().numpy().copy(),
            "w2": self.w2.weight.detach().numpy().copy(),
            "b2": self.w2.bias.detach().numpy().copy(),
        }

    def set_training(self, training: bool) -> None:
        """The head has no dropout or norms: nothing to switch."""


def train_head(
    visual: np.ndarray,
    owners: Sequence[int],
    train_idx: Sequence[int],
    cfg: TrainConfig,
    evaluate: Callable[[dict[str, np.ndarray] | None], Scores],
    on_epoch: Callable[[int, float, Scores], None] | None = None,
) -> tuple[dict[str, np.ndarray], TrainResult]:
    """Train the residual head on cached features with early stopping on the held-out score."""
    learner = _HeadLearner(visual, cfg.hidden, cfg.seed, evaluate)
    return run_epochs(learner, owners, train_idx, cfg, on_epoch=on_epoch)


def write_model_info(output: Path, base: str, version: str, info: dict[str, Any]) -> None:
    """visearch-model.json, which every trained model folder carries: its format, base encoder and version first."""
    info = {"format": FORMAT, "base": base, "version": version, **info}
    (output / MODEL_FILE).write_text(json.dumps(info, indent=2, default=str), encoding="utf-8")


def run_record(catalog: Path, cfg: TrainConfig, result: TrainResult, started: float) -> dict[str, Any]:
    """What visearch-model.json records of the training run, for every kind of model."""
    return {
        "trained_on": str(catalog),
        "config": asdict(cfg),
        "before": asdict(result.before),
        "after": asdict(result.after),
        "best_epoch": result.best_epoch,
        "images": result.images,
        "products": result.products,
        "seconds": round(time.monotonic() - started, 1),
    }


def save_model(output: Path, weights: dict[str, np.ndarray], info: dict[str, Any]) -> str:
    """Write head.npz and visearch-model.json; the version is a hash of the weights."""
    output.mkdir(parents=True, exist_ok=True)
    np.savez(output / HEAD_FILE, allow_pickle=False, **weights)  # numeric arrays only
    version = hashlib.sha256((output / HEAD_FILE).read_bytes()).hexdigest()[:12]
    write_model_info(output, "offline", version, info)
    return version


@dataclass
class _FeatureSplit:
    """The held-out score's photos: which train, which form the gallery, and the queries' plain-photo features."""

    train: list[int]
    gallery: list[int]
    query_visual: np.ndarray  # (queries, 1, 1280)
    query_semantic: np.ndarray
    query_owner: list[int]


def features_cache_key(catalog: Path, images: int, cfg: TrainConfig, model_id: str) -> str:
    """What the cached features depend on: the catalog file, its photo count, the views drawn and the backbone."""
    facts = [str(catalog.resolve()), catalog.stat().st_mtime_ns, images, cfg.views, cfg.colour, cfg.seed, model_id]
    return hashlib.sha256(json.dumps(facts).encode()).hexdigest()


def catalog_features(
    encoder: OfflineEncoder,
    images: Sequence[Image.Image],
    catalog: Path,
    output: Path,
    cfg: TrainConfig,
    tick: Callable[[int], None],
) -> tuple[np.ndarray, np.ndarray]:
    """`cached_features` of the catalog's photos, kept in the output folder: a re-run skips the backbone."""
    cache = output / "features-cache.npz"
    key = features_cache_key(catalog, len(images), cfg, encoder.model_id)
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as data:
            if str(data["key"]) == key:
                return data["visual"], data["semantic"]
    visual, semantic = cached_features(encoder, images, cfg.views, cfg.colour, cfg.seed, tick)
    output.mkdir(parents=True, exist_ok=True)
    np.savez(cache, key=np.array(key), visual=visual, semantic=semantic)
    return visual, semantic


def split_features(
    visual: np.ndarray,
    semantic: np.ndarray,
    owners: Sequence[int],
    product_ids: Sequence[str],
    encoder: OfflineEncoder,
    eval_queries: list[tuple[Image.Image, str]] | None,
    cfg: TrainConfig,
    tick: Callable[[int], None],
) -> _FeatureSplit:
    """Every photo trains and `eval_queries` score (their features computed here), or `holdout_split`'s photos."""
    if eval_queries:
        index = {pid: i for i, pid in enumerate(product_ids)}
        kept = [(img, index[pid]) for img, pid in eval_queries if pid in index]
        q_visual, q_semantic = cached_features(encoder, [img for img, _ in kept], 1, False, cfg.seed, tick)
        everything = list(range(len(owners)))
        return _FeatureSplit(everything, everything, q_visual, q_semantic, [owner for _, owner in kept])
    train_idx, held, gallery_idx = holdout_split(owners, cfg.seed)
    if not held:
        raise CatalogError("no product has 3 or more photos to hold one out: pass --eval-queries")
    return _FeatureSplit(train_idx, gallery_idx, visual[held][:, :1], semantic[held], [owners[i] for i in held])


def head_scorer(
    visual: np.ndarray, semantic: np.ndarray, owners: Sequence[int], split: _FeatureSplit, encoder: OfflineEncoder
) -> Callable[[dict[str, np.ndarray] | None], Scores]:
    """The held-out score of a head (None: the zero-shot encoder), searched as the deployed encoder would."""
    a, b = encoder.visual_weight, encoder.semantic_weight  # the deployed mix of the two blocks
    gallery_owner = [owners[i] for i in split.gallery]

    def evaluate(head: dict[str, np.ndarray] | None) -> Scores:
        gallery = full_vectors(visual[split.gallery, 0], semantic[split.gallery], head, a, b)
        queries = full_vectors(split.query_visual[:, 0], split.query_semantic, head, a, b)
        return score(queries, split.query_owner, gallery, gallery_owner)

    return evaluate


def train_offline(
    catalog: Path,
    output: Path,
    encoder: OfflineEncoder,
    cfg: TrainConfig,
    eval_queries: list[tuple[Image.Image, str]] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    on_epoch: Callable[[int, float, Scores], None] | None = None,
) -> TrainResult:
    """The whole job: groups -> cached features -> held-out split -> train -> save."""
    started = time.monotonic()
    product_ids, images, owners = similarity_groups(catalog, cfg.max_pixels)
    done = [0]

    def tick(n: int) -> None:
        done[0] += n
        if progress:
            progress("features", done[0], len(images) + len(eval_queries or []))

    visual, semantic = catalog_features(encoder, images, catalog, output, cfg, tick)
    split = split_features(visual, semantic, owners, product_ids, encoder, eval_queries, cfg, tick)
    evaluate = head_scorer(visual, semantic, owners, split, encoder)
    weights, result = train_head(visual, owners, split.train, cfg, evaluate, on_epoch)
    result.images, result.products = len(images), len(product_ids)
    record = {"base_model_id": encoder.model_id, **run_record(catalog, cfg, result, started)}
    result.version = save_model(output, weights, record)
    result.model_dir = output
    return result
