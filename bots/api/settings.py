"""What the API reads of the server's settings, as a protocol: the API does not import the server
that mounts it (`visearch.bots.server.config.ServerSettings` satisfies it)."""

from __future__ import annotations

from typing import Protocol


class ApiSettings(Protocol):
    """The `VISEARCH_API_*` knobs, the body limits and the public URL."""

    @property
    def public_url(self) -> str | None: ...

    @property
    def api_public_search(self) -> bool: ...

    @property
    def api_max_body_bytes(self) -> int: ...

    @property
    def api_max_batch(self) -> int: ...

    @property
    def api_max_images(self) -> int: ...

    @property
    def webhook_max_body_bytes(self) -> int: ...

    @property
    def body_timeout(self) -> float: ...

    @property
    def web_page(self) -> bool: ...

    @property
    def api_key_list(self) -> list[str]: ...

    @property
    def cors_origin_list(self) -> list[str]: ...
