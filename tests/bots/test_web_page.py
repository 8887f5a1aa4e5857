"""The search page in a real browser: Debian's Chromium driven by Playwright (never a downloaded
browser), against the app on 127.0.0.1 with the bundled sample and real in-store photos.

Needs /usr/bin/chromium (`apt-get install chromium`) or VISEARCH_CHROMIUM=/path/to/chromium.
Without one the tests skip, unless VISEARCH_REQUIRE_BROWSER=1 (set by .ci/run), where they fail.
"""

from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import copy_collection
from tests.serving import app_in_thread
from visearch.core.config import Settings

SAMPLE = Path(__file__).resolve().parents[2] / "indexer" / "demo_data" / "grocery"
#: as the probe of this machine kind starts it: no background traffic, no sandbox as root
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 390, "height": 844}


def chromium_path() -> str:
    configured = os.environ.get("VISEARCH_CHROMIUM")
    found = configured or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found or not Path(found).exists():
        reason = "no Chromium: apt-get install chromium, or set VISEARCH_CHROMIUM to the browser's path"
        if os.environ.get("VISEARCH_REQUIRE_BROWSER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return found


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, sample_collection: Settings, offline_encoder) -> Iterator[str]:
    settings = copy_collection(sample_collection, tmp_path_factory.mktemp("web-data"))
    with app_in_thread(settings, offline_encoder) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    path = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any, site: str) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    tab = context.new_page()
    outside: list[str] = []

    def only_loopback(route: Any) -> None:  # the page must need nothing from the internet
        if route.request.url.startswith(site):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    tab.route("**/*", only_loopback)
    tab.set_default_timeout(30_000)
    tab.goto(site + "/")
    try:
        yield tab
    finally:
        context.close()
    assert outside == [], f"the page asked for outside resources: {outside}"


def val_photo_path(grocery_dir: Path, fragment: str) -> Path:
    for line in (grocery_dir / "val.txt").read_text().splitlines():
        rel = line.split(",")[0].strip()
        if fragment in rel:
            return grocery_dir / rel
    raise AssertionError(fragment)


def settled(page: Any) -> None:
    """Wait until the page's newest request has been answered and drawn."""
    page.wait_for_selector("#results[aria-busy='false']")


def titles(page: Any) -> list[str]:
    return page.locator("#results .card .title").all_inner_texts()


def in_stock_apples() -> set[str]:
    with (SAMPLE / "catalog.csv").open(encoding="utf-8") as fh:
        return {r["title"] for r in csv.DictReader(fh) if r["category"] == "Apple" and r["in_stock"] == "true"}


def test_photo_search_more_like_this_and_filters(page: Any, grocery_dir: Path, tmp_path: Path) -> None:
    page.set_input_files("#photo", str(val_photo_path(grocery_dir, "Granny-Smith")))
    page.wait_for_selector("#results .card")
    assert titles(page)[0] == "Granny Smith"
    assert len(titles(page)) < 12 and not page.locator("#more").is_visible()  # every relevant product is shown
    first = page.locator("#results .card").first
    assert first.locator(".price").inner_text() == "SEK\u00a011.44"  # Intl.NumberFormat in the page's locale (en)
    image = first.locator("img")
    assert "/media/" in image.get_attribute("src")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    assert first.locator(".open").get_attribute("href").startswith("https://www.hemkop.se/")
    page.screenshot(path=str(tmp_path / "photo-search.png"), full_page=True)

    first.locator(".similar").click()
    page.wait_for_function("document.getElementById('status').textContent.startsWith('More like Granny Smith')")
    similar = titles(page)
    assert similar and "Granny Smith" not in similar

    page.set_input_files("#photo", str(val_photo_path(grocery_dir, "Granny-Smith")))
    page.wait_for_function("document.querySelector('#results .card .title')?.textContent === 'Granny Smith'")
    page.select_option("#category", value="Apple")
    page.check("#in-stock")
    settled(page)
    filtered = titles(page)
    assert filtered and set(filtered) <= in_stock_apples(), filtered
    assert "Granny Smith" not in filtered  # out of stock in the catalog
    assert all(s == "in stock" for s in page.locator("#results .card .stock").all_inner_texts())
    page.screenshot(path=str(tmp_path / "filtered.png"), full_page=True)
    assert (tmp_path / "filtered.png").stat().st_size > 10_000


def test_text_search_and_show_more(page: Any) -> None:
    page.fill("#text", "apple")
    page.click("#go")
    page.wait_for_selector("#results .card")
    before = len(titles(page))
    assert before == 12 and page.locator("#more").is_visible()
    page.click("#more")
    page.wait_for_function(f"document.querySelectorAll('#results .card').length > {before}")
    assert len(set(titles(page))) == len(titles(page))  # the next page adds new products


