"""JSON Lines catalogs (.jsonl / .ndjson): one JSON object a line, fields named like the CSV columns."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from visearch.core.catalog.model import CatalogItem, RowError
from visearch.core.catalog.records import (
    RESERVED_COLUMNS,
    column_name,
    json_type,
    product_from_record,
    reserved_warnings,
)

#: what `read_catalog` says a JSON Lines catalog must look like
JSONL_SHAPE = "JSON Lines (.jsonl / .ndjson, one object per line)"


def read_jsonl(text: str, source: str = "") -> Iterator[CatalogItem]:
    """One JSON object per line as a product or an error; blank lines ignored; bad JSON is a structural error.

    `source` is unused (every problem of a JSON Lines file is a row's own); it is there so every
    reader is called alike. Split on \\n only: JSON strings may hold U+2028 or \\x85 unescaped,
    which `splitlines` would cut.
    """
    reserved_seen: set[str] = set()
    for line, raw in enumerate(text.split("\n"), start=1):
        raw = raw.rstrip("\r")
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            yield RowError(line, _salvage_id(raw), f"invalid JSON: {exc.msg} (column {exc.colno})", structural=True)
            continue
        if not isinstance(value, dict):
            yield RowError(line, None, f"expected a JSON object, got {json_type(value)}")
            continue
        record = {column_name(str(k)): v for k, v in value.items()}
        new = {k for k in record if k.lower() in RESERVED_COLUMNS} - reserved_seen
        if new:
            reserved_seen |= new
            yield from reserved_warnings(sorted(new))
        yield product_from_record(line, record)


def _salvage_id(raw: str) -> str | None:
    """The `id` of a broken JSON line when it is plainly readable: keeps `sync` from deleting it."""
    match = re.search(r'"id"\s*:\s*(?:"([^"\\]{1,200})"|(-?\d{1,30})\s*[,}])', raw)
    if not match:
        return None
    return (match.group(1) or match.group(2) or "").strip() or None
