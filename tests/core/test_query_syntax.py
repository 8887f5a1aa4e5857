"""The filter syntax customers type in chats: what they write must become the right filters."""

from __future__ import annotations

import pytest

from visearch.core.domain import Filters
from visearch.core.query_syntax import parse_query_text


@pytest.mark.parametrize(
    ("message", "words", "filters"),
    [
        ("red shoes under 50", "red shoes", Filters(price_max=50)),
        ("category:dairy", "", Filters(categories=["dairy"])),
        ('cat:"Sour Cream" in stock', "", Filters(categories=["sour cream"], in_stock=True)),
        (
            "apple #organic brand:Arla 10-50",
            "apple",
            Filters(brands=["arla"], tags=["organic"], price_min=10, price_max=50),
        ),
        ("juice over $10", "juice", Filters(price_min=10)),
        ("between 5 and 2 milk", "milk", Filters(price_min=2, price_max=5)),
        ("oat milk from 10 to 20", "oat milk", Filters(price_min=10, price_max=20)),
        ("<20 apple", "apple", Filters(price_max=20)),
        ("under 50 sek oat milk", "oat milk", Filters(price_max=50)),
        ("yoghurt under 12,5", "yoghurt", Filters(price_max=12.5)),
        ("green apples available", "green apples", Filters(in_stock=True)),
        ("category:milk category:juice", "", Filters(categories=["milk", "juice"])),
        ('shirt colour:red color:"light blue"', "shirt", Filters(colours=["red", "light blue"])),
    ],
)
def test_filters_are_read_and_taken_out_of_the_words(message: str, words: str, filters: Filters) -> None:
    parsed = parse_query_text(message)
    assert parsed.text == words
    assert parsed.filters == filters


@pytest.mark.parametrize(
    "message", ["milk", "apples from italy", "size 42 sneakers", "", "  ", "<b>&amp;</b>", "category:"]
)
def test_plain_words_stay_words(message: str) -> None:
    parsed = parse_query_text(message)
    assert parsed.filters.is_empty()
    assert parsed.text == " ".join(message.split())


@pytest.mark.parametrize("message", ["milk under " + "9" * 400, "milk over " + "9" * 400, "milk 1-" + "9" * 400])
def test_an_absurd_amount_is_a_finite_cap_not_infinity(message: str) -> None:
    import math

    filters = parse_query_text(message).filters
    amounts = [a for a in (filters.price_min, filters.price_max) if a is not None]
    assert amounts and all(math.isfinite(a) for a in amounts)
    assert parse_query_text(message).text == "milk"
