"""`visearch index` and `visearch sync` read a shop's XML feed file (Google Merchant RSS/Atom or YML), told
by the document's root element: the same products as the sample CSV, searchable afterwards."""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from typer.testing import CliRunner

from visearch.indexer.cli import app

SAMPLE = Path(__file__).resolve().parents[2] / "indexer" / "demo_data" / "grocery"
PRODUCTS = ("banana", "granny-smith", "arla-standard-milk", "tropicana-apple-juice")


def sample_rows() -> list[dict[str, str]]:
    rows = list(csv.DictReader((SAMPLE / "catalog.csv").open(encoding="utf-8")))
    return [r for r in rows if r["id"] in PRODUCTS]


def merchant_feed(rows: list[dict[str, str]]) -> str:
    items = "".join(
        f"<item><g:id>{escape(r['id'])}</g:id><title>{escape(r['title'])}</title>"
        f"<description>&lt;p&gt;{escape(r['description'])}&lt;/p&gt;</description>"
        f"<g:image_link>{escape(r['image'])}</g:image_link><g:price>{r['price']} SEK</g:price>"
        f"<g:availability>{'in_stock' if r['in_stock'] == 'true' else 'out_of_stock'}</g:availability>"
        f"<g:product_type>Grocery &gt; {escape(r['category'])}</g:product_type></item>\n"
        for r in rows
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0" xmlns:g="http://base.google.com/ns/1.0">'
        f"<channel><title>Shop</title>\n{items}</channel></rss>\n"
    )


def yml_feed(rows: list[dict[str, str]]) -> str:
    categories = sorted({r["category"] for r in rows})
    category_ids = {name: str(n) for n, name in enumerate(categories, start=1)}
    offers = "".join(
        f'<offer id="{escape(r["id"])}" available="{r["in_stock"]}"><name>{escape(r["title"])}</name>'
        f"<price>{r['price']}</price><currencyId>SEK</currencyId><categoryId>{category_ids[r['category']]}"
        f"</categoryId><picture>{escape(r['image'])}</picture></offer>\n"
        for r in rows
    )
    cats = "".join(f'<category id="{i}">{escape(name)}</category>' for name, i in category_ids.items())
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE yml_catalog SYSTEM "shops.dtd">\n'
        '<yml_catalog date="2026-11-29 12:00"><shop><name>Shop</name><currencies><currency id="SEK" rate="1"/>'
        f"</currencies><categories>{cats}</categories><offers>\n{offers}</offers></shop></yml_catalog>\n"
    )


@pytest.mark.parametrize("feed", [merchant_feed, yml_feed], ids=["merchant", "yml"])
def test_a_feed_file_indexes_and_syncs_like_a_catalog(
    tmp_path: Path, feed: Callable[[list[dict[str, str]]], str]
) -> None:
    shutil.copytree(SAMPLE / "images", tmp_path / "images")
    rows = sample_rows()
    path = tmp_path / "feed.xml"
    path.write_text(feed(rows), encoding="utf-8")
    env = {"VISEARCH_DATA_DIR": str(tmp_path / "data"), "VISEARCH_ENCODER": "offline", "VISEARCH_COLLECTION": "f"}
    runner = CliRunner()

    indexed = runner.invoke(app, ["index", str(path), "--json"], env=env, catch_exceptions=False)
    assert indexed.exit_code == 0, indexed.output
    assert json.loads(indexed.stdout)["counts"]["indexed"] == len(PRODUCTS)

    found = runner.invoke(app, ["search", "--image", str(SAMPLE / "queries" / "banana.jpg"), "--json"], env=env)
    assert found.exit_code == 0, found.output
    assert json.loads(found.stdout[found.stdout.index("{") :])["cards"][0]["product_id"] == "banana"

    path.write_text(feed([r for r in rows if r["id"] != "banana"]), encoding="utf-8")
    synced = runner.invoke(app, ["sync", str(path), "--json"], env=env, catch_exceptions=False)
    assert synced.exit_code == 0, synced.output
    assert json.loads(synced.stdout)["counts"]["deleted"] == 1


def test_an_xml_file_that_is_no_feed_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "sitemap.xml"
    path.write_text('<?xml version="1.0"?><urlset><url><loc>https://shop.test/</loc></url></urlset>')
    result = CliRunner().invoke(app, ["index", str(path)], env={"VISEARCH_DATA_DIR": str(tmp_path / "d")})
    assert result.exit_code == 2
    assert "root element 'urlset'" in result.output and "Traceback" not in result.output


def test_sync_by_url_indexes_then_an_unchanged_feed_costs_one_request_and_a_failing_one_deletes_nothing(
    tmp_path: Path,
) -> None:
    from tests.core.feeds import merchant_rss, sample_items
    from tests.fakes.shop import fake_shop

    items = sample_items()
    env = {"VISEARCH_DATA_DIR": str(tmp_path / "data"), "VISEARCH_ENCODER": "offline", "VISEARCH_COLLECTION": "u"}
    runner = CliRunner()
    with fake_shop() as shop:
        for item in items:
            shop.serve(item.image, item.photo.read_bytes(), "image/jpeg")
        url = shop.serve("/feed.xml", merchant_rss(items, shop.base))

        first = runner.invoke(app, ["sync", url, "--json"], env=env, catch_exceptions=False)
        assert first.exit_code == 0, first.output
        assert json.loads(first.stdout)["counts"]["indexed"] == len(items)

        feed_hits, photo_hits = shop.hits_of("/feed.xml"), shop.hits_of("/img/")
        again = runner.invoke(app, ["sync", url], env=env, catch_exceptions=False)
        assert again.exit_code == 0, again.output
        assert "unchanged" in again.output
        assert (shop.hits_of("/feed.xml"), shop.hits_of("/img/")) == (feed_hits + 1, photo_hits)

        shop.serve("/feed.xml", b"server error", "text/plain", status=500)
        failed = runner.invoke(app, ["sync", url], env=env, catch_exceptions=False)
        assert failed.exit_code == 2, failed.output
        assert "500" in failed.output and "nothing" in failed.output.lower()

    stats = runner.invoke(app, ["stats", "--json"], env=env, catch_exceptions=False)
    assert json.loads(stats.stdout[stats.stdout.index("{") :])["products"] == len(items)
