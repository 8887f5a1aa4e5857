"""A catalog file in, a `Catalog` out: the content tells the format, the file name only helps.

Formats: visearch's own CSV and JSON Lines, and the feeds shops already publish: Google Merchant
Center (RSS/Atom XML, or its tab-separated / CSV text form; Meta catalogs use the same
attributes), YML (Prom.ua, Rozetka, Kaspi), a saved Shopify `products.json` and a saved
WooCommerce Store API page. A gzip file is read through gzip whatever its name, with the same
size limit on what it unpacks to. `--format` (`fmt`) forces a format when the content is not enough.

Only a file that cannot be read at all raises `CatalogError` (missing, not UTF-8, unknown
format, no id/title column, ambiguous header, no rows, malformed XML or JSON, refused XML):
then nothing must be indexed or deleted. Everything row-level becomes a `RowError` with its
line (or position) and every reason found on that item.
"""

from __future__ import annotations

import gzip
import io
import re
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType
from typing import BinaryIO, Literal, Protocol, get_args

from typing_extensions import Buffer

from visearch.core.catalog.csv import CSV_SHAPE, read_csv
from visearch.core.catalog.jsonl import JSONL_SHAPE, read_jsonl
from visearch.core.catalog.merchant import read_merchant_xml
from visearch.core.catalog.model import Catalog, CatalogItem, collect
from visearch.core.catalog.yml import read_yml
from visearch.core.errors import CatalogError

#: the formats a caller may name (`visearch index --format`); `merchant` is Google Merchant Center or a
#: Meta catalog, XML or text (the content tells which)
CatalogFormat = Literal["csv", "jsonl", "merchant", "yml", "shopify", "woocommerce"]
FORMATS: tuple[str, ...] = get_args(CatalogFormat)


class CatalogReader(Protocol):
    """Reads a catalog's text into a stream of products, row errors and notes; `source` names it in errors."""

    def __call__(self, text: str, source: str) -> Iterator[CatalogItem]: ...


#: file extension -> the reader of visearch's own text formats
READERS: MappingProxyType[str, CatalogReader] = MappingProxyType(
    {".csv": read_csv, ".jsonl": read_jsonl, ".ndjson": read_jsonl}
)
SUPPORTED = (
    f"{CSV_SHAPE}, {JSONL_SHAPE}, or a shop feed (Google Merchant or Meta RSS/Atom XML or tab-separated text, "
    "YML, Shopify products.json, WooCommerce Store API JSON; --format names one)"
)


#: XML feed formats by their document's root element (the content tells the format, not the file name)
XML_ROOTS: MappingProxyType[str, CatalogFormat] = MappingProxyType(
    {"rss": "merchant", "feed": "merchant", "yml_catalog": "yml"}
)
#: extensions of delimited text: visearch's CSV, or a Merchant/Meta text feed when the header says so
TEXT_SUFFIXES = frozenset({".csv", ".tsv", ".txt"})
#: how much of a file is read to tell its format (declaration, comments and DOCTYPE come first in XML)
SNIFF_BYTES = 64 * 1024
#: what a catalog file may unpack to (gzip), whatever its size on disk
DEFAULT_MAX_BYTES = 2 * 1024**3
_GZIP_MAGIC = b"\x1f\x8b"
_ROOT = re.compile(rb"<([A-Za-z_][\w.-]*:)?([A-Za-z_][\w.-]*)[\s/>]")
_SHOPIFY_START = re.compile(rb'^\{\s*"products"\s*:')


def feed_root(head: bytes) -> str | None:
    """The root element's local name in the first bytes of an XML document (None when there is none)."""
    text = re.sub(rb"<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^>]*>", b"", head, flags=re.DOTALL)
    match = _ROOT.search(text)
    return match.group(2).decode("ascii") if match else None


def detect_format(head: bytes, source: str, suffix: str = "") -> CatalogFormat:
    """The format of a catalog from its first bytes (after any gzip), the file's extension breaking ties.

    XML: its root element (Merchant `<rss>`/`<feed>`, YML `<yml_catalog>`); JSON: an object that
    opens with `"products"` is Shopify, an array is a WooCommerce Store API page, other objects are
    JSON Lines; text: a header with Merchant attribute names is a Merchant/Meta feed, else
    visearch's CSV. `CatalogError` names what was found and how to say the format."""
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if text.startswith(b"<"):
        root = feed_root(text)
        found = XML_ROOTS.get(root or "")
        if found is not None:
            return found
        if (root or "").lower() == "html":
            raise CatalogError(
                f"{source}: this is a web page, not a product feed; for a Shopify store use --format shopify "
                "(reads its /products.json), for WooCommerce --format woocommerce (reads its Store API)"
            )
        raise CatalogError(
            f"{source}: not a shop feed this version reads (XML root element {root or 'none'!r}); "
            "supported: Google Merchant <rss> or <feed>, YML <yml_catalog>"
        )
    if text.startswith(b"["):
        return "woocommerce"
    if text.startswith(b"{"):
        return "shopify" if _SHOPIFY_START.match(text) else "jsonl"
    suffix = suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    from visearch.core.catalog.merchant_table import is_merchant_header

    first_line = text.split(b"\n", 1)[0].decode("utf-8", "replace")
    if is_merchant_header(first_line):
        return "merchant"
    if suffix in TEXT_SUFFIXES:
        return "csv"
    raise CatalogError(f"{source}: unknown catalog format {suffix or '(no extension)'!r}; supported: {SUPPORTED}")


