"""YML (Yandex Market Language) feeds as Prom.ua / Rozetka / Kaspi export them: mapping, bad offers, hostile XML,
and memory that stays flat however many offers the feed has."""

from __future__ import annotations

import gc
import io
import time
import tracemalloc
from xml.etree.ElementTree import fromstring

import pytest

from visearch.core.catalog import Catalog, CatalogRow, collect
from visearch.core.catalog.html import html_to_text
from visearch.core.catalog.yml import read_yml
from visearch.core.domain import Product
from visearch.core.errors import CatalogError

#: a feed written to the YML offer specification: a DOCTYPE naming shops.dtd (never fetched), currencies with a
#: base rate, a three-level category tree, simplified and vendor.model offers, variants sharing group_id,
#: HTML descriptions in CDATA, params with units, a sale (price + oldprice), every availability form
FEED = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE yml_catalog SYSTEM "shops.dtd">
<yml_catalog date="2024-05-01 12:00">
  <shop>
    <name>Взуття UA</name>
    <company>ТОВ Взуття</company>
    <url>https://shop.example.ua/</url>
    <currencies>
      <currency id="UAH" rate="1"/>
      <currency id="USD" rate="CB"/>
    </currencies>
    <categories>
      <category id="1">Одяг і взуття</category>
      <category id="10" parentId="1">Взуття</category>
      <category id="101" parentId="10">Кросівки</category>
      <category id="2">Посуд</category>
    </categories>
    <offers>
      <offer id="SH-42-RED" available="true" group_id="SH">
        <name>Кросівки «Бриз» червоні, 42</name>
        <url>https://shop.example.ua/p/sh-42-red</url>
        <price>1 299,50</price>
        <oldprice>1599</oldprice>
        <currencyId>UAH</currencyId>
        <categoryId>101</categoryId>
        <picture>https://shop.example.ua/img/sh-red-1.jpg</picture>
        <picture>https://shop.example.ua/img/sh-red-2.jpg</picture>
        <picture>https://shop.example.ua/img/sh-red-1.jpg</picture>
        <vendor>Бриз</vendor>
        <vendorCode>BR-42R</vendorCode>
        <description><![CDATA[<p>Легкі <b>кросівки</b> для&nbsp;бігу.</p><ul><li>Сітка</li><li>Гума</li></ul>
          <script>track()</script>Ціна &amp; якість]]></description>
        <param name="Колір">червоний</param>
        <param name="Розмір">42</param>
        <param name="Стать">чоловіча</param>
        <param name="Матеріал">текстиль</param>
        <param name="Вага" unit="кг">0.6</param>
      </offer>
      <offer id="SH-43-RED" available="false" group_id="SH">
        <name>Кросівки «Бриз» червоні, 43</name>
        <price>1299.50</price>
        <currencyId>UAH</currencyId>
        <categoryId>101</categoryId>
        <picture>https://shop.example.ua/img/sh-red-1.jpg</picture>
        <param name="Колір">червоний</param>
        <param name="Розмір">43</param>
      </offer>
      <offer id="MUG-1" type="vendor.model" available="">
        <typePrefix>Чашка</typePrefix>
        <vendor>Acme</vendor>
        <model>Classic 300</model>
        <price>9.90</price>
        <currencyId>USD</currencyId>
        <categoryId>2</categoryId>
        <picture>https://shop.example.ua/img/mug.jpg</picture>
      </offer>
      <offer id="PLAIN">
        <name>Plain thing</name>
        <picture>https://shop.example.ua/img/plain.jpg</picture>
      </offer>
      <offer id="ROZ-1">
        <name>Rozetka-style offer</name>
        <price>100</price>
        <price_old>120</price_old>
        <stock_quantity>0</stock_quantity>
        <picture>https://shop.example.ua/img/roz.jpg</picture>
      </offer>
    </offers>
  </shop>
