"""A shop feed by URL: downloaded whole to a temporary file first, then read like a file.

Why whole, then read: a download cut short (the connection drops, a proxy times out) must never
look like a shop that lost half its products, so nothing is parsed, and nothing synced, until
every byte the server announced has arrived; the file on disk keeps memory flat however large
the feed. Paged sources (Shopify `products.json`, the WooCommerce Store API) are fetched page by
page, each page a file, until an empty page.

The operator configured the URL, so it is trusted: any address is fetched (private ones too),
through the environment's proxy settings, unlike the image URLs API callers send.
A conditional GET (ETag / Last-Modified from the last good sync) makes an unchanged feed cost
one request: `NotModified`. Every failure is a `FeedDownloadError` naming the URL without its
query string or credentials (tokens live there).
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

import httpx

from visearch.core.catalog.files import (
    SNIFF_BYTES,
    CatalogFormat,
    detect_format,
    open_unpacked,
    read_stream,
)
from visearch.core.catalog.model import Catalog, collect
from visearch.core.errors import CatalogError

USER_AGENT = "visearch-feed/0.1"
#: the most pages a paged source is followed for (250 products a page: 2.5 million products)
MAX_PAGES = 10_000
CHUNK = 256 * 1024
#: products asked for per page: the most each platform serves (Shopify 250, the WooCommerce Store API 100)
SHOPIFY_PAGE_SIZE = 250
WOOCOMMERCE_PAGE_SIZE = 100
_SHOPIFY_PATH = "/products.json"
_WOOCOMMERCE_PATH = "/wp-json/wc/store/v1/products"


class FeedDownloadError(CatalogError):
    """The feed could not be downloaded whole (HTTP error, timeout, cut short, too large): nothing is synced."""


def public_url(url: str) -> str:
    """The URL as it may appear in logs, metrics and errors: no user:password, no query (tokens live there)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def is_feed_url(source: str) -> bool:
    """True for an http(s) URL (any case), the sources `download_feed` takes."""
    return source[:8].lower().startswith(("http://", "https://"))


@dataclass(frozen=True)
class Validators:
    """What a server said identifies this version of the feed (sent back as If-None-Match / If-Modified-Since)."""

    etag: str | None = None
    last_modified: str | None = None

    def headers(self) -> dict[str, str]:
        found: dict[str, str] = {}
        if self.etag:
            found["If-None-Match"] = self.etag
        if self.last_modified:
            found["If-Modified-Since"] = self.last_modified
        return found


@dataclass(frozen=True)
class NotModified:
    """The server answered 304: the feed is what the last good sync read."""

    url: str
    requests: int = 1


@dataclass
class DownloadedFeed:
    """A feed on disk: one file, or one file per page; delete it with `close` (or `with`)."""

    url: str
    fmt: CatalogFormat
    folder: Path
    pages: list[Path] = field(default_factory=list)
    validators: Validators = field(default_factory=Validators)
    digest: str = ""
    bytes: int = 0
    requests: int = 0

    def __enter__(self) -> DownloadedFeed:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def read(self, *, currency: str | None = None, max_bytes: int) -> Catalog:
        """Parse what was downloaded into a `Catalog` (CPU work: run it off the event loop)."""
        source = public_url(self.url)
        if self.fmt == "shopify":
            from visearch.core.catalog.shopify import read_shopify, shopify_page

            pages = self._json_pages(shopify_page, max_bytes)
            return collect(source, read_shopify(pages, source, currency=currency, store_url=store_root(self.url)))
        if self.fmt == "woocommerce":
            from visearch.core.catalog.woocommerce import read_woocommerce, woocommerce_page

            return collect(
                source, read_woocommerce(self._json_pages(woocommerce_page, max_bytes), source, currency=currency)
            )
        with ExitStack() as stack:
            stream = open_unpacked(stack.enter_context(self.pages[0].open("rb")), source, max_bytes)
            return read_stream(stream, self.fmt, source, currency=currency)

    def _json_pages(self, parse: _PageParser, max_bytes: int) -> Iterator[list[dict[str, Any]]]:
        """Each page's products, one page in memory at a time."""
        source = public_url(self.url)
        for number, page in enumerate(self.pages, start=1):
            with page.open("rb") as raw:
                yield parse(open_unpacked(raw, f"{source} page {number}", max_bytes).read(), f"{source} page {number}")


