"""Settings of `visearch serve`: the shared server knobs and the Viber and WhatsApp credentials.

Each platform is enabled only when its credentials are set. Secrets are `SecretStr`: never
printed, never in errors.
"""

from __future__ import annotations

from typing import NamedTuple

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings

from visearch.core.config import load_settings_of, settings_config
from visearch.core.netguard import AddressPolicy, parse_networks


class WhatsAppCredentials(NamedTuple):
    """What the WhatsApp adapter needs to verify webhooks and send answers (secrets as plain text: pass, never print)."""

    token: str
    app_secret: str
    verify_token: str
    phone_number_id: str


class ServerSettings(BaseSettings):
    """`VISEARCH_*` variables read by the webhook server."""

    model_config = settings_config("VISEARCH_")

    public_url: str | None = Field(
        None, description="https URL this server is reachable at (product photos are served under /media)"
    )
    queue_size: int = Field(64, ge=1, description="searches waiting at most; beyond it users get a 'busy' reply")
    workers: int = Field(4, ge=1, le=256, description="searches handled at once (encoding itself is one thread)")
    rate_limit: int = Field(
        10, ge=0, description="searches per user per window on every channel of `visearch serve`; 0 = off"
    )
    rate_window: float = Field(
        60.0, gt=0, description="seconds of the per-user rate window (every channel of `visearch serve`)"
    )
    cards_per_answer: int = Field(3, ge=1, le=6, description="product cards in one Viber or WhatsApp answer")
    dedupe_ttl: float = Field(
        3600.0,
        gt=0,
        description="seconds a delivery id is remembered (retries are not searched twice); kept in <data_dir>/deliveries.sqlite3 across restarts",
    )
    body_timeout: float = Field(
        10.0,
        gt=0,
        le=600,
        description="seconds a client has to start its request body; after that it must average 4 KB/s, else 408 (a dripping client cannot hold a connection)",
    )
    max_connections: int = Field(
        1000,
        ge=1,
        description="connections served at once; beyond it uvicorn answers 503 (slow or idle clients cannot exhaust the process)",
    )
    webhook_max_body_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        description="largest webhook body accepted (platform updates are small JSON; photos come by URL); routes that take no body accept 16 KB",
    )

    # HTTP API (/api/v1) and the web page
    api_keys: SecretStr | None = Field(
        None,
        description="comma-separated keys for the API's write endpoints (Authorization: Bearer KEY or X-API-Key: KEY); unset = writes disabled",
    )
    api_public_search: bool = Field(
        True, description="search endpoints and the web page answer without a key; false = they need a key too"
    )
    api_max_body_bytes: int = Field(
        32 * 1024 * 1024, ge=1024, description="largest request body the API accepts (uploads included)"
    )
    api_max_batch: int = Field(100, ge=1, le=10_000, description="products in one POST /products:batch at most")
    api_max_images: int = Field(10, ge=1, le=100, description="images per product at most (URLs and uploads together)")
    api_fetch_allow: str = Field(
        "",
        description="comma-separated IP ranges (CIDR) that image URLs given to the API may reach besides public addresses, e.g. an intranet image host: 10.20.0.0/16; empty = public addresses only",
    )
    cors_origins: str = Field(
        "", description="comma-separated origins allowed to call the API from a browser ('*' = any); empty = no CORS"
    )
    web_page: bool = Field(True, description="serve the search page at /")

    # the shop's feeds, kept in step by `visearch serve`
    feed_url: str = Field(
        "",
        description="the shop's product feeds (URLs or file paths, separated by spaces): synced at start and every VISEARCH_FEED_INTERVAL; logs and metrics show a URL without its query or credentials",
    )
    feed_interval: float = Field(
        3600.0, ge=1, description="seconds between two syncs of VISEARCH_FEED_URL (an unchanged feed costs one request)"
    )

    viber_token: SecretStr | None = Field(
        None, description="Viber bot token (secret); set = the Viber webhook is served"
    )
    viber_api_url: str = Field(
        "https://chatapi.viber.com/pa", description="Viber REST API root (for a proxy, or the tests' fake)"
    )
    viber_sender_name: str = Field(
        "Shop", max_length=28, description="sender name shown on the bot's Viber messages (at most 28 characters)"
    )
    viber_max_media_bytes: int = Field(
        10 * 1024 * 1024, ge=1, description="largest photo downloaded from a Viber message"
    )

    whatsapp_token: SecretStr | None = Field(None, description="WhatsApp Cloud API access token (secret)")
    whatsapp_app_secret: SecretStr | None = Field(
        None, description="Meta app secret that signs webhooks (X-Hub-Signature-256; secret)"
    )
    whatsapp_verify_token: SecretStr | None = Field(
        None, description="token Meta echoes when it verifies the webhook URL (secret)"
    )
    whatsapp_phone_number_id: str | None = Field(
        None,
        description="the business phone number id answers are sent from; WhatsApp is served when this and the three secrets are set",
    )
    whatsapp_api_url: str = Field(
        "https://graph.facebook.com", description="Graph API root (for a proxy, or the tests' fake)"
    )
    whatsapp_api_version: str = Field("v21.0", pattern=r"^v\d+\.\d+$", description="Graph API version in request paths")
    whatsapp_max_media_bytes: int = Field(
        5 * 1024 * 1024,
        ge=1,
        description="largest photo downloaded from a WhatsApp message (WhatsApp images are at most 5 MB)",
    )

    @field_validator("public_url", "viber_api_url", "whatsapp_api_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/") if value else value

    @field_validator("api_fetch_allow")
    @classmethod
    def _cidr_list(cls, value: str) -> str:
        parse_networks(value)  # ValueError names the item that is not a range
        return value

    @field_validator("feed_url")
    @classmethod
    def _feed_sources(cls, value: str) -> str:
        for source in value.split():
            if "://" in source and not source.lower().startswith(("http://", "https://")):
                raise ValueError(
                    f"{source.split('://', 1)[0]}:// is not a feed location: use an http(s) URL or a file path"
                )
        return value

    @property
    def feed_sources(self) -> list[str]:
        """The configured feeds, in order (empty: no scheduled sync)."""
        return self.feed_url.split()

    @property
    def api_fetch_policy(self) -> AddressPolicy:
        """Where image URLs that arrive through the API may be fetched from."""
        return AddressPolicy(parse_networks(self.api_fetch_allow))

    @property
    def api_key_list(self) -> list[str]:
        """The configured API keys (empty: write endpoints are disabled)."""
        if self.api_keys is None:
            return []
        return [k.strip() for k in self.api_keys.get_secret_value().split(",") if k.strip()]

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip()]

    @property
    def viber_enabled(self) -> bool:
        return self.viber_credential is not None

    @property
    def viber_credential(self) -> str | None:
        """The Viber token when Viber is served (set and not empty), else None."""
        token = self.viber_token.get_secret_value() if self.viber_token is not None else ""
        return token or None

    @property
    def whatsapp_enabled(self) -> bool:
        return self.whatsapp_credentials is not None

    @property
    def whatsapp_credentials(self) -> WhatsAppCredentials | None:
        """The WhatsApp secrets and phone number id when all four are set (WhatsApp is served), else None."""
        token, app_secret, verify_token = (
            s.get_secret_value() if s is not None else ""
            for s in (self.whatsapp_token, self.whatsapp_app_secret, self.whatsapp_verify_token)
        )
        if not (token and app_secret and verify_token and self.whatsapp_phone_number_id):
            return None
        return WhatsAppCredentials(token, app_secret, verify_token, self.whatsapp_phone_number_id)


def load_server_settings(**overrides: object) -> ServerSettings:
    """Read and validate the server settings; errors name the variable."""
    return load_settings_of(ServerSettings, **overrides)
