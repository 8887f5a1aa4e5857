"""Get a catalog image's bytes: a local file next to the catalog, or an http(s) download.

Downloads share one httpx client with a concurrency limit, timeouts, retries with
exponential back-off (connection errors, 408, 429 honouring Retry-After, 5xx; never 4xx),
a size limit enforced while streaming and a content-type check.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import TracebackType

import httpx

from core.config import Settings
from core.errors import VisearchError

RETRY_STATUS = {408, 429, 500, 502, 503, 504}
BACKOFF_BASE_S = 0.5
MAX_RETRY_AFTER_S = 30.0
USER_AGENT = "visearch-indexer/0.1 (+https://github.com/visearch)"


class FetchError(VisearchError):
    """An image could not be fetched; the message is a short reason for the report."""


def is_url(ref: str) -> bool:
    """True for http(s) URLs; other schemes are refused, plain strings are paths."""
    return ref.lower().startswith(("http://", "https://"))


def _megabytes(n: int) -> str:
    return f"{n / (1024 * 1024):.0f} MB"


class ImageFetcher:
    """Async context manager: `async with ImageFetcher(settings) as f: data = await f.fetch(ref, base)`."""

    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.max_bytes = settings.max_image_bytes
        self.retries = settings.fetch_retries
        self._limit = asyncio.Semaphore(settings.fetch_concurrency)
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.fetch_timeout),
            follow_redirects=True,
            headers={"User-Agent": USER_AGENT, "Accept": "image/*"},
            limits=httpx.Limits(max_connections=settings.fetch_concurrency),
            transport=transport,
        )

    async def __aenter__(self) -> ImageFetcher:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        await self._client.aclose()

    async def fetch(self, ref: str, base_dir: Path) -> bytes:
        """The image's bytes, or FetchError with a short reason."""
        if is_url(ref):
            async with self._limit:
                return await self._download(ref)
        if "://" in ref or ref.lower().startswith("file:"):
            raise FetchError(f"unsupported image location {ref!r}: use a path or an http(s) URL")
        return await asyncio.to_thread(self._read_local, base_dir / ref)

    def _read_local(self, path: Path) -> bytes:
        try:
            size = path.stat().st_size
            if size > self.max_bytes:
                raise FetchError(f"file larger than {_megabytes(self.max_bytes)} ({size} bytes)")
            return path.read_bytes()
        except FileNotFoundError:
            raise FetchError(f"file not found: {path}") from None
        except IsADirectoryError:
            raise FetchError(f"is a directory, not an image: {path}") from None
        except OSError as exc:
            raise FetchError(f"cannot read {path}: {exc.strerror or exc}") from None

    async def _download(self, url: str) -> bytes:
        attempts = self.retries + 1
        last = ""
        for attempt in range(attempts):
            delay = BACKOFF_BASE_S * (2**attempt)
            try:
                async with self._client.stream("GET", url) as response:
                    if response.status_code == 200:
                        return await self._read_body(response)
                    last = f"HTTP {response.status_code}"
                    if response.status_code not in RETRY_STATUS:
                        raise FetchError(last)
                    delay = max(delay, _retry_after(response))
            except httpx.TimeoutException:
                last = "timed out"
            except httpx.TransportError as exc:
                last = f"connection failed ({type(exc).__name__})"
            except httpx.InvalidURL as exc:
                raise FetchError(f"invalid URL: {exc}") from None
            if attempt + 1 < attempts:
                await asyncio.sleep(delay)
        raise FetchError(f"{last} after {attempts} attempt{'s' if attempts > 1 else ''}")

    async def _read_body(self, response: httpx.Response) -> bytes:
        """Check type and size before and while reading; stop as soon as the limit is passed."""
        ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if not ctype.startswith("image/"):
            raise FetchError(f"not an image (content-type {ctype or 'missing'})")
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_bytes:
            raise FetchError(f"larger than {_megabytes(self.max_bytes)} ({declared} bytes)")
        chunks = bytearray()
        async for chunk in response.aiter_bytes():
            chunks.extend(chunk)
            if len(chunks) > self.max_bytes:
                raise FetchError(f"larger than {_megabytes(self.max_bytes)}")
        return bytes(chunks)


def _retry_after(response: httpx.Response) -> float:
    """Seconds from a Retry-After header (seconds form), capped; 0 when absent or a date."""
    value = response.headers.get("retry-after", "")
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER_S)
    except ValueError:
        return 0.0
