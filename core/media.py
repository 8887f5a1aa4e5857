"""Where a product's photo is: the catalog's own http(s) URL, or a local file inside the folder it may be read from.

The one answer for the search cards (a bot uploads the file), the /media route (serves it) and every
channel's photo link: a stored point's `image` is a URL, or a path relative to a folder. That folder
is `<data_dir>/uploads/` for photos uploaded through the API (whatever VISEARCH_IMAGE_ROOT says: that
setting moves the catalog's folder, not the data directory), else VISEARCH_IMAGE_ROOT when set, else
the folder the catalog was indexed from (recorded as the payload's `image_root`). A path that leaves
its folder (`..`, a link pointing out) is no photo at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from visearch.core.fetch import is_url


@dataclass(frozen=True, slots=True)
class PhotoLocation:
    """A point's photo: its catalog URL, or its local file (resolved, inside its folder); neither when it has none."""

    url: str | None = None
    file: Path | None = None


def product_folder(product_id: str) -> str:
    """The folder under the uploads directory holding a product's uploaded photos: a name safe whatever
    the id holds (slashes, dots)."""
    return hashlib.sha256(product_id.encode("utf-8")).hexdigest()[:24]


def photo_folder(payload: Mapping[str, Any], image_root: Path | None, uploads_dir: Path | None) -> Path | None:
    """The folder a point's local photo is read from (see the module docstring); None when none is known.
    An upload is recognised by its product's folder name or by the recorded root being the uploads folder,
    so a data directory that moved still finds its uploads."""
    image, stored = str(payload.get("image") or ""), str(payload.get("image_root") or "")
    if uploads_dir is not None:
        in_product_folder = image.split("/", 1)[0] == product_folder(str(payload.get("product_id") or ""))
        if in_product_folder or (stored and Path(stored).resolve() == uploads_dir.resolve()):
            return uploads_dir
    root = image_root or stored
    return Path(root) if root else None


def locate_photo(payload: Mapping[str, Any], image_root: Path | None, uploads_dir: Path | None) -> PhotoLocation:
    """Where the photo of a stored point (its payload) is. The local file is confined to its folder;
    whether it exists is the reader's question (it may go between this answer and the read)."""
    image = str(payload.get("image") or "")
    if not image:
        return PhotoLocation()
    if is_url(image):
        return PhotoLocation(url=image)
    folder = photo_folder(payload, image_root, uploads_dir)
    if folder is None:
        return PhotoLocation()
    base = folder.resolve()
    path = (base / image).resolve()
    return PhotoLocation(file=path) if base in path.parents else PhotoLocation()
