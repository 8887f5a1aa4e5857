"""The shipped message catalogs: complete, placeholders intact, compiled files current, and every
message within its platform's limit after formatting with worst-case arguments, in every locale."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from tests.fakes.telegram import FakeTelegram
from visearch.bots.conversation import ContentKind, Notice, NoticeReason, SearchKind
from visearch.bots.conversation.i18n import DOMAIN, SHIPPED_LOCALES, Locales, shipped_locales
from visearch.bots.conversation.wording import ENGLISH, HTML, PLAIN, WHATSAPP, Wording, Wordings
from visearch.bots.telegram import presentation as telegram_ui
from visearch.bots.viber import messages as viber_ui
from visearch.bots.whatsapp.bot import BUTTON_TITLE_LIMIT
from visearch.core.domain import Card, Facets, Filters
from visearch.core.errors import ImageProblem
from visearch.core.query_syntax import parse_query_text

ROOT = Path(__file__).resolve().parents[2]
#: what the issue asks to ship besides English
REQUIRED = {"uk", "ru", "es", "de", "pt_BR", "ar"}
TRANSLATED = sorted(set(shipped_locales()) - {"en"})
#: the extraction keywords of `make locales-extract` (Makefile)
KEYWORDS = {
    "N_": None,
    "_": None,
    "gettext": None,
    "plural": (1, 2),
    "plural_form": (1, 2),
    "NP_": (1, 2),
    "_fill": (2,),
}
PLACEHOLDER = re.compile(r"%\((\w+)\)s|%%")
TELEGRAM_COMMAND_DESCRIPTION_LIMIT = 256
WORST_TITLE = "Ш" * 5000
WORST_WORDS = "ю" * 500


def po_catalog(locale: str) -> Catalog:
    with (SHIPPED_LOCALES / locale / "LC_MESSAGES" / f"{DOMAIN}.po").open("rb") as file:
        return read_po(file, locale=locale, domain=DOMAIN)


def code_messages() -> set[str]:
    """Every message the code marks for translation, extracted as `make locales-extract` does."""
    found = extract_from_dir(str(ROOT / "bots"), method_map=[("**.py", "python")], keywords=KEYWORDS)
    return {message if isinstance(message, str) else message[0] for _, _, message, _, _ in found}


def wordings() -> Wordings:
    return Wordings(Locales())


def test_every_required_locale_ships() -> None:
    assert set(shipped_locales()) >= REQUIRED


def test_the_template_lists_every_message_of_the_code() -> None:
    with (SHIPPED_LOCALES / f"{DOMAIN}.pot").open("rb") as file:
        template = {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(file) if m.id}
    assert code_messages() == template, "run `make locales` after changing a message"


@pytest.mark.parametrize("locale", TRANSLATED)
def test_a_locale_translates_every_message_with_its_placeholders(locale: str) -> None:
    catalog = po_catalog(locale)
    wanted = code_messages()
    ids = {m.id if isinstance(m.id, str) else m.id[0] for m in catalog if m.id}
    assert wanted <= ids, f"{locale} lacks {sorted(wanted - ids)[:5]}"
    for message in catalog:
        if not message.id:
            continue
        assert not message.fuzzy, f"{locale}: fuzzy translation of {message.id!r}"
        forms = message.string if isinstance(message.string, tuple | list) else (message.string,)
        assert forms and all(forms), f"{locale}: {message.id!r} is not translated"
        assert len(forms) == (catalog.num_plurals if message.pluralizable else 1)
        source = message.id if isinstance(message.id, str) else message.id[0]
        for form in forms:
            assert set(PLACEHOLDER.findall(form)) == set(PLACEHOLDER.findall(source)), (locale, source, form)
    problems = [(m.id, errors) for m, errors in catalog.check()]
    assert not problems, problems


@pytest.mark.parametrize("locale", TRANSLATED)
def test_the_compiled_catalog_matches_its_source(locale: str) -> None:
    """The .mo in the wheel is what `make locales` compiles from the .po (never a stale copy)."""
    with (SHIPPED_LOCALES / locale / "LC_MESSAGES" / f"{DOMAIN}.mo").open("rb") as file:
        compiled = read_mo(io.BytesIO(file.read()))
    source = po_catalog(locale)
    assert {(_strings(m.id), _strings(m.string)) for m in source if m.id and all(_strings(m.string))} == {
        (_strings(m.id), _strings(m.string)) for m in compiled if m.id
    }


def _strings(value: object) -> tuple[str, ...]:
    return tuple(value) if isinstance(value, tuple | list) else (str(value),)


def worst_notices() -> list[Notice]:
    """Every reason with the longest details the conversation can give it."""
    filters = Filters(
        categories=["К" * 60, "Fruit & Veg"],
        brands=["B" * 60],
        tags=["organic", "two words"],
        price_min=123456.78,
        price_max=987654.32,
        in_stock=True,
    )
    facets = Facets(
        products=1_234_567,
        categories={f"категорія {i}" * 3: i for i in range(400)},
        brands={f"brand {i}": i for i in range(400)},
        tags={f"tag{i}": i for i in range(400)},
        price_min=0.5,
        price_max=99999.99,
        currencies=["UAH"],
        in_stock=1_000_000,
    )
    stats = {"collection": "c" * 60, "backend": "qdrant-edge", "points": 10**9, "encoder": "e" * 80, "dim": 512}
    stats |= {"uptime_s": 10**7, "searches": 10**9, "rate_limited": 10**9, "errors": 10**9}
    notices = [
        Notice(NoticeReason.WELCOME, shop_name="S" * 64),
        Notice(NoticeReason.FILTERS_LIST, facets=facets),
        Notice(NoticeReason.STATS, stats=stats),
        Notice(NoticeReason.FILTERS_ONLY, filters=filters),
        Notice(NoticeReason.DOWNLOAD_FAILED),
        Notice(NoticeReason.TOO_LARGE, limit_bytes=20 * 1024 * 1024),
        Notice(NoticeReason.TOO_LARGE, limit_bytes=1024 * 1024),
        Notice(NoticeReason.NOT_AN_IMAGE, document="application/" + "x" * 200),
        Notice(NoticeReason.NOT_AN_IMAGE, document="application/pdf"),
        Notice(NoticeReason.RATE_LIMITED, wait_seconds=1),
        Notice(NoticeReason.RATE_LIMITED, wait_seconds=59),
    ]
    notices += [Notice(NoticeReason.BAD_IMAGE, image_problem=problem) for problem in ImageProblem]
    notices += [Notice(NoticeReason.UNSUPPORTED, content=content) for content in ContentKind]
    notices += [
        Notice(NoticeReason.NO_MATCH, search=kind, words=WORST_WORDS if kind is SearchKind.TEXT else None, filters=f)
        for kind in SearchKind
        for f in (filters, Filters())
    ]
    notices += [Notice(r) for r in (NoticeReason.ADMIN_ONLY, NoticeReason.BUSY, NoticeReason.UNAVAILABLE)]
    notices += [Notice(r) for r in (NoticeReason.EXPIRED, NoticeReason.PRODUCT_GONE, NoticeReason.FAILURE)]
    assert {n.reason for n in notices} == set(NoticeReason)
    return notices


def worst_card() -> Card:
    return Card(
        product_id="p" * 64,
        point_id="0f8fad5b-d9cb-469f-a165-70867728950e",
        title=WORST_TITLE,
        image="https://shop.example/" + "i" * 100 + ".jpg",
        price=1_234_567.89,
        currency="UAH",
        url="https://shop.example/" + "p" * 300,
        description="Опис " * 1000,
        category="К" * 200,
        score=0.9,
        in_stock=False,
    )


@pytest.mark.parametrize("locale", shipped_locales())
def test_every_message_fits_every_platform_after_formatting(locale: str) -> None:
    words = wordings().of(locale)
    for notice in worst_notices():
        telegram = telegram_ui.notice_text(notice, words)
        visible = FakeTelegram.visible_text(telegram, "HTML")  # raises on broken HTML, like Telegram
        assert FakeTelegram.utf16_len(visible) <= telegram_ui.TEXT_LIMIT, (locale, notice.reason)
        assert "%(" not in visible, (locale, notice.reason)  # every placeholder filled
        for style in (PLAIN, WHATSAPP):
            assert words.words(notice, style), (locale, notice.reason)
    card = worst_card()
    caption = FakeTelegram.visible_text(telegram_ui.card_caption(card, words), "HTML")
    assert FakeTelegram.utf16_len(caption) <= telegram_ui.CAPTION_LIMIT
    assert words.out_of_stock in caption
    for button in (words.more_like_this, words.show_more, words.open_in_shop, words.open):
        assert 0 < len(button) <= BUTTON_TITLE_LIMIT, (locale, button)
    for command in ("start", "help", "filters", "stats"):
        assert 0 < len(words.command_description(command)) <= TELEGRAM_COMMAND_DESCRIPTION_LIMIT
    pictures = viber_ui.fallback("u", "Shop", [card] * 3, "c" * 12, "https://bot.example", words)
    rich = viber_ui.carousel("u", "Shop", [card] * 3, "c" * 12, "https://bot.example", words)
    keyboards = [m["keyboard"]["Buttons"] for m in pictures if "keyboard" in m]
    blocks = rich["rich_media"]["Buttons"] if rich else []
    for button in [b for buttons in keyboards for b in buttons] + blocks:
        if "Text" in button:
            assert len(button["Text"]) <= viber_ui.BUTTON_TEXT_LIMIT, (locale, button["Text"])


@pytest.mark.parametrize("locale", shipped_locales())
def test_the_filters_a_locale_suggests_are_the_filters_it_reads(locale: str) -> None:
    """The welcome's examples and a no-match's echo of the filters are typed back by customers: each one
    parses, in the locale's own words, to the filters it stands for."""
    words = wordings().of(locale)
    for example in words.filter_examples():
        parsed = parse_query_text(example)
        assert not parsed.filters.is_empty() and not parsed.has_words, (locale, example, parsed)
    for filters in (
        Filters(price_max=20),
        Filters(price_min=5),
        Filters(price_min=5.5, price_max=20),
        Filters(in_stock=True),
        Filters(categories=["Fruit & Veg"], brands=["Arla"], price_max=12.5, in_stock=True),
    ):
        parsed = parse_query_text(words.describe_filters(filters))
        assert parsed.filters == filters and not parsed.has_words, (locale, words.describe_filters(filters))
    example = parse_query_text(words.gettext("apple category:apple under 20 in stock"))
    assert example.has_words and example.filters.price_max == 20 and example.filters.in_stock, (locale, example)


