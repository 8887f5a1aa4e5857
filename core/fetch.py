"""Get a catalog image's bytes: a local file next to the catalog, or an http(s) download.

Downloads share one httpx client. Per image: at most `fetch_concurrency` requests in flight
(a slot is held per attempt, not while sleeping between attempts), httpx timeouts of
`fetch_timeout` per connect/read plus a total per-attempt deadline (a server dripping one byte
at a time cannot hold a slot forever), retries with exponential back-off and jitter on
connection errors, timeouts, 408, 429 (honouring Retry-After) and 5xx - never on other 4xx -,
a size limit enforced while streaming (on the decoded body, so gzip cannot smuggle more) and
a content-type check (image/* only). Local files get the same size limit.

Every failure is a `FetchError` whose message is a short reason for the indexing report.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import re
import stat
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

import httpx

from visearch.core.config import Settings
from visearch.core.errors import VisearchError
from visearch.core.netguard import AddressPolicy, GuardedTransport, RefusedAddressError

#: statuses worth another attempt (besides every 5xx)
RETRY_STATUS = frozenset({408, 429})
#: first back-off delay; doubles every attempt (x0.75-1.25 jitter)
BACKOFF_BASE_S = 0.5
#: the longest Retry-After we honour; longer ones are capped (then the retry may fail again)
MAX_RETRY_AFTER_S = 30.0
#: one attempt may take at most this many times `fetch_timeout` in all (connect + every read)
ATTEMPT_DEADLINE_FACTOR = 4.0
MAX_REDIRECTS = 5
USER_AGENT = "visearch-indexer/0.1"
ACCEPT = "image/avif,image/webp,image/png,image/jpeg,image/*;q=0.9,*/*;q=0.5"

# `scheme://...`, or a scheme that never has `//` (data:, file:, javascript:...); one letter is a drive (C:\)
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]+):(//)?")
_NO_SLASH_SCHEMES = frozenset({"data", "file", "javascript", "mailto", "blob", "about"})


class FetchError(VisearchError):
    """An image could not be fetched; the message is a short reason for the report."""


class _Retryable(Exception):
    """One attempt failed in a way another attempt may fix."""

    def __init__(self, reason: str, wait_s: float = 0.0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.wait_s = wait_s


def is_url(ref: str) -> bool:
    """True for http(s) URLs (any case)."""
    return ref[:8].lower().startswith(("http://", "https://"))


def unsupported_location(ref: str) -> str | None:
    """Why `ref` is neither an http(s) URL nor a file path, or None when it is one of those."""
    if is_url(ref):
        return None
    if ref.startswith("//"):
        return f"protocol-relative URL {ref[:80]!r}: write it with https:"
    match = _SCHEME.match(ref)
    if match and (match.group(2) or match.group(1).lower() in _NO_SLASH_SCHEMES):
        return f"unsupported image location {match.group(1).lower()}:... - use a file path or an http(s) URL"
    return None


def human_size(n: int) -> str:
    """20971520 -> '20 MB', 1500 -> '1.5 KB', 999 -> '999 bytes'."""
    for unit, scale in (("MB", 1024 * 1024), ("KB", 1024)):
        if n >= scale:
            value = n / scale
            return f"{value:.0f} {unit}" if value >= 10 or value.is_integer() else f"{value:.1f} {unit}"
    return f"{n} bytes"


class ImageFetcher:
    """Async context manager: `async with ImageFetcher(settings) as f: data = await f.fetch(ref, base_dir)`.

    `address_policy` is for URLs someone else chose (the HTTP API): downloads then connect only
    to addresses it permits, on every redirect hop, ignoring proxy settings from the environment;
    a refused host fails at once with one generic reason. Without it (the admin CLI, URLs the
    operator configured) any address is fetched.
    `transport`, `backoff_s` and `attempt_deadline_s` exist for tests and special set-ups.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        backoff_s: float = BACKOFF_BASE_S,
        attempt_deadline_s: float | None = None,
        address_policy: AddressPolicy | None = None,
    ) -> None:
        if transport is not None and address_policy is not None:
            raise ValueError("give a transport or an address_policy, not both (GuardedTransport takes the policy)")
        self.max_bytes = settings.max_image_bytes
        self.attempts = settings.fetch_retries + 1
        self.timeout_s = settings.fetch_timeout
        self.concurrency = settings.fetch_concurrency
        self.backoff_s = backoff_s
        self.attempt_deadline_s = attempt_deadline_s or settings.fetch_timeout * ATTEMPT_DEADLINE_FACTOR
        self._transport = transport
        self._policy = address_policy
        self._limit = asyncio.Semaphore(settings.fetch_concurrency)
        self._client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> ImageFetcher:
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        transport = self._transport
        if self._policy is not None:
            transport = GuardedTransport(self._policy, limits)
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(self.timeout_s),
            follow_redirects=True,
            max_redirects=MAX_REDIRECTS,
            headers={"User-Agent": USER_AGENT, "Accept": ACCEPT},
            limits=limits,
            transport=transport,
            trust_env=self._policy is None,  # a guarded client reads no proxy or .netrc from the environment
        )
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def fetch(self, ref: str, base_dir: Path) -> bytes:
        """The image's bytes, or FetchError with a short reason. Paths are relative to `base_dir`."""
        ref = ref.strip()
        if not ref:
            raise FetchError("empty image reference")
        if is_url(ref):
            return await self._download(ref)
        problem = unsupported_location(ref)
        if problem:
            raise FetchError(problem)
        return await asyncio.to_thread(self._read_local, Path(base_dir) / ref)

    # --- local files -----------------------------------------------------------------------

    def _read_local(self, path: Path) -> bytes:
        """Read at most max_bytes + 1 bytes: a file growing meanwhile cannot get past the limit."""
        try:
            info = path.stat()
            if stat.S_ISDIR(info.st_mode):
                raise FetchError(f"is a directory, not an image: {path}")
            if not stat.S_ISREG(info.st_mode):
                raise FetchError(f"not a regular file: {path}")
            if info.st_size > self.max_bytes:
                raise FetchError(f"larger than {human_size(self.max_bytes)} ({human_size(info.st_size)})")
            with path.open("rb") as fh:
                data = fh.read(self.max_bytes + 1)
        except FileNotFoundError:
            raise FetchError(f"file not found: {path}") from None
        except PermissionError:
            raise FetchError(f"permission denied: {path}") from None
        except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
            raise FetchError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
        if len(data) > self.max_bytes:
            raise FetchError(f"larger than {human_size(self.max_bytes)}")
        return data

    # --- downloads -------------------------------------------------------------------------

    async def _download(self, url: str) -> bytes:
        if self._client is None:
            raise RuntimeError("ImageFetcher is used outside `async with`")
        last = ""
        for attempt in range(self.attempts):
            wait_s = self.backoff_s * (2**attempt) * random.uniform(0.75, 1.25)
            try:
                async with self._limit:
                    async with asyncio.timeout(self.attempt_deadline_s):
                        return await self._attempt(url)
            except RefusedAddressError as exc:  # never retried; the same words whatever listens there
                raise FetchError(str(exc)) from None
            except _Retryable as exc:
                last, wait_s = exc.reason, max(wait_s, exc.wait_s)
            except (TimeoutError, httpx.TimeoutException):
                last = "timed out"
            except httpx.UnsupportedProtocol:
                raise FetchError("redirected to an unsupported URL scheme") from None
            except httpx.TransportError as exc:  # connect/read errors, server closed the connection early
                last = f"connection failed ({type(exc).__name__})"
            except httpx.TooManyRedirects:
                raise FetchError(f"more than {MAX_REDIRECTS} redirects") from None
            except httpx.DecodingError:
                raise FetchError("broken response body (bad Content-Encoding)") from None
            except httpx.InvalidURL as exc:
                raise FetchError(f"invalid URL ({exc})") from None
            except httpx.HTTPError as exc:
                raise FetchError(f"download failed ({type(exc).__name__}: {exc})") from None
            if attempt + 1 < self.attempts:
                await asyncio.sleep(wait_s)
        plural = "s" if self.attempts > 1 else ""
        raise FetchError(f"{last} after {self.attempts} attempt{plural}")

    async def _attempt(self, url: str) -> bytes:
        assert self._client is not None
        async with self._client.stream("GET", url) as response:
            status = response.status_code
            if not 200 <= status < 300:
                reason = f"HTTP {status}"
                if status in RETRY_STATUS or status >= 500:
                    raise _Retryable(reason, retry_after_s(response.headers.get("retry-after")))
                raise FetchError(reason)
            return await self._read_body(response)

    async def _read_body(self, response: httpx.Response) -> bytes:
        """Check type and size before and while reading; stop as soon as the limit is passed."""
        ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if not ctype.startswith("image/"):
            raise FetchError(f"not an image (content-type {ctype or 'missing'})")
        declared = response.headers.get("content-length", "").strip()
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise FetchError(f"larger than {human_size(self.max_bytes)} ({human_size(int(declared))})")
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body.extend(chunk)
            if len(body) > self.max_bytes:
                raise FetchError(f"larger than {human_size(self.max_bytes)}")
        return bytes(body)


def retry_after_s(value: str | None, now: datetime | None = None) -> float:
    """Seconds to wait from a Retry-After header (seconds or HTTP date), capped; 0 when absent or unreadable."""
    if not value:
        return 0.0
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return 0.0
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return 0.0
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)
