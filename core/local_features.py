"""Local features and geometric verification: is the catalog product *in* the customer's photo?

A global embedding compares whole pictures, so a shelf photo ranks the product with the most
similar overall look first. Instance-level retrieval checks the top candidates instead: SIFT
keypoints of the query photo are matched to each candidate's (extracted once at index time), and a
robust homography says whether enough of them agree on one plane - the printed label of a carton,
a logo, a pattern. Plain fruit and solid colours have few stable keypoints: they get no bonus and
keep their embedding order.

What keeps wrong products from collecting "inliers" (naive RANSAC at 5 px gives them 17-24):
one query match per catalog keypoint, MAGSAC at 3 px, warps of implausible scale or perspective
rejected, inliers that cover a tiny part of the catalog photo rejected, and the score counts
*distinct* inlier positions (a cluster of near-duplicate keypoints counts once).

OpenCV (`cv2`, already installed for OCR) does the work: SIFT is patent-free since 2020.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

#: bump when extraction changes (detector, sizes, encoding): entries of another version are not read,
#: and `visearch index` extracts them again (nothing else is redone)
EXTRACTOR_VERSION = "sift-1"
#: the longer side an image is scaled to before keypoints are detected
MAX_SIDE = 640
#: keypoints kept per catalog photo (the strongest): ~66 KB raw, less once compressed
MAX_CATALOG_FEATURES = 500
#: keypoints kept per query photo: more than a catalog photo's, since the product is a part of it
MAX_QUERY_FEATURES = 1000
#: Lowe's ratio test: a match counts when its best distance is below this share of the second best
RATIO = 0.8
#: MAGSAC's inlier threshold, in pixels of the catalog photo
REPROJECTION_PX = 3.0
#: the catalog photo may appear between 1/8 and 8 times its scaled size in the query
MIN_SCALE, MAX_SCALE = 0.125, 8.0
#: inliers must cover at least this share of the catalog photo's area (their bounding box)
MIN_INLIER_AREA = 0.01
#: inlier positions closer than this (pixels) count once
DISTINCT_CELL_PX = 4.0

_MAGIC = b"VLF1"


@dataclass(frozen=True, slots=True)
class LocalFeatures:
    """Keypoint positions (pixels of the scaled image), RootSIFT descriptors, and the scaled image size."""

    xy: np.ndarray  # (n, 2) float32
    descriptors: np.ndarray  # (n, 128) uint8: SIFT, quantised; RootSIFT is computed when matching
    width: int
    height: int

    def __len__(self) -> int:
        return int(self.xy.shape[0])

    def to_bytes(self) -> bytes:
        """Compact form for the feature store: header, uint16 positions, uint8 descriptors, zlib."""
        n = len(self)
        body = np.round(self.xy).astype("<u2").tobytes() + self.descriptors.astype(np.uint8).tobytes()
        return _MAGIC + struct.pack("<IHH", n, self.width, self.height) + zlib.compress(body, 6)

    @classmethod
    def from_bytes(cls, blob: bytes) -> LocalFeatures:
        """Inverse of `to_bytes`; a damaged blob raises `ValueError` (the candidate is then not verified)."""
        if len(blob) < 12 or blob[:4] != _MAGIC:
            raise ValueError("not a visearch local-features blob")
        n, width, height = struct.unpack("<IHH", blob[4:12])
        try:
            body = zlib.decompress(blob[12:])
        except zlib.error as exc:
            raise ValueError(f"damaged local-features blob: {exc}") from None
        if len(body) != n * (4 + 128):
            raise ValueError("damaged local-features blob: wrong length")
        xy = np.frombuffer(body[: n * 4], dtype="<u2").reshape(n, 2).astype(np.float32)
        descriptors = np.frombuffer(body[n * 4 :], dtype=np.uint8).reshape(n, 128)
        return cls(xy, descriptors, width, height)


@dataclass(frozen=True, slots=True)
class Verification:
    """What geometric verification found for one candidate: distinct inlier positions (0 = none)."""

    inliers: int
    matches: int


def extract(image: Image.Image, max_features: int = MAX_CATALOG_FEATURES) -> LocalFeatures:
    """SIFT keypoints of `image` (scaled to `MAX_SIDE`), the strongest `max_features` of them."""
    import cv2

    grey = image.convert("L")
    scale = min(1.0, MAX_SIDE / max(grey.size))
    if scale < 1.0:
        grey = grey.resize(
            (max(1, round(grey.width * scale)), max(1, round(grey.height * scale))), Image.Resampling.BILINEAR
        )
    pixels = np.asarray(grey)
    sift = cv2.SIFT.create(nfeatures=max_features)
    keypoints, descriptors = sift.detectAndCompute(pixels, None)
    if descriptors is None or not keypoints:
        return LocalFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.uint8), grey.width, grey.height)
    xy = np.array([kp.pt for kp in keypoints], dtype=np.float32)
    return LocalFeatures(xy, np.clip(descriptors, 0, 255).astype(np.uint8), grey.width, grey.height)


def root_sift(descriptors: np.ndarray) -> np.ndarray:
    """RootSIFT (Arandjelovic & Zisserman 2012): L1-normalise, square root; L2 distances then compare
    like the Hellinger kernel, which matches SIFT histograms better than plain L2."""
    d = descriptors.astype(np.float32)
    d /= np.maximum(d.sum(axis=1, keepdims=True), 1e-7)
    return np.sqrt(d)


def verify(query: LocalFeatures, query_root: np.ndarray, candidate: LocalFeatures) -> Verification:
    """Match the query's keypoints to one candidate's and count distinct inliers of a plausible homography.

    `query_root`: `root_sift(query.descriptors)`, computed once per query for all candidates."""
    import cv2

    if len(query) < 8 or len(candidate) < 8:
        return Verification(0, 0)
    matcher = cv2.BFMatcher(cv2.NORM_L2)
    pairs = matcher.knnMatch(query_root, root_sift(candidate.descriptors), k=2)
    best: dict[int, tuple[float, int]] = {}  # catalog keypoint -> (distance, query keypoint)
    for pair in pairs:
        if len(pair) < 2:
            continue
        first, second = pair
        if first.distance < RATIO * second.distance:
            kept = best.get(first.trainIdx)
            if kept is None or first.distance < kept[0]:
                best[first.trainIdx] = (first.distance, first.queryIdx)
    if len(best) < 8:
        return Verification(0, len(best))
    train_idx = np.fromiter(best.keys(), dtype=np.int64)
    query_idx = np.array([best[i][1] for i in train_idx], dtype=np.int64)
    src = candidate.xy[train_idx].reshape(-1, 1, 2)
    dst = query.xy[query_idx].reshape(-1, 1, 2)
    homography, mask = cv2.findHomography(src, dst, cv2.USAC_MAGSAC, REPROJECTION_PX, maxIters=2000, confidence=0.999)
    if homography is None or mask is None or not plausible_warp(homography):
        return Verification(0, len(best))
    inlier_src = candidate.xy[train_idx[mask.ravel().astype(bool)]]
    if len(inlier_src) < 4 or inlier_area(inlier_src, candidate) < MIN_INLIER_AREA:
        return Verification(0, len(best))
    return Verification(distinct_positions(inlier_src), len(best))


def plausible_warp(homography: np.ndarray) -> bool:
    """False for warps no photo of a product makes: a mirror, a scale far off, strong perspective."""
    if abs(homography[2, 2]) < 1e-9:
        return False
    h = homography / homography[2, 2]
    det = float(np.linalg.det(h[:2, :2]))
    if det <= 0:  # a mirror image or a collapse to a line
        return False
    scale = det**0.5
    if not MIN_SCALE <= scale <= MAX_SCALE:
        return False
    return bool(abs(h[2, 0]) < 0.004 and abs(h[2, 1]) < 0.004)


def inlier_area(points: np.ndarray, features: LocalFeatures) -> float:
    """Share of the catalog photo covered by the inliers' bounding box."""
    span = points.max(axis=0) - points.min(axis=0)
    return float(span[0] * span[1]) / max(1.0, float(features.width * features.height))