</yml_catalog>
"""


def read(feed: str | bytes, *, currency: str | None = None) -> Catalog:
    data = feed.encode("utf-8") if isinstance(feed, str) else feed
    return collect("feed.xml", read_yml(io.BytesIO(data), "feed.xml", currency=currency))


def by_id(catalog: Catalog) -> dict[str, Product]:
    return {product.id: product for product in catalog.products}


def test_offers_map_to_products() -> None:
    catalog = read(FEED)
    assert not catalog.errors and not catalog.warnings
    products = by_id(catalog)
    assert list(products) == ["SH-42-RED", "SH-43-RED", "MUG-1", "PLAIN", "ROZ-1"]
    shoe = products["SH-42-RED"]
    assert shoe.title == "Кросівки «Бриз» червоні, 42"
    assert shoe.url == "https://shop.example.ua/p/sh-42-red"
    # the first picture is the main image; a picture listed twice is one image
    assert shoe.images == ["https://shop.example.ua/img/sh-red-1.jpg", "https://shop.example.ua/img/sh-red-2.jpg"]
    assert shoe.price == 1299.5 and shoe.currency == "UAH"
    assert shoe.extra["regular_price"] == 1599.0  # price is what the customer pays now, oldprice the one before
    assert shoe.brand == "Бриз"
    assert shoe.category == "Кросівки"
    assert shoe.extra["category_path"] == "Одяг і взуття > Взуття > Кросівки"
    assert shoe.extra["vendor_code"] == "BR-42R"
    assert shoe.description == "Легкі кросівки для бігу. Сітка Гума Ціна & якість"
    assert shoe.tags == [
        "Колір: червоний",
        "Розмір: 42",
        "Стать: чоловіча",
        "Матеріал: текстиль",
        "Вага: 0.6 кг",
    ]
    assert [row.line for row in catalog.rows] == [19, 39, 48, 57, 61]  # the line each <offer> starts on


def test_variants_share_their_group_tag() -> None:
    products = by_id(read(FEED))
    assert products["SH-42-RED"].group_id == products["SH-43-RED"].group_id == "SH"
    assert products["MUG-1"].group_id is None


def test_every_availability_form() -> None:
    products = by_id(read(FEED))
    assert products["SH-42-RED"].in_stock is True  # available="true"
    assert products["SH-43-RED"].in_stock is False  # available="false"
    assert products["MUG-1"].in_stock is False  # available="" (Prom.ua: on order, nothing ships now)
    assert products["PLAIN"].in_stock is True  # no attribute, no stock count
    assert products["ROZ-1"].in_stock is False  # no attribute, stock_quantity 0


def test_vendor_model_offer_builds_its_name_and_keeps_its_currency() -> None:
    mug = by_id(read(FEED))["MUG-1"]
    assert mug.title == "Чашка Acme Classic 300"
    assert mug.currency == "USD" and mug.price == 9.9
    assert mug.category == "Посуд" and mug.extra["category_path"] == "Посуд"  # a top-level category is its own path


def test_missing_optional_fields() -> None:
    products = by_id(read(FEED))
    plain = products["PLAIN"]
    assert plain.price is None and plain.url is None and plain.brand is None and plain.category is None
    assert plain.description == "" and plain.tags == [] and plain.extra == {}
    assert plain.currency == "UAH"  # no currencyId: the feed's base currency (rate="1")
    assert products["ROZ-1"].extra["regular_price"] == 120.0  # Rozetka's price_old


def test_currency_argument_when_the_feed_declares_none() -> None:
    feed = (
        '<yml_catalog><shop><offers><offer id="A"><name>A</name><price>5</price>'
        "<picture>https://x.test/a.jpg</picture></offer></offers></shop></yml_catalog>"
    )
    assert read(feed, currency="EUR").products[0].currency == "EUR"
    assert read(feed).products[0].currency is None


def test_windows_1251_feed() -> None:
    feed = (
        '<?xml version="1.0" encoding="windows-1251"?>\n<yml_catalog><shop><offers>'
        '<offer id="W1"><name>Сумка шкіряна</name><picture>https://x.test/w.jpg</picture></offer>'
        "</offers></shop></yml_catalog>"
    )
    assert read(feed.encode("windows-1251")).products[0].title == "Сумка шкіряна"


def test_bad_offers_are_reported_with_their_line_and_skipped() -> None:
    feed = """<yml_catalog><shop>