def read_catalog(
    path: Path | str,
    *,
    fmt: CatalogFormat | None = None,
    currency: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Catalog:
    """Parse the whole catalog file; only an unreadable file or an unknown format raises `CatalogError`.

    `currency` is for feed prices written without one; `max_bytes` bounds what a gzip file unpacks to."""
    path = Path(path)
    source = str(path)
    try:
        with path.open("rb") as raw:
            stream = open_unpacked(raw, source, max_bytes)
            found = fmt or detect_format(stream.peek(SNIFF_BYTES)[:SNIFF_BYTES], source, _suffix(path))
            return read_stream(stream, found, source, currency=currency)
    except FileNotFoundError:
        raise CatalogError(f"{path}: catalog file not found") from None
    except IsADirectoryError:
        raise CatalogError(f"{path}: is a directory, not a catalog file") from None
    except gzip.BadGzipFile as exc:
        raise CatalogError(f"{path}: broken gzip file ({exc}); nothing was read from it") from None
    except EOFError:
        raise CatalogError(f"{path}: the gzip file is cut short (truncated); nothing was read from it") from None
    except OSError as exc:
        raise CatalogError(f"{path}: cannot read catalog: {exc.strerror or exc}") from None


def read_stream(stream: BinaryIO, fmt: CatalogFormat, source: str, *, currency: str | None = None) -> Catalog:
    """A catalog in a known format from a binary stream (a file, or a downloaded feed)."""
    if fmt == "merchant":
        if _peek(stream).lstrip().startswith(b"<"):
            return collect(source, read_merchant_xml(stream, source, currency=currency))
        from visearch.core.catalog.merchant_table import read_merchant_table

        return collect(source, read_merchant_table(stream, source, currency=currency))
    if fmt == "yml":
        return collect(source, read_yml(stream, source, currency=currency))
    if fmt == "shopify":  # the JSON readers load when a JSON feed comes (a CSV run never imports them)
        from visearch.core.catalog.shopify import read_shopify, shopify_page

        return collect(source, read_shopify([shopify_page(stream.read(), source)], source, currency=currency))
    if fmt == "woocommerce":
        from visearch.core.catalog.woocommerce import read_woocommerce, woocommerce_page

        return collect(source, read_woocommerce([woocommerce_page(stream.read(), source)], source, currency=currency))
    text = decode_text(stream.read(), source)
    return collect(source, (read_csv if fmt == "csv" else read_jsonl)(text, source))


def decode_text(data: bytes, source: str) -> str:
    """UTF-8 text (a BOM is dropped); anything else is one `CatalogError` naming the byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CatalogError(
            f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start}); save the catalog as UTF-8"
        ) from None


def open_unpacked(raw: _Readable, source: str, max_bytes: int) -> io.BufferedReader[LimitedReader]:
    """The stream as it reads, gunzipped when it starts with gzip's magic bytes, refusing past `max_bytes`
    (what it unpacks to: a small gzip bomb stops there)."""
    plain = io.BufferedReader(LimitedReader(raw, max_bytes, source), buffer_size=SNIFF_BYTES)
    if plain.peek(2)[:2] != _GZIP_MAGIC:
        return plain
    unpacked = gzip.GzipFile(fileobj=plain, mode="rb")
    return io.BufferedReader(LimitedReader(unpacked, max_bytes, source), buffer_size=SNIFF_BYTES)


class _Readable(Protocol):
    """Anything with `read(n)`: a file, a gzip stream."""

    def read(self, size: int = -1, /) -> bytes: ...


class LimitedReader(io.RawIOBase):
    """A raw stream that raises `CatalogError` once more than `limit` bytes came through it."""

    def __init__(self, inner: _Readable, limit: int, source: str) -> None:
        super().__init__()
        self.inner, self.limit, self.source, self.count = inner, limit, source, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Buffer) -> int:
        view = memoryview(buffer).cast("B")
        data = self.inner.read(len(view))
        self.count += len(data)
        if self.count > self.limit:
            raise CatalogError(
                f"{self.source}: larger than {self.limit} bytes unpacked (VISEARCH_FEED_MAX_BYTES); nothing was read from it"
            )
        view[: len(data)] = data
        return len(data)


def _peek(stream: BinaryIO) -> bytes:
    """The next bytes of the stream without consuming them (a BufferedReader), BOM dropped."""
    peek = getattr(stream, "peek", None)
    head: bytes = peek(SNIFF_BYTES)[:SNIFF_BYTES] if peek is not None else b""
    return head.removeprefix(b"\xef\xbb\xbf")


def _suffix(path: Path) -> str:
    """The extension that tells the format: `catalog.xml.gz` -> `.xml`."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    return suffixes[-1] if suffixes else ""