def test_english_filters_are_described_in_the_syntax_customers_type() -> None:
    filters = Filters(
        categories=["sour cream"], brands=["arla"], tags=["eco"], price_min=2, price_max=9.5, in_stock=True
    )
    assert ENGLISH.describe_filters(filters) == 'category:"sour cream" brand:arla #eco 2-9.5 in stock'


@pytest.mark.parametrize(
    ("locale", "price", "currency", "shown"),
    [
        ("uk", 1234.5, "UAH", "1\u00a0234,50\u00a0₴"),
        ("pt_BR", 12.9, "BRL", "R$\u00a012,90"),
        ("de", 12.9, "EUR", "12,90\u00a0€"),
        ("en", 12.5, "SEK", "SEK\u00a012.50"),
        ("es", 7, "lei", "7 lei"),  # not an ISO code: the shop's own word beside the number
    ],
)
def test_prices_in_the_customers_locale(locale: str, price: float, currency: str, shown: str) -> None:
    assert wordings().of(locale).price(price, currency) == shown


@pytest.mark.parametrize(("locale", "forms"), [("uk", 3), ("ru", 3), ("ar", 3), ("de", 2)])
def test_plural_forms_come_from_the_catalog(locale: str, forms: int) -> None:
    """1, 2, 3, 5, 11, 100 seconds: Ukrainian, Russian and Arabic say them in 3 forms at least, German in 2."""
    words: Wording = wordings().of(locale)
    texts = {n: words.words(Notice(NoticeReason.RATE_LIMITED, wait_seconds=n)) for n in (1, 2, 3, 5, 11, 100)}
    assert len({text.replace(str(n), "#") for n, text in texts.items()}) >= forms, texts