class _PageParser(Protocol):
    """`shopify_page` or `woocommerce_page`: one page's bytes -> its products."""

    def __call__(self, data: bytes, source: str) -> list[dict[str, Any]]: ...


def store_root(url: str) -> str:
    """`https://shop.example/collections/x/products.json?page=2` -> `https://shop.example` (product links hang off it)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "", "", ""))


def source_url(url: str, fmt: CatalogFormat | None) -> tuple[str, CatalogFormat | None]:
    """The URL to download and the format it implies: a Shopify store's `/products.json`, a WooCommerce
    store's Store API endpoint; a store's home page with `--format shopify`/`woocommerce` becomes that endpoint."""
    path = urlsplit(url).path.rstrip("/")
    if path.endswith(_SHOPIFY_PATH) and fmt in (None, "shopify"):
        return url, "shopify"
    if "/wp-json/wc/store" in path and fmt in (None, "woocommerce"):
        return url, "woocommerce"
    if fmt == "shopify":
        return _with_path(url, path + _SHOPIFY_PATH), fmt
    if fmt == "woocommerce":
        return _with_path(url, path + _WOOCOMMERCE_PATH), fmt
    return url, fmt


def _with_path(url: str, path: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def page_url(url: str, fmt: CatalogFormat, number: int) -> str:
    """The URL of page `number` of a paged source (the caller's own query parameters kept)."""
    parts = urlsplit(url)
    size_name, size = ("limit", SHOPIFY_PAGE_SIZE) if fmt == "shopify" else ("per_page", WOOCOMMERCE_PAGE_SIZE)
    kept = [p for p in parts.query.split("&") if p and p.split("=", 1)[0] not in ("page", size_name)]
    query = "&".join([*kept, urlencode({size_name: size, "page": number})])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


class FeedDownloader:
    """Downloads feeds with one httpx client: `async with FeedDownloader(...) as d: got = await d.download(url)`."""

    def __init__(
        self,
        *,
        max_bytes: int,
        timeout_s: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """`max_bytes`: the most a feed (all its pages) may be, on the wire and unpacked; `timeout_s`: the
        whole download's deadline (connect and every read have it too)."""
        self.max_bytes, self.timeout_s, self._transport = max_bytes, timeout_s, transport
        self._client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> FeedDownloader:
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(self.timeout_s),
            follow_redirects=True,
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate"},
            transport=self._transport,
        )
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def download(
        self, url: str, *, fmt: CatalogFormat | None = None, validators: Validators | None = None
    ) -> DownloadedFeed | NotModified:
        """The whole feed on disk, or `NotModified` when the server says it has not changed.

        Raises `FeedDownloadError` (HTTP status, timeout, connection, cut short, too large) and
        `CatalogError` (the content is no feed this version reads); nothing is left on disk then."""
        url, fmt = source_url(url, fmt)
        folder = Path(tempfile.mkdtemp(prefix="visearch-feed-"))
        feed = DownloadedFeed(url=url, fmt=fmt or "csv", folder=folder)
        try:
            async with asyncio.timeout(self.timeout_s):
                got = await self._fetch_all(feed, fmt, validators or Validators())
        except TimeoutError:
            feed.close()
            raise FeedDownloadError(
                f"{public_url(url)}: the download took longer than {self.timeout_s:g} s (VISEARCH_FEED_TIMEOUT); nothing was synced"
            ) from None
        except BaseException:
            feed.close()
            raise
        if isinstance(got, NotModified):
            feed.close()
        return got

    async def _fetch_all(
        self, feed: DownloadedFeed, fmt: CatalogFormat | None, validators: Validators
    ) -> DownloadedFeed | NotModified:
        digest = hashlib.sha256()
        if fmt in ("shopify", "woocommerce"):
            for number in range(1, MAX_PAGES + 1):
                path = feed.folder / f"page-{number:05d}"
                status, headers = await self._fetch(page_url(feed.url, fmt, number), path, feed, digest, None)
                if await asyncio.to_thread(_page_is_empty, path, fmt, self.max_bytes):
                    path.unlink()
                    break
                feed.pages.append(path)
                total = headers.get("x-wp-totalpages", "").strip()
                if total.isdigit() and number >= int(total):
                    break
            feed.fmt = fmt
        else:
            path = feed.folder / "feed"
            status, headers = await self._fetch(feed.url, path, feed, digest, validators)
            if status == 304:
                return NotModified(feed.url, feed.requests)
            feed.pages.append(path)
            feed.validators = Validators(headers.get("etag"), headers.get("last-modified"))
            with path.open("rb") as raw:
                head = open_unpacked(raw, public_url(feed.url), self.max_bytes).peek(SNIFF_BYTES)[:SNIFF_BYTES]
            feed.fmt = fmt or detect_format(head, public_url(feed.url), Path(urlsplit(feed.url).path).suffix)
        feed.digest = digest.hexdigest()
        return feed

    async def _fetch(
        self,
        url: str,
        path: Path,
        feed: DownloadedFeed,
        digest: hashlib._Hash,
        validators: Validators | None,
    ) -> tuple[int, httpx.Headers]:
        """GET `url` into `path` (decoded body), counting it against the feed's size limit; 304 when allowed."""
        assert self._client is not None, "FeedDownloader is used outside `async with`"
        shown = public_url(url)
        feed.requests += 1
        try:
            async with self._client.stream("GET", url, headers=validators.headers() if validators else {}) as response:
                if response.status_code == 304 and validators is not None and validators.headers():
                    return 304, response.headers
                if not 200 <= response.status_code < 300:
                    raise FeedDownloadError(
                        f"{shown}: the server answered HTTP {response.status_code}; nothing was synced"
                    )
                with path.open("wb") as out:
                    async for chunk in response.aiter_bytes(CHUNK):
                        feed.bytes += len(chunk)
                        if feed.bytes > self.max_bytes:
                            raise FeedDownloadError(
                                f"{shown}: larger than {self.max_bytes} bytes (VISEARCH_FEED_MAX_BYTES); nothing was synced"
                            )
                        digest.update(chunk)
                        await asyncio.to_thread(out.write, chunk)
                return response.status_code, response.headers
        except httpx.RemoteProtocolError:
            raise FeedDownloadError(
                f"{shown}: the download was cut short (the connection closed before the whole feed arrived); "
                "nothing was synced"
            ) from None
        except httpx.TimeoutException:
            raise FeedDownloadError(
                f"{shown}: timed out after {self.timeout_s:g} s (VISEARCH_FEED_TIMEOUT); nothing was synced"
            ) from None
        except httpx.DecodingError:
            raise FeedDownloadError(
                f"{shown}: broken response body (bad Content-Encoding); nothing was synced"
            ) from None
        except httpx.TransportError as exc:
            raise FeedDownloadError(f"{shown}: cannot connect ({type(exc).__name__}); nothing was synced") from None


def _page_is_empty(path: Path, fmt: CatalogFormat, max_bytes: int) -> bool:
    """A page with no products ends a paged source (parsed here only for that; the reader parses it again)."""
    from visearch.core.catalog.shopify import shopify_page
    from visearch.core.catalog.woocommerce import woocommerce_page

    source = path.name
    with path.open("rb") as raw:
        data = open_unpacked(raw, source, max_bytes).read()
    products = shopify_page(data, source) if fmt == "shopify" else woocommerce_page(data, source)
    return not products


def absolute_image_refs(catalog: Catalog, feed_url: str) -> Catalog:
    """A feed read from a URL names its images relative to that URL when they are not absolute."""
    for index, row in enumerate(catalog.rows):
        refs = [ref if is_feed_url(ref) else urljoin(feed_url, ref) for ref in row.product.images]
        if refs != row.product.images:
            catalog.rows[index] = type(row)(row.line, row.product.model_copy(update={"images": refs}))
    return catalog