def test_errors_are_sentences_not_stack_traces(page: Any, tmp_path: Path) -> None:
    pdf = tmp_path / "catalog.pdf"
    pdf.write_bytes(b"%PDF-1.4\n%%EOF\n")
    page.set_input_files("#photo", files=[{"name": "photo.jpg", "mimeType": "image/jpeg", "buffer": pdf.read_bytes()}])
    page.wait_for_selector("#error:not([hidden])")
    message = page.inner_text("#error")
    assert "not a photo" in message and "Traceback" not in message and "{" not in message
    page.click("#clear")
    page.fill("#text", "apple")
    page.fill("#price-min", "50")
    page.fill("#price-max", "10")
    page.click("#go")
    page.wait_for_function(
        "!document.getElementById('error').hidden && document.getElementById('error').textContent.includes('price')"
    )
    page.fill("#price-min", "")
    page.fill("#price-max", "")
    page.select_option("#category", value="Apple")
    page.fill("#text", "qwxz zzvy")
    page.click("#go")
    page.wait_for_selector("#error:not([hidden])")
    assert page.locator("#results .card").count() == 0 and "No matching" in page.inner_text("#error")


def test_works_on_a_phone_sized_screen(browser: Any, site: str, grocery_dir: Path, tmp_path: Path) -> None:
    context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    try:
        phone = context.new_page()
        phone.goto(site + "/")
        phone.set_input_files("#photo", str(val_photo_path(grocery_dir, "Granny-Smith")))
        phone.wait_for_function("document.querySelectorAll('#results .card').length >= 2")
        assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # no sideways scrolling
        boxes = [phone.locator("#results .card").nth(i).bounding_box() for i in range(2)]
        assert boxes[0]["y"] == boxes[1]["y"] and boxes[0]["width"] < PHONE["width"] / 2  # two cards a row
        phone.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
    finally:
        context.close()


def open_phone(browser: Any, url: str, locale: str | None = None) -> tuple[Any, Any]:
    """A phone-sized tab (its browser language `locale`, i.e. its Accept-Language) at `url`."""
    options: dict[str, Any] = {"viewport": PHONE, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
    if locale:
        options["locale"] = locale
    context = browser.new_context(**options)
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    tab.goto(url)
    return context, tab


def overflowing(tab: Any) -> list[str]:
    """Elements wider than the screen or reaching past its edges (what a right-to-left layout breaks)."""
    return tab.evaluate(
        """() => [...document.querySelectorAll('body *')].filter((el) => {
            const box = el.getBoundingClientRect();
            if (!box.width || getComputedStyle(el).position === 'absolute') return false;
            return box.left < -1 || box.right > document.documentElement.clientWidth + 1;
        }).map((el) => el.tagName + '#' + el.id + '.' + el.className)"""
    )


def test_the_page_in_arabic_is_right_to_left_and_fits_a_phone(browser: Any, site: str, grocery_dir: Path) -> None:
    context, tab = open_phone(browser, site + "/", locale="ar-EG")  # chosen by the browser's Accept-Language
    try:
        assert tab.evaluate("[document.documentElement.lang, document.documentElement.dir]") == ["ar", "rtl"]
        assert tab.locator("#go").inner_text() != "Search"
        tab.fill("#text", "apple")
        tab.press("#text", "Enter")
        tab.wait_for_function("document.querySelectorAll('#results .card').length >= 2")
        status = tab.locator("#status").inner_text()
        assert status and "product" not in status  # the count in Arabic, from the catalog's plural forms
        assert tab.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        assert overflowing(tab) == []
        card = tab.locator("#results .card").first.bounding_box()
        assert card["x"] + card["width"] > PHONE["width"] / 2  # the first card sits on the right
        assert tab.locator("#results .card .similar").first.inner_text() != "More like this"
    finally:
        context.close()


def test_the_page_in_ukrainian_from_the_switcher(browser: Any, site: str) -> None:
    context, tab = open_phone(browser, site + "/", locale="en-US")
    try:
        assert tab.evaluate("document.documentElement.lang") == "en"
        tab.locator("nav.languages a[hreflang='uk']").click()
        tab.wait_for_url("**/?lang=uk")
        assert tab.evaluate("[document.documentElement.lang, document.documentElement.dir]") == ["uk", "ltr"]
        assert tab.locator("nav.languages a[aria-current]").inner_text() == "українська"
        assert tab.locator("#go").inner_text() != "Search"
        tab.fill("#text", "zzqxv")
        tab.press("#text", "Enter")
        tab.wait_for_selector("#error:not([hidden])")
        error = tab.locator("#error").inner_text()
        assert error and "No matching" not in error  # the API's sentence, in the page's language
        tab.fill("#text", "apple")
        tab.press("#text", "Enter")
        tab.wait_for_function("document.querySelectorAll('#results .card').length >= 2")
        price = tab.locator("#results .card .price").first.inner_text()
        assert "," in price and "." not in price  # 11,44 SEK: the Ukrainian decimal comma
        assert overflowing(tab) == []
    finally:
        context.close()