<categories><category id="1">Bags</category></categories>
<offers>
<offer id="NO-PIC"><name>No picture</name><price>3</price></offer>
<offer><name>No id</name><picture>https://x.test/n.jpg</picture></offer>
<offer id="NO-NAME"><picture>https://x.test/nn.jpg</picture></offer>
<offer id="BAD-PRICE"><name>Bad price</name><price>cheap</price><picture>https://x.test/b.jpg</picture></offer>
<offer id="GOOD"><name>Good</name><categoryId>7</categoryId><picture>https://x.test/g.jpg</picture></offer>
</offers></shop></yml_catalog>"""
    catalog = read(feed)
    assert [p.id for p in catalog.products] == ["GOOD"]
    errors = {(e.line, e.product_id): e.reason for e in catalog.errors}
    assert errors == {
        (4, "NO-PIC"): "no <picture>",
        (5, None): "missing id",
        (6, "NO-NAME"): "missing title",
        (7, "BAD-PRICE"): "price: not a number ('cheap')",
    }
    assert catalog.named_ids() >= {"NO-PIC", "NO-NAME", "BAD-PRICE", "GOOD"}  # sync keeps the broken ones
    # a categoryId the feed never declared: no category, and one warning for the feed
    assert catalog.products[0].category is None
    assert catalog.warnings == [
        "1 categoryId value(s) are not declared in <categories> (7); those offers have no category"
    ]


def test_malformed_xml_names_line_and_column() -> None:
    feed = '<yml_catalog><shop><offers>\n<offer id="A"><name>A</name>\n</offers></shop></yml_catalog>'
    with pytest.raises(CatalogError, match=r"feed\.xml: the feed is not well-formed XML \(mismatched tag: line 3"):
        read(feed)


def test_not_a_yml_document() -> None:
    with pytest.raises(CatalogError, match=r"feed\.xml: not a YML catalog .*: the root element is <rss>"):
        read('<rss version="2.0"><channel/></rss>')


def test_billion_laughs_is_refused_quickly() -> None:
    entities = "".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10))
    bomb = (
        f'<?xml version="1.0"?><!DOCTYPE yml_catalog [<!ENTITY lol0 "lol">{entities}]>'
        '<yml_catalog><shop><offers><offer id="A"><name>&lol9;</name></offer></offers></shop></yml_catalog>'
    )
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(CatalogError, match="refused: the feed declares the XML entity 'lol0'"):
            read(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 1.0
    assert peak < 2_000_000  # 10**9 "lol"s were never built


def test_external_entity_is_refused() -> None:
    xxe = (
        '<?xml version="1.0"?><!DOCTYPE yml_catalog [<!ENTITY secret SYSTEM "file:///etc/passwd">]>'
        '<yml_catalog><shop><offers><offer id="A"><name>&secret;</name>'
        "<picture>https://x.test/a.jpg</picture></offer></offers></shop></yml_catalog>"
    )
    with pytest.raises(CatalogError, match=r"feed\.xml: refused: the feed declares the XML entity 'secret'"):
        read(xxe)


def test_external_parameter_entity_is_refused() -> None:
    xxe = (
        '<?xml version="1.0"?><!DOCTYPE yml_catalog [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/x.dtd"> %remote;]>'
        "<yml_catalog><shop/></yml_catalog>"
    )
    with pytest.raises(CatalogError, match="refused"):
        read(xxe)


def test_html_to_text() -> None:
    assert html_to_text("<p>a</p><p>b&amp;c</p>") == "a b&c"
    assert html_to_text("x<br>y <style>p{}</style>z") == "x y z"
    assert html_to_text("2 < 3 and 5 > 4") == "2 < 3 and 5 > 4"


def generated_feed(offers: int) -> bytes:
    """A YML feed of `offers` small offers (a name, a price, a category, a picture, a param, variants)."""
    head = (
        '<?xml version="1.0" encoding="UTF-8"?><yml_catalog><shop><currencies><currency id="UAH" rate="1"/>'
        '</currencies><categories><category id="1">Root</category><category id="2" parentId="1">Leaf</category>'
        "</categories><offers>\n"
    )
    offer = (
        '<offer id="SKU-{n}" available="true" group_id="G{g}"><name>Товар №{n}</name><price>{n}.50</price>'
        '<categoryId>2</categoryId><picture>https://x.test/{n}.jpg</picture><param name="Розмір">{g}</param></offer>\n'
    )
    body = "".join(offer.format(n=n, g=n % 7) for n in range(offers))
    return (head + body + "</offers></shop></yml_catalog>\n").encode("utf-8")


def streaming_and_whole_peaks(offers: int) -> tuple[int, int, object, int]:
    """Traced peak bytes of streaming an `offers`-offer feed, and of parsing the same bytes whole."""
    data = generated_feed(offers)
    gc.collect()  # garbage of earlier tests must not count towards this peak
    tracemalloc.start()
    try:
        last = None
        count = 0
        for item in read_yml(io.BytesIO(data), "big.xml"):
            count += 1
            last = item
        streaming_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        root = fromstring(data)
        whole_peak = tracemalloc.get_traced_memory()[1]
        del root
    finally:
        tracemalloc.stop()
    return streaming_peak, whole_peak, last, count


def test_a_large_feed_is_read_with_flat_memory() -> None:
    """5x the offers, about the same peak, far below parsing the same bytes whole (100,000 offers measured
    by hand: about 1.5 MB against 182 MB; the test uses fewer to stay quick under tracemalloc)."""
    small_peak, _, _, _ = streaming_and_whole_peaks(2_000)
    streaming_peak, whole_peak, last, count = streaming_and_whole_peaks(10_000)
    assert count == 10_000
    assert isinstance(last, CatalogRow) and last.product.id == "SKU-9999"
    assert streaming_peak < 2 * small_peak + 512 * 1024, (streaming_peak, small_peak)
    assert whole_peak > 8 * streaming_peak, (whole_peak, streaming_peak)