def test_a_shop_catalog_overrides_one_message_and_adds_a_locale(tmp_path: Path) -> None:
    """VISEARCH_LOCALES_DIR: the shop's wording wins; what it leaves out comes from ours; a new locale is offered."""
    own = Catalog(locale="uk", domain=DOMAIN)
    own.add("More like this", "Схоже 🔎")
    folder = tmp_path / "uk" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    from babel.messages.pofile import write_po

    with (folder / f"{DOMAIN}.po").open("wb") as file:
        write_po(file, own)
    nl = tmp_path / "nl" / "LC_MESSAGES"
    nl.mkdir(parents=True)
    dutch = Catalog(locale="nl", domain=DOMAIN)
    dutch.add("Show more", "Meer tonen")
    with (nl / f"{DOMAIN}.po").open("wb") as file:
        write_po(file, dutch)
    locales = Locales("nl", tmp_path)
    words = Wordings(locales)
    assert words.of("uk").more_like_this == "Схоже 🔎"
    assert words.of("uk").show_more == wordings().of("uk").show_more != "Show more"  # ours fills the rest
    assert "nl" in locales.available and locales.default == "nl"
    assert words.of("nl").show_more == "Meer tonen" and words.of("nl").open_in_shop == "Open in shop"
    assert locales.negotiate(None) == "nl" and locales.negotiate("fr") == "nl"


@pytest.mark.parametrize(
    ("hint", "chosen"),
    [
        ("uk", "uk"),
        ("uk-UA", "uk"),
        ("pt-BR", "pt_BR"),
        ("pt", "pt_BR"),  # any region of the language before the default
        ("pt-PT", "pt_BR"),
        ("es-419", "es"),
        ("ar-EG", "ar"),
        ("zz", "en"),
        ("", "en"),
        ("x" * 5000, "en"),
        ("de-CH-1996", "de"),
    ],
)
def test_a_platforms_language_hint_falls_back_to_the_base_language_then_the_default(hint: str, chosen: str) -> None:
    assert Locales().negotiate(hint) == chosen


def test_accept_language_is_read_by_quality() -> None:
    locales = Locales("es")
    assert locales.negotiate_header("fr-FR,fr;q=0.9,de;q=0.8,en;q=0.5") == "de"
    assert locales.negotiate_header("uk;q=0.1, ru;q=0.9") == "ru"
    assert locales.negotiate_header("*") == "es" and locales.negotiate_header(None) == "es"
    assert locales.negotiate_header("de;q=0, zz") == "es"  # q=0 means "not this one"
    assert locales.negotiate_header("," * 100_000 + "uk") == "es"  # read only within its bound


def test_right_to_left_locales_say_so() -> None:
    assert wordings().of("ar").right_to_left and not wordings().of("uk").right_to_left
