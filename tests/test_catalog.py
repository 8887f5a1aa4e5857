"""Catalog parsing: CSV and JSONL, every bad row reported by line, unknown columns kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import CatalogError
from indexer.catalog import read_catalog


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_rows_become_products(tmp_path: Path) -> None:
    catalog = write(tmp_path / "c.csv", (
        "id,title,image,price,currency,category,brand,tags,url,in_stock,colour\n"
        "A1,Red shoe,a.jpg|b.jpg,\"12,50\",EUR,Shoes,Acme,sale|summer,https://x/a,no,red\n"
        'A2,"Mug, <big> & *bold*",https://example.test/m.png,3,,Kitchen,,,,,\n'
    ))
    result = read_catalog(catalog)
    assert not result.errors
    first, second = (row.product for row in result.rows)
    assert first.images == ["a.jpg", "b.jpg"]
    assert first.price == 12.5 and first.in_stock is False
    assert first.tags == ["sale", "summer"]
    assert first.extra == {"colour": "red"}
    assert second.title == "Mug, <big> & *bold*" and second.in_stock is True
    assert [row.line for row in result.rows] == [2, 3]


def test_csv_bad_rows_are_reported_with_line_and_reason(tmp_path: Path) -> None:
    catalog = write(tmp_path / "c.csv", (
        "id,title,image,price,in_stock\n"
        ",No id,a.jpg,1,\n"
        "B2,,a.jpg,1,\n"
        "B3,Bad price,a.jpg,cheap,\n"
        "B4,Bad stock,a.jpg,1,maybe\n"
        "B5,Good,a.jpg,1,\n"
        "B5,Duplicate,a.jpg,1,\n"
        '"B6","multi\nline title",a.jpg,2,\n'
        "B7,Negative,a.jpg,-3,\n"
    ))
    result = read_catalog(catalog)
    reasons = {err.line: err.reason for err in result.errors}
    assert reasons[2] == "missing id"
    assert reasons[3] == "missing title"
    assert "price" in reasons[4] and "cheap" in reasons[4]
    assert "in_stock" in reasons[5]
    assert "duplicate id" in reasons[7] and "line 6" in reasons[7]
    assert "price" in reasons[10]
    assert [row.product.id for row in result.rows] == ["B5", "B6"]
    assert result.rows[1].line == 8  # a quoted field spanning two lines keeps line numbers right


def test_jsonl_lists_and_bad_lines(tmp_path: Path) -> None:
    lines = [
        json.dumps({"id": "J1", "title": "Lamp", "images": ["l1.jpg", "l2.jpg"], "tags": ["home"], "price": 20, "in_stock": True, "sku_group": 7}),
        "{not json",
        json.dumps(["a", "list"]),
        "",
        json.dumps({"id": 5, "title": "Numeric id", "image": "n.jpg"}),
    ]
    result = read_catalog(write(tmp_path / "c.jsonl", "\n".join(lines)))
    assert [row.product.id for row in result.rows] == ["J1", "5"]
    assert result.rows[0].product.images == ["l1.jpg", "l2.jpg"]
    assert result.rows[0].product.extra == {"sku_group": 7}
    assert {err.line for err in result.errors} == {2, 3}
    assert "invalid JSON" in result.errors[0].reason


@pytest.mark.parametrize(("name", "content", "message"), [
    ("c.xlsx", "x", "unknown catalog format"),
    ("c.csv", "", "empty catalog"),
    ("c.csv", "sku,name\n1,a\n", "no id, title column"),
    ("missing.csv", None, "not found"),
])
def test_unreadable_catalog_is_a_clear_error(tmp_path: Path, name: str, content: str | None, message: str) -> None:
    path = tmp_path / name
    if content is not None:
        write(path, content)
    with pytest.raises(CatalogError, match=message):
        read_catalog(path)
