"""Telegram settings, read from `VISEARCH_TELEGRAM_*` variables and `.env` like the core settings."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings

from visearch.core.config import load_settings_of, settings_config

#: Telegram's own limits (Bot API): bots cannot download files over 20 MB through getFile
TELEGRAM_DOWNLOAD_LIMIT = 20 * 1024 * 1024


class TelegramSettings(BaseSettings):
    """What a shop sets to run its Telegram bot. The token is a secret and never printed."""

    model_config = settings_config("VISEARCH_TELEGRAM_")

    token: SecretStr | None = Field(None, description="bot token from @BotFather")
    api_url: str = Field("https://api.telegram.org", description="Bot API server root (a self-hosted server works)")
    admins: str = Field("", description="comma-separated Telegram user ids allowed to use /stats")
    cards_per_page: int = Field(3, ge=1, le=10, description="product cards sent per answer")
    rate_limit: int = Field(
        10,
        ge=0,
        description="searches per user per rate window of `visearch bot telegram`; 0 = no limit. Inside "
        "`visearch serve`, VISEARCH_RATE_LIMIT limits every channel; this one still limits Telegram there "
        "when set (deprecated)",
    )
    rate_window: float = Field(
        60.0,
        gt=0,
        description="seconds of the per-user rate window of `visearch bot telegram` (inside `visearch serve`: "
        "as VISEARCH_TELEGRAM_RATE_LIMIT)",
    )
    album_wait: float = Field(0.8, gt=0, le=10, description="seconds to wait for the rest of an album")
    max_file_bytes: int = Field(
        TELEGRAM_DOWNLOAD_LIMIT,
        ge=1,
        le=TELEGRAM_DOWNLOAD_LIMIT,
        description="largest photo or image file downloaded (Telegram lets bots fetch at most 20 MB)",
    )
    poll_timeout: int = Field(30, ge=0, le=50, description="long-polling wait in seconds")
    max_retry_after: float = Field(60.0, ge=0, description="longest 429 retry_after honoured before giving up")
    webhook_secret: SecretStr | None = Field(
        None,
        description="X-Telegram-Bot-Api-Secret-Token of the webhook; unset = a fresh one per start (`visearch serve` needs it set)",
    )

    @field_validator("api_url")
    @classmethod
    def _api_url_is_http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https:// (for example https://api.telegram.org)")
        return value.rstrip("/")

    @field_validator("admins")
    @classmethod
    def _admins_are_ids(cls, value: str) -> str:
        for part in value.replace(" ", "").split(","):
            if part and not part.lstrip("-").isdigit():
                raise ValueError(f"{part!r} is not a numeric Telegram user id (comma-separated ids, e.g. 123,456)")
        return value

    @property
    def admin_ids(self) -> frozenset[int]:
        """The admins as numbers."""
        return frozenset(int(p) for p in self.admins.replace(" ", "").split(",") if p)

    @property
    def webhook_secret_value(self) -> str | None:
        """The webhook secret when one is set (not empty), else None."""
        secret = self.webhook_secret.get_secret_value() if self.webhook_secret is not None else ""
        return secret or None

    def require_token(self) -> str:
        """The token, or a ConfigError that says where to get one."""
        from visearch.core.errors import ConfigError

        if self.token is None or not self.token.get_secret_value().strip():
            raise ConfigError(
                "VISEARCH_TELEGRAM_TOKEN is not set: create a bot with @BotFather in Telegram and put its token "
                "in the environment or in .env (VISEARCH_TELEGRAM_TOKEN=123456:ABC...)"
            )
        return self.token.get_secret_value().strip()


def load_telegram_settings(**overrides: object) -> TelegramSettings:
    """Read and validate the Telegram settings; errors name the variable."""
    return load_settings_of(TelegramSettings, **overrides)
