"""A catalog file in, a `Catalog` out: the format is told by the file's extension.

Only a file that cannot be read at all raises `CatalogError` (missing, not UTF-8, unknown
format, no id/title column, ambiguous header, no rows): then nothing must be indexed or
deleted. Everything row-level becomes a `RowError` with the line number and every reason
found on that row. A new format (a shop feed) is one more entry in `READERS`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType
from typing import BinaryIO, Protocol

from visearch.core.catalog.csv import CSV_SHAPE, read_csv
from visearch.core.catalog.jsonl import JSONL_SHAPE, read_jsonl
from visearch.core.catalog.merchant import read_merchant_xml
from visearch.core.catalog.model import Catalog, CatalogItem, collect
from visearch.core.catalog.yml import read_yml
from visearch.core.errors import CatalogError


class CatalogReader(Protocol):
    """Reads a catalog's text into a stream of products, row errors and notes; `source` names it in errors."""

    def __call__(self, text: str, source: str) -> Iterator[CatalogItem]: ...


#: file extension -> the reader of that format
READERS: MappingProxyType[str, CatalogReader] = MappingProxyType(
    {".csv": read_csv, ".jsonl": read_jsonl, ".ndjson": read_jsonl}
)
SUPPORTED = f"{CSV_SHAPE}, {JSONL_SHAPE}, or an XML shop feed (.xml: Google Merchant RSS/Atom, YML)"


class FeedReader(Protocol):
    """Reads a shop feed from a binary stream, incrementally, into products, row errors and notes."""

    def __call__(self, stream: BinaryIO, source: str, *, currency: str | None = None) -> Iterator[CatalogItem]: ...


#: XML feed formats by their document's root element (the content tells the format, not the file name)
FEED_READERS: MappingProxyType[str, FeedReader] = MappingProxyType(
    {"rss": read_merchant_xml, "feed": read_merchant_xml, "yml_catalog": read_yml}
)
#: file extensions read as XML shop feeds
FEED_SUFFIXES = frozenset({".xml", ".rss", ".atom"})
#: how much of a feed is read to find its root element (declaration, comments and DOCTYPE come first)
SNIFF_BYTES = 64 * 1024
_ROOT = re.compile(rb"<([A-Za-z_][\w.-]*:)?([A-Za-z_][\w.-]*)[\s/>]")


def reader_for(path: Path) -> CatalogReader:
    """The reader of the file's format; `CatalogError` naming the supported ones otherwise."""
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise CatalogError(
            f"{path}: unknown catalog format {path.suffix or '(no extension)'!r}; supported: {SUPPORTED}"
        )
    return reader


def read_text(path: Path) -> str:
    """The file as UTF-8 text (a BOM is dropped); each way it can fail is one `CatalogError` line."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise CatalogError(f"{path}: catalog file not found") from None
    except IsADirectoryError:
        raise CatalogError(f"{path}: is a directory, not a catalog file") from None
    except UnicodeDecodeError as exc:
        raise CatalogError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save the catalog as UTF-8"
        ) from None
    except OSError as exc:
        raise CatalogError(f"{path}: cannot read catalog: {exc.strerror or exc}") from None


def read_catalog(path: Path | str) -> Catalog:
    """Parse the whole catalog; only an unreadable file or unknown format raises `CatalogError`."""
    path = Path(path)
    if path.suffix.lower() in FEED_SUFFIXES:
        return read_feed_file(path)
    reader = reader_for(path)
    return collect(str(path), reader(read_text(path), str(path)))


def feed_root(head: bytes) -> str | None:
    """The root element's local name in the first bytes of an XML document (None when there is none)."""
    text = re.sub(rb"<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^>]*>", b"", head, flags=re.DOTALL)
    match = _ROOT.search(text)
    return match.group(2).decode("ascii") if match else None


def read_feed_file(path: Path) -> Catalog:
    """An XML shop feed read as a stream; its root element picks the reader (Merchant RSS/Atom or YML)."""
    try:
        with path.open("rb") as stream:
            root = feed_root(stream.read(SNIFF_BYTES))
            reader = FEED_READERS.get(root or "")
            if reader is None:
                raise CatalogError(
                    f"{path}: not a shop feed this version reads (root element {root or 'none'!r}); "
                    "supported: Google Merchant <rss> or <feed>, YML <yml_catalog>"
                )
            stream.seek(0)
            return collect(str(path), reader(stream, str(path)))
    except FileNotFoundError:
        raise CatalogError(f"{path}: catalog file not found") from None
    except IsADirectoryError:
        raise CatalogError(f"{path}: is a directory, not a catalog file") from None
    except OSError as exc:
        raise CatalogError(f"{path}: cannot read catalog: {exc.strerror or exc}") from None
