"""Errors that name the fix. Every message is meant to be shown to an operator as is."""

from __future__ import annotations


class VisearchError(Exception):
    """Base class of every error visearch raises on purpose."""


class ConfigError(VisearchError):
    """The configuration (environment, .env, command line) is invalid."""


class ImageError(VisearchError):
    """An image could not be used: broken, empty, not an image, too large."""


class EncoderUnavailableError(VisearchError):
    """The encoder's weights cannot be loaded."""


class EncoderMismatchError(VisearchError):
    """A collection built by one encoder was asked to take vectors from another."""

    def __init__(self, collection: str, stored: str, stored_dim: int, current: str, current_dim: int) -> None:
        self.stored = stored
        self.current = current
        super().__init__(
            f"collection {collection!r} was built with encoder {stored!r} (dim {stored_dim}), "
            f"but the configured encoder is {current!r} (dim {current_dim}). "
            f"Use the same encoder (VISEARCH_ENCODER / VISEARCH_CLIP_MODEL / VISEARCH_MODEL_DIR), "
            f"pick another collection (VISEARCH_COLLECTION), or rebuild this one "
            f"(`visearch index CATALOG --reembed`)."
        )


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
