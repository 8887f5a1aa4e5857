"""The filter syntax in the shipped languages: real phrases a customer types, with the filters they
set and the words left to search for; phrases that only look like filters stay words."""

from __future__ import annotations

import pytest

from visearch.core.query_syntax import parse_query_text

# (typed, words left, price_min, price_max, in_stock)
PRICES = [
    # Ukrainian
    ("кросівки до 500 грн", "кросівки", None, 500, None),
    ("сукня дешевше 300 гривень", "сукня", None, 300, None),
    ("куртка від 1 000 ₴", "куртка", 1000, None, None),
    ("від 10 до 50", "", 10, 50, None),
    ("10-50 грн", "", 10, 50, None),
    ("сир до 99,90 грн", "сир", None, 99.9, None),
    # Russian
    ("кроссовки менее 300 руб", "кроссовки", None, 300, None),
    ("меньше 300 ₽", "", None, 300, None),
    ("не дороже 1000 рублей", "", None, 1000, None),
    ("от 10 до 50", "", 10, 50, None),
    ("дороже 50", "", 50, None, None),
    # Spanish
    ("zapatos menos de 20", "zapatos", None, 20, None),
    ("hasta 20 €", "", None, 20, None),
    ("más de 10 euros", "", 10, None, None),
    ("entre 10 y 50", "", 10, 50, None),
    ("de 10 a 50", "", 10, 50, None),
    # German
    ("Schuhe unter 20 €", "Schuhe", None, 20, None),
    ("bis 20 Euro", "", None, 20, None),
    ("über 10", "", 10, None, None),
    ("ab 10,50", "", 10.5, None, None),
    ("zwischen 10 und 50", "", 10, 50, None),
    ("Jacke bis 1.234,50 €", "Jacke", None, 1234.5, None),
    # Portuguese (Brazil)
    ("tênis até 50", "tênis", None, 50, None),
    ("menos de R$ 50", "", None, 50, None),
    ("acima de 10 reais", "", 10, None, None),
    ("entre 10 e 50", "", 10, 50, None),
    ("R$ 12,90-R$ 20", "", 12.9, 20, None),
    # Arabic (ASCII and Arabic-Indic digits)
    ("حذاء أقل من 100", "حذاء", None, 100, None),
    ("أقل من ١٠٠ ريال", "", None, 100, None),
    ("أكثر من 50", "", 50, None, None),
    ("بين 10 و 50", "", 10, 50, None),
    ("\u200fأقل من ١٢٫٥", "", None, 12.5, None),
]


@pytest.mark.parametrize(("typed", "words", "low", "high", "stock"), PRICES)
def test_price_words_and_symbols_of_every_language(
    typed: str, words: str, low: float | None, high: float | None, stock: bool | None
) -> None:
    parsed = parse_query_text(typed)
    assert (parsed.text, parsed.filters.price_min, parsed.filters.price_max) == (words, low, high)
    assert parsed.filters.in_stock is stock


@pytest.mark.parametrize(
    ("typed", "words"),
    [
        ("куртка в наявності", "куртка"),
        ("є в наявності", ""),
        ("куртка в наличии", "куртка"),
        ("есть в наличии", ""),
        ("camisa disponible", "camisa"),
        ("en stock", ""),
        ("Jacke auf Lager", "Jacke"),
        ("verfügbar", ""),
        ("camisa em estoque", "camisa"),
        ("disponível", ""),
        ("قميص متوفر", "قميص"),
        ("متاح", ""),
    ],
)
def test_stock_words_of_every_language(typed: str, words: str) -> None:
    parsed = parse_query_text(typed)
    assert parsed.filters.in_stock is True and parsed.text == words


@pytest.mark.parametrize(
    ("typed", "categories", "brands", "tags", "colours"),
    [
        ("категорія:взуття бренд:nike", ["взуття"], ["nike"], [], []),
        ('категория:"верхняя одежда" тег:зима', ["верхняя одежда"], [], ["зима"], []),
        ("categoría:zapatos marca:adidas", ["zapatos"], ["adidas"], [], []),
        ("Kategorie:Schuhe Marke:Puma Farbe:rot", ["schuhe"], ["puma"], [], ["rot"]),  # values are folded
        ("categoria:tênis marca:olympikus cor:azul", ["tênis"], ["olympikus"], [], ["azul"]),
        ("فئة:أحذية علامة:نايك لون:أحمر", ["أحذية"], ["نايك"], [], ["أحمر"]),
        ("category:shoes brand:nike #sale", ["shoes"], ["nike"], ["sale"], []),
    ],
)
def test_category_brand_tag_and_colour_prefixes_in_every_language(
    typed: str, categories: list[str], brands: list[str], tags: list[str], colours: list[str]
) -> None:
    filters = parse_query_text(typed).filters
    assert (filters.categories, filters.brands, filters.tags, filters.colours) == (categories, brands, tags, colours)


@pytest.mark.parametrize(
    "typed",
    [
        "до побачення",
        "до свидания",
        "hasta luego",
        "bis morgen",
        "até logo",
        "menos mal",
        "до",
        "bis",
        "iphone 15",
        "camisa de manga larga",
        "від мами",
        "من فضلك",
    ],
)
def test_words_that_only_look_like_filters_stay_words(typed: str) -> None:
    parsed = parse_query_text(typed)
    assert parsed.filters.is_empty() and parsed.text == typed


def test_a_long_adversarial_message_is_read_in_bounded_time() -> None:
    """Many near-filters and digits (what a regex that backtracks chokes on): parsed, words kept."""
    hostile = ("до 1 1 1 1 1 1 1 1,1,1,1 " * 400) + "entre " * 500 + "9" * 3000
    parsed = parse_query_text(hostile)
    assert parsed.has_words
