"""Which language a customer is answered in, and the message catalogs that say it.

Catalogs are gettext `.po` files compiled to `.mo` with Babel (`make locales`), the convention
aiogram's own i18n follows: `bots/locales/<locale>/LC_MESSAGES/visearch.mo` ships in the wheel, and
a shop's own catalogs in `VISEARCH_LOCALES_DIR` (same layout) add locales or override single
messages (its wording wins, the shipped catalog fills what it leaves out).

A platform's language hint (Telegram `language_code`, Viber `sender.language`, a browser's
`Accept-Language`) is matched to the locales on offer: the exact region (`pt_BR`), then the base
language (`pt`, or any region of it), then the shop's `VISEARCH_DEFAULT_LOCALE`, then English.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType

from babel import Locale, UnknownLocaleError
from babel.support import NullTranslations, Translations
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings

from visearch.core.config import load_settings_of, settings_config
from visearch.core.errors import ConfigError

#: the gettext domain of every customer-facing message
DOMAIN = "visearch"
#: the language the messages are written in (the msgids)
SOURCE_LOCALE = "en"
#: where the shipped catalogs live
SHIPPED_LOCALES = Path(__file__).resolve().parents[1] / "locales"
#: a language hint longer than this is not a language tag (headers are bounded before parsing)
MAX_HINT_CHARS = 200
#: Accept-Language entries read at most
MAX_ACCEPT_ENTRIES = 16


class LocaleSettings(BaseSettings):
    """`VISEARCH_*` variables that choose the customer's language."""

    model_config = settings_config("VISEARCH_")

    default_locale: str = Field(
        SOURCE_LOCALE,
        description="language of a customer whose platform tells none (WhatsApp) or one we do not ship, e.g. uk, es, pt_BR",
    )
    locales_dir: Path | None = Field(
        None,
        description="folder of the shop's own catalogs (<locale>/LC_MESSAGES/visearch.mo or .po): new locales, or wording that overrides ours",
    )
    whatsapp_locales: str = Field(
        "",
        description="WhatsApp has no language field: calling code=locale pairs that pick one from the sender's number, e.g. 380=uk,7=ru,55=pt_BR",
    )

    @field_validator("default_locale")
    @classmethod
    def _default_is_a_locale(cls, value: str) -> str:
        return str(parse_locale(value, setting="VISEARCH_DEFAULT_LOCALE"))

    @field_validator("locales_dir")
    @classmethod
    def _dir_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"{value} is not a folder (expected <locale>/LC_MESSAGES/{DOMAIN}.po inside it)")
        return value

    @field_validator("whatsapp_locales")
    @classmethod
    def _calling_codes_are_valid(cls, value: str) -> str:
        calling_codes(value)
        return value

    @property
    def calling_code_locales(self) -> Mapping[str, str]:
        """`{"380": "uk", ...}` from `whatsapp_locales`."""
        return calling_codes(self.whatsapp_locales)


def load_locale_settings(**overrides: object) -> LocaleSettings:
    """Read and validate the language settings; errors name the variable."""
    return load_settings_of(LocaleSettings, **overrides)


