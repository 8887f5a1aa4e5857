"""Catalog parsing: CSV and JSONL, every bad row reported by line, unknown columns kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from visearch.core.catalog import read_catalog
from visearch.core.errors import CatalogError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8", newline="")
    return path


def test_csv_rows_become_products(tmp_path: Path) -> None:
    catalog = write(
        tmp_path / "c.csv",
        (
            "id,title,image,price,currency,category,brand,tags,url,in_stock,Colour\n"
            'A1,Red shoe,a.jpg|b.jpg,"12,50",EUR,Shoes,Acme,sale|summer,https://x/a,no,red\n'
            'A2,"Mug, <big> & *bold*",https://example.test/m.png,3,,Kitchen,,,,,\n'
        ),
    )
    result = read_catalog(catalog)
    assert not result.errors and not result.warnings
    first, second = result.products
    assert first.images == ["a.jpg", "b.jpg"]
    assert first.price == 12.5 and first.in_stock is False
    assert first.tags == ["sale", "summer"]
    assert first.extra == {"Colour": "red"}  # unknown columns keep their name as written
    assert second.title == "Mug, <big> & *bold*" and second.in_stock is True
    assert second.extra == {}  # empty unknown cells are not kept
    assert [row.line for row in result.rows] == [2, 3]


def test_csv_header_is_case_and_space_insensitive_and_images_column_is_accepted(tmp_path: Path) -> None:
    catalog = write(tmp_path / "c.csv", "\ufeff ID , Title ,Images,IMAGE\r\nX,Lamp,b.jpg|c.jpg,a.jpg|b.jpg\r\n")
    [row] = read_catalog(catalog).rows
    assert row.product.id == "X"
    assert row.product.images == ["a.jpg", "b.jpg", "c.jpg"]  # image first, then images; duplicates once


def test_csv_bad_rows_are_reported_with_line_and_reason(tmp_path: Path) -> None:
    catalog = write(
        tmp_path / "c.csv",
        (
            "id,title,image,price,in_stock\n"
            ",No id,a.jpg,1,\n"  # 2
            "B2,,a.jpg,1,\n"  # 3
            "B3,Bad price,a.jpg,cheap,\n"  # 4
            "B4,Bad stock,a.jpg,1,maybe\n"  # 5
            "B5,Good,a.jpg,1,\n"  # 6
            "B5,Duplicate,a.jpg,1,\n"  # 7
            '"B6","multi\nline title",a.jpg,2,\n'  # 8-9
            "B7,Negative,a.jpg,-3,\n"  # 10
            "B8,Too,many,fields,1,x\n"  # 11
            ",,a.jpg,oops,\n"  # 12
            "B9," + "t" * 1001 + ",a.jpg,,\n"  # 13
        ),
    )
    result = read_catalog(catalog)
    reasons = {err.line: err.reason for err in result.errors}
    ids = {err.line: err.product_id for err in result.errors}
    assert reasons[2] == "missing id"
    assert reasons[3] == "missing title" and ids[3] == "B2"
    assert reasons[4] == "price: not a number ('cheap')"
    assert reasons[5] == "in_stock: expected true/false/yes/no/1/0, got 'maybe'"
    assert reasons[7] == "duplicate id, first seen on line 6"
    assert reasons[10] == "price: must not be negative ('-3')"
    assert "6 fields but the header has 5" in reasons[11] and ids[11] == "B8"
    assert reasons[12] == "missing id; missing title; price: not a number ('oops')"  # every problem at once
    assert reasons[13] == "title: String should have at most 1000 characters"  # pydantic's, naming the field
    assert [row.product.id for row in result.rows] == ["B5", "B6"]
    assert result.rows[1].line == 8  # a quoted field spanning two lines keeps line numbers right
    assert str(result.errors[0]) == "line 2: missing id"


def test_csv_line_numbers_survive_blank_lines_and_odd_line_breaks(tmp_path: Path) -> None:
    catalog = write(
        tmp_path / "c.csv",
        (
            "id,title,image\r\n"
            "\r\n"
            "A,Apple\u2028pie,a.jpg\r\n"  # U+2028 inside a field is not a line break for CSV
            "\n"
            ",,\n"
            "B,Beer\x85,b.jpg\n"
            ",No id,c.jpg\n"
        ),
    )
    result = read_catalog(catalog)
    assert [(row.line, row.product.id) for row in result.rows] == [(3, "A"), (6, "B")]
    assert [(err.line, err.reason) for err in result.errors] == [(7, "missing id")]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("12.50", 12.5),
        ("12,50", 12.5),
        ("1 234,50", 1234.5),
        ("1\u00a0234,50", 1234.5),
        ("1,234.50", 1234.5),
        ("1.234,50", 1234.5),
        ("12,345,678", 12345678.0),
        ("0", 0.0),
        ("", None),
    ],
)
def test_prices_as_shops_write_them(tmp_path: Path, raw: str, expected: float | None) -> None:
    [row] = read_catalog(write(tmp_path / "c.csv", f'id,title,image,price\nP,Thing,a.jpg,"{raw}"\n')).rows
    assert row.product.price == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("1,234", "price: ambiguous number '1,234' (thousands or decimals?); write 1234 or 1.234"),
        ("$12", "price: not a number ('$12')"),
        ("nan", "price: not a number ('nan')"),
        ("inf", "price: not a number ('inf')"),
    ],
)
def test_ambiguous_or_bad_prices_are_row_errors(tmp_path: Path, raw: str, reason: str) -> None:
    result = read_catalog(write(tmp_path / "c.csv", f'id,title,image,price\nP,Thing,a.jpg,"{raw}"\n'))
    assert [(e.line, e.product_id, e.reason) for e in result.errors] == [(2, "P", reason)]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("true", True), ("Yes", True), ("1", True), ("", True), ("FALSE", False), ("no", False), ("0", False)],
)
def test_in_stock_words(tmp_path: Path, raw: str, expected: bool) -> None:
    [row] = read_catalog(write(tmp_path / "c.csv", f"id,title,image,in_stock\nP,Thing,a.jpg,{raw}\n")).rows
    assert row.product.in_stock is expected


def test_jsonl_lists_types_and_bad_lines(tmp_path: Path) -> None:
    lines = [
        json.dumps(
            {
                "id": "J1",
                "title": "Lamp",
                "images": ["l1.jpg", "l2.jpg"],
                "tags": ["home"],
                "price": 20,
                "in_stock": True,
                "sku_group": 7,
                "dims": {"w": 3},
            }
        ),  # 1
        "{not json}",  # 2
        json.dumps(["a", "list"]),  # 3
        "",  # 4
        json.dumps({"id": 5, "title": "Numeric id", "image": "n.jpg", "in_stock": 0}),  # 5
        json.dumps({"id": "J6", "title": ["not", "text"], "image": "x.jpg"}),  # 6
        json.dumps({"id": "J7", "title": "Bool price", "image": "x.jpg", "price": True}),  # 7
        json.dumps({"id": "J8", "title": "Line\u2028separator", "image": "x.jpg"}, ensure_ascii=False),  # 8
        '{"id": "J9", "title": "broken',  # 9
    ]
    result = read_catalog(write(tmp_path / "c.jsonl", "\r\n".join(lines) + "\n"))
    assert [(row.line, row.product.id) for row in result.rows] == [(1, "J1"), (5, "5"), (8, "J8")]
    j1, five, j8 = result.products
    assert j1.images == ["l1.jpg", "l2.jpg"] and j1.tags == ["home"]
    assert j1.extra == {"sku_group": 7, "dims": {"w": 3}}  # JSON types are kept in the payload
    assert five.in_stock is False
    assert j8.title == "Line\u2028separator"  # JSON may hold U+2028 raw: not a line break
    errors = {err.line: err for err in result.errors}
    assert set(errors) == {2, 3, 6, 7, 9}
    assert errors[2].reason.startswith("invalid JSON") and errors[2].product_id is None
    assert errors[3].reason == "expected a JSON object, got a list"
    assert errors[6].reason == "title: expected text, got a list"
    assert errors[7].reason == "price: not a number (True)"
    assert errors[9].product_id == "J9"  # the id of a broken line is salvaged when plainly readable


def test_reserved_column_names_are_ignored_with_a_warning(tmp_path: Path) -> None:
    result = read_catalog(write(tmp_path / "c.csv", "id,title,image,product_id,f_brand\nA,Thing,a.jpg,zzz,acme\n"))
    [product] = result.products
    assert product.extra == {}
    assert len(result.warnings) == 2 and "'product_id'" in result.warnings[0]


def test_row_without_image_parses(tmp_path: Path) -> None:
    """Whether a product without images can be indexed is the pipeline's call (it reports it)."""
    [row] = read_catalog(write(tmp_path / "c.csv", "id,title,image\nA,Thing,\n")).rows
    assert row.product.images == []


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("c.xlsx", "x", r"unknown catalog format '\.xlsx'; supported: CSV \(\.csv.*JSON Lines \(\.jsonl"),
        ("catalog", "x", "unknown catalog format '\\(no extension\\)'"),
        ("c.csv", "", "empty catalog"),
        ("c.csv", "id,title,image\n", "no product rows"),
        ("c.jsonl", "\n\n", "no product rows"),
        ("c.csv", "sku,name\n1,a\n", r"the header has no id, title column \(found: sku, name\)"),
        ("c.csv", "id,title,Image,image\n1,a,b,c\n", "repeats column"),
        ("missing.csv", None, "not found"),
    ],
)
def test_unreadable_catalog_is_a_clear_error(tmp_path: Path, name: str, content: str | None, message: str) -> None:
    path = tmp_path / name
    if content is not None:
        write(path, content)
    with pytest.raises(CatalogError, match=message):
        read_catalog(path)


def test_non_utf8_catalog_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_bytes("id,title,image\nA,Käse,a.jpg\n".encode("latin-1"))
    with pytest.raises(CatalogError, match=r"not UTF-8.*save the catalog as UTF-8"):
        read_catalog(path)
