"""Errors that name the fix. Every message is meant to be shown to an operator as is."""

from __future__ import annotations

import enum


class VisearchError(Exception):
    """Base class of every error visearch raises on purpose."""


class ConfigError(VisearchError):
    """The configuration (environment, .env, command line) is invalid."""


class ImageProblem(enum.Enum):
    """What is wrong with an image, so a channel can say it in the customer's language."""

    EMPTY = "empty"
    NOT_AN_IMAGE = "not_an_image"
    BROKEN = "broken"
    TOO_LARGE = "too_large"
    TOO_SMALL = "too_small"
    UNSUPPORTED = "unsupported"
    UNREADABLE = "unreadable"  # a local file that cannot be read


class ImageError(VisearchError):
    """An image could not be used: broken, empty, not an image, too large (`problem` says which)."""

    def __init__(self, message: str, problem: ImageProblem = ImageProblem.BROKEN) -> None:
        super().__init__(message)
        self.problem = problem


class EncoderUnavailableError(VisearchError):
    """The encoder's weights cannot be loaded."""


class EncoderMismatchError(VisearchError):
    """A collection built by one encoder was asked to take vectors from another."""

    def __init__(self, collection: str, stored: str, stored_dim: int, current: str, current_dim: int | None) -> None:
        self.stored = stored
        self.current = current
        dim = f" (dim {current_dim})" if current_dim is not None else ""
        super().__init__(
            f"collection {collection!r} was built with encoder {stored!r} (dim {stored_dim}), "
            f"but the configured encoder is {current!r}{dim}. "
            f"Use the same encoder (VISEARCH_ENCODER / VISEARCH_CLIP_MODEL / VISEARCH_CLIP_TEXT_MODEL / "
            f"VISEARCH_MODEL_DIR / VISEARCH_BACKEND: onnx-int8 vectors are their own), "
            f"pick another collection (VISEARCH_COLLECTION), or rebuild this one "
            f"(`visearch index CATALOG --reembed`)."
        )


#: how an encoder id names a CLIP encoder's separate text model: `clip:clip-ViT-B-32+text:NAME` (always last)
TEXT_MODEL_MARK = "+text:"


def split_text_model(encoder_id: str) -> tuple[str, str | None]:
    """(the id without its text model, the text model or None): a collection made before
    VISEARCH_CLIP_TEXT_MODEL existed has no mark, so it means "no separate text model"."""
    base, mark, text_model = encoder_id.partition(TEXT_MODEL_MARK)
    return base, (text_model if mark else None)


class TextModelMismatchError(EncoderMismatchError):
    """The collection's image side matches the encoder, but its text vectors come from another text model."""

    def __init__(self, collection: str, stored: str, stored_dim: int, current: str, current_dim: int | None) -> None:
        super().__init__(collection, stored, stored_dim, current, current_dim)
        self.stored_text_model = split_text_model(stored)[1]
        self.current_text_model = split_text_model(current)[1]
        had = self.stored_text_model or "none (CLIP's own text tower)"
        has = self.current_text_model or "none (CLIP's own text tower)"
        self.args = (
            f"collection {collection!r} was built with the text model {had}, but VISEARCH_CLIP_TEXT_MODEL gives "
            f"{has} (same image model {split_text_model(stored)[0]!r}). Set VISEARCH_CLIP_TEXT_MODEL back to "
            f"{self.stored_text_model or 'nothing (unset it)'}, or re-embed the catalog's words with the new one "
            f"(`visearch index CATALOG --reembed`), or pick another collection (VISEARCH_COLLECTION).",
        )


def encoder_mismatch(
    collection: str, stored: str, stored_dim: int, current: str, current_dim: int | None
) -> EncoderMismatchError:
    """The error for a collection built by another encoder: `TextModelMismatchError` when only the
    separate text model differs (its fix is one setting), else `EncoderMismatchError`."""
    if stored_dim == current_dim and split_text_model(stored)[0] == split_text_model(current)[0]:
        return TextModelMismatchError(collection, stored, stored_dim, current, current_dim)
    return EncoderMismatchError(collection, stored, stored_dim, current, current_dim)


class StoreError(VisearchError):
    """The vector store failed or cannot be reached."""


class StoreLockedError(StoreError):
    """Another process owns the embedded data directory."""


class CollectionNotFoundError(StoreError):
    """The collection does not exist yet."""


class CatalogError(VisearchError):
    """A catalog file cannot be read at all (a bad row is reported, not raised)."""


class MassDeleteError(CatalogError):
    """`sync` would delete more than half of the collection: nothing was touched; the operator confirms."""

    def __init__(self, gone: int, stored: int, command: str = "sync") -> None:
        self.gone, self.stored = gone, stored
        super().__init__(
            f"{command} would delete {gone} of the {stored} products in the collection (more than half) because the "
            "catalog does not list them; nothing was changed. If the catalog is complete and they really are gone, "
            "run again with --allow-mass-delete."
        )


class RebuildIncompleteError(VisearchError):
    """`index --recreate` could not store products the collection has: the rebuild was thrown away
    and the collection is as it was."""

    def __init__(self, lost: list[str], problems: list[str]) -> None:
        self.lost, self.problems = lost, problems
        shown = ", ".join(lost[:10]) + (f", ... ({len(lost) - 10} more)" if len(lost) > 10 else "")
        why = "; ".join(problems[:5]) + ("; ..." if len(problems) > 5 else "")
        super().__init__(
            f"the rebuild could not store {len(lost)} product(s) the collection has ({shown}), so it was not "
            f"applied and the collection is unchanged. {why}. Fix those rows or photos, or remove the rows, "
            "then run again."
        )


class EncoderBusyError(VisearchError):
    """Too many queries are waiting for the encoder (VISEARCH_MAX_PENDING): the adapters answer "busy"."""