def parse_locale(tag: str, *, setting: str) -> Locale:
    """A Babel locale from `uk`, `pt-BR` or `pt_BR`; a ConfigError naming the setting otherwise."""
    try:
        return Locale.parse(tag.strip().replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        raise ConfigError(f"{setting}={tag!r} is not a known locale: use a code such as en, uk, es, pt_BR") from None


def calling_codes(text: str) -> Mapping[str, str]:
    """`380=uk,55=pt_BR` -> {"380": "uk", "55": "pt_BR"}; a ConfigError for a malformed pair."""
    pairs: dict[str, str] = {}
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        code, _, tag = part.partition("=")
        if not code.isdigit() or not 1 <= len(code) <= 4 or not tag:
            raise ConfigError(
                f"VISEARCH_WHATSAPP_LOCALES: {part!r} is not calling code=locale (for example 380=uk,55=pt_BR)"
            )
        pairs[code] = str(parse_locale(tag, setting="VISEARCH_WHATSAPP_LOCALES"))
    return MappingProxyType(pairs)


def catalog_locales(folder: Path | None) -> frozenset[str]:
    """The locales a catalog folder holds (`<locale>/LC_MESSAGES/visearch.mo` or `.po`)."""
    if folder is None or not folder.is_dir():
        return frozenset()
    return frozenset(
        entry.name
        for entry in folder.iterdir()
        if any((entry / "LC_MESSAGES" / f"{DOMAIN}{suffix}").is_file() for suffix in (".mo", ".po"))
    )


def accept_language(header: str | None) -> list[str]:
    """The language tags of an `Accept-Language` header, most wanted first (q=0 dropped)."""
    if not header:
        return []
    weighted: list[tuple[float, int, str]] = []
    for position, entry in enumerate(header[:MAX_HINT_CHARS].split(",")[:MAX_ACCEPT_ENTRIES]):
        tag, _, params = entry.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and tag != "*" and quality > 0:
            weighted.append((-quality, position, tag))
    return [tag for _, _, tag in sorted(weighted)]


class Locales:
    """The locales on offer (shipped plus the shop's own) and each one's translations, loaded once."""

    def __init__(self, default: str = SOURCE_LOCALE, shop_dir: Path | None = None) -> None:
        self.shop_dir = shop_dir
        self.available = frozenset({SOURCE_LOCALE}) | catalog_locales(SHIPPED_LOCALES) | catalog_locales(shop_dir)
        wanted = str(parse_locale(default, setting="VISEARCH_DEFAULT_LOCALE"))
        self.default = self._match(wanted) or SOURCE_LOCALE
        self._translations: dict[str, NullTranslations] = {}

    @classmethod
    def from_settings(cls, settings: LocaleSettings) -> Locales:
        return cls(settings.default_locale, settings.locales_dir)

    def negotiate(self, *hints: str | None) -> str:
        """The best locale on offer for the hints (first wins), else the shop's default."""
        for hint in hints:
            if hint and (found := self._match(hint)) is not None:
                return found
        return self.default

    def negotiate_header(self, header: str | None) -> str:
        """The best locale for an `Accept-Language` header."""
        return self.negotiate(*accept_language(header))

    def translations(self, locale: str) -> NullTranslations:
        """The shop's catalog (if any) falling back to the shipped one, for a locale on offer."""
        if locale not in self._translations:
            self._translations[locale] = self._load(locale)
        return self._translations[locale]

    def ordered(self) -> list[str]:
        """Every locale on offer: the default first, then by code (a page's language switcher)."""
        return [self.default, *sorted(self.available - {self.default})]

    def _match(self, hint: str) -> str | None:
        try:
            wanted = Locale.parse(hint[:MAX_HINT_CHARS].strip().replace("-", "_"))
        except (UnknownLocaleError, ValueError, TypeError):
            return None
        exact = str(wanted)
        if exact in self.available:
            return exact
        if wanted.language in self.available:
            return wanted.language
        regional = sorted(code for code in self.available if code.split("_")[0] == wanted.language)
        return regional[0] if regional else None

    def _load(self, locale: str) -> NullTranslations:
        shipped = _read(SHIPPED_LOCALES, locale)
        if self.shop_dir is None:
            return shipped
        own = _read(self.shop_dir, locale)
        if isinstance(own, Translations):
            own.add_fallback(shipped)
            return own
        return shipped


def _read(folder: Path, locale: str) -> NullTranslations:
    """A compiled catalog, or a `.po` read directly (a shop may drop in uncompiled files)."""
    messages = folder / locale / "LC_MESSAGES"
    if (messages / f"{DOMAIN}.mo").is_file():
        return Translations.load(str(folder), [locale], DOMAIN)
    po = messages / f"{DOMAIN}.po"
    if po.is_file():
        return _po_translations(po, locale)
    return NullTranslations()


def _po_translations(po: Path, locale: str) -> NullTranslations:
    """Compile a `.po` in memory (what `pybabel compile` writes to disk)."""
    import io

    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with po.open("rb") as file:
        catalog = read_po(file, locale=locale, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


def shipped_locales() -> list[str]:
    """The locales visearch ships, English first."""
    return [SOURCE_LOCALE, *sorted(catalog_locales(SHIPPED_LOCALES) - {SOURCE_LOCALE})]


def locale_names(codes: Iterable[str]) -> dict[str, str]:
    """Each locale's own name for itself (`uk` -> `українська`), for a language switcher."""
    return {code: (Locale.parse(code).get_display_name(code) or code) for code in codes}