def distinct_positions(points: np.ndarray) -> int:
    """How many `DISTINCT_CELL_PX` cells hold at least one point."""
    cells = np.floor(points / DISTINCT_CELL_PX).astype(np.int64)
    return len({(int(x), int(y)) for x, y in cells})


def crops(image: Image.Image, share: float = 0.7) -> list[Image.Image]:
    """The photo, its centre and its four corners at `share` of each side: the product a customer
    photographed is rarely alone or centred, and one of these framings usually holds mostly it."""
    w, h = image.size
    cw, ch = max(1, round(w * share)), max(1, round(h * share))
    boxes: Sequence[tuple[int, int]] = (
        ((w - cw) // 2, (h - ch) // 2),
        (0, 0),
        (w - cw, 0),
        (0, h - ch),
        (w - cw, h - ch),
    )
    return [image, *(image.crop((x, y, x + cw, y + ch)) for x, y in boxes)]


def verification_bonuses(
    query: LocalFeatures,
    candidates: Sequence[tuple[str, bytes]],
    min_inliers: int,
    full_inliers: int,
    weight: float,
) -> dict[str, float]:
    """Key -> score bonus for each candidate (key, stored features) verified with more than `min_inliers`
    distinct inliers; the bonus grows linearly to `weight` at `full_inliers`. A damaged blob is skipped."""
    if len(query) < 8:
        return {}
    root = root_sift(query.descriptors)
    bonuses: dict[str, float] = {}
    for key, blob in candidates:
        try:
            features = LocalFeatures.from_bytes(blob)
        except ValueError:
            continue
        inliers = verify(query, root, features).inliers
        if inliers > min_inliers:
            share = min(1.0, (inliers - min_inliers) / (full_inliers - min_inliers))
            bonuses[key] = max(bonuses.get(key, 0.0), weight * share)
    return bonuses
