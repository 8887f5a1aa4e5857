"""HTTP to the messenger platforms: JSON calls with retries and back-off, and bounded downloads.

One `httpx.AsyncClient` per platform, configured base URL, secrets only in headers (never in
messages or logs). A 429 or 5xx answer and network timeouts are retried with exponential back-off
(Retry-After honoured); any other error is returned to the caller as `PlatformError` carrying the
platform's own description.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import httpx

from visearch.bots.conversation.incoming import (
    MediaError,
    MediaTooLargeError,
    NotAnImageError,
)

__all__ = [
    "RETRY_STATUSES",
    "MediaError",
    "MediaTooLargeError",
    "NotAnImageError",
    "PlatformClient",
    "PlatformError",
    "json_object",
]

log = logging.getLogger("visearch.server")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class PlatformError(Exception):
    """A platform refused a call or could not be reached; the message is the platform's description.

    `retryable`: the platform was unreachable or overloaded (after this client's own retries), so
    the same call may work later; False when the platform refused it (a later try would too)."""

    def __init__(self, platform: str, description: str, status: int | None = None, retryable: bool = False) -> None:
        super().__init__(f"{platform}: {description}")
        self.platform, self.description, self.status, self.retryable = platform, description, status, retryable


class PlatformClient:
    """JSON API calls and media downloads for one platform.

    `media_credentials`: whether downloads carry the API's credential headers. Only where the
    platform requires them on its media URLs (WhatsApp); otherwise (Viber: its media CDN needs
    none) a separate client without them fetches media, so the token never reaches a media host.
    """

    def __init__(
        self,
        platform: str,
        base_url: str,
        headers: dict[str, str],
        timeout: float = 15.0,
        retries: int = 3,
        backoff: float = 0.5,
        media_credentials: bool = True,
    ) -> None:
        self.platform = platform
        self.retries = retries
        self.backoff = backoff
        self.http = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/", headers=headers, timeout=timeout, follow_redirects=True
        )
        self.media_http = self.http if media_credentials else httpx.AsyncClient(timeout=timeout, follow_redirects=True)

    async def close(self) -> None:
        await self.http.aclose()
        if self.media_http is not self.http:
            await self.media_http.aclose()

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send with retries on 429 / 5xx / network errors; return the last response."""
        last_error: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                response = await self.http.request(method, path.lstrip("/"), **kwargs)
            except httpx.HTTPError as exc:
                last_error = exc
                log.warning("%s %s failed (%s), attempt %d", self.platform, path, type(exc).__name__, attempt + 1)
            else:
                if response.status_code not in RETRY_STATUSES or attempt == self.retries:
                    return response
                log.warning("%s %s answered %d, attempt %d", self.platform, path, response.status_code, attempt + 1)
                last_error = None
                wait = _retry_after(response)
                if wait is not None:
                    await asyncio.sleep(min(wait, 60.0))
                    continue
            if attempt < self.retries:
                await asyncio.sleep(self.backoff * (2**attempt) * (0.8 + 0.4 * random.random()))
        raise PlatformError(self.platform, f"unreachable: {type(last_error).__name__}", retryable=True) from None

    async def download(self, url: str, max_bytes: int, headers: dict[str, str] | None = None) -> tuple[bytes, str]:
        """Bytes and content type of a media URL; `MediaTooLargeError` past `max_bytes`."""
        try:
            async with self.media_http.stream("GET", url, headers=headers) as response:
                if response.status_code != 200:
                    raise MediaError(f"the photo could not be downloaded (HTTP {response.status_code})")
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > max_bytes:
                    raise MediaTooLargeError()
                chunks, size = [], 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise MediaTooLargeError()
                    chunks.append(chunk)
                return b"".join(chunks), response.headers.get("content-type", "")
        except httpx.HTTPError as exc:
            raise MediaError(f"the photo could not be downloaded ({type(exc).__name__})") from None


def json_object(response: httpx.Response) -> dict[str, Any]:
    """A platform reply's JSON object, or {} when the body is not one (an HTML error page, empty)."""
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
