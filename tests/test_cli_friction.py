"""What a new shop owner meets at the command line: the collection's own encoder is used without
`--encoder`, a wrong argument is one line before any model loads, and `delete` names what it did
not find. The real CLI through typer's runner, on a copy of the bundled sample's collection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from visearch.core.config import Settings
from visearch.indexer.cli import app
from tests.conftest import copy_collection


@pytest.fixture
def env(tmp_path: Path, sample_collection: Settings, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The sample's offline collection, and no encoder named anywhere (the default is CLIP)."""
    settings = copy_collection(sample_collection, tmp_path / "data")
    monkeypatch.delenv("VISEARCH_ENCODER", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env of the repo's
    return {"VISEARCH_DATA_DIR": str(settings.data_dir), "VISEARCH_COLLECTION": settings.collection}


def test_search_uses_the_encoder_that_built_the_collection(env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["search", "--text", "banana", "--json"], env=env)
    assert result.exit_code == 0, result.output
    cards = json.loads(result.output[result.output.index("{"):])["cards"]
    assert cards[0]["product_id"] == "banana"
    named = CliRunner().invoke(app, ["search", "--text", "banana", "--encoder", "clip",
                                     "--model", "/nonexistent-model"], env=env)
    assert named.exit_code == 2 and "Traceback" not in named.output  # asked for: no guessing


@pytest.mark.parametrize("args, says", [
    (["--text", "milk", "--min-price", "50", "--max-price", "10"], "price_min (50.0) is above price_max (10.0)"),
    (["--image", "no-such-photo.jpg"], "cannot read no-such-photo.jpg"),
])
def test_a_wrong_argument_is_one_line_and_exit_2(env: dict[str, str], args: list[str], says: str) -> None:
    result = CliRunner().invoke(app, ["search", *args], env=env)
    assert result.exit_code == 2
    assert "Traceback" not in result.output and says in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_delete_names_the_ids_it_did_not_find(env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["delete", "banana", "no-such-sku"], env=env)
    assert result.exit_code == 0, result.output
    assert "not in the collection (nothing deleted for them): no-such-sku" in result.output
    assert "banana" not in result.output.split("not in the collection")[1]


@pytest.mark.parametrize("content, says", [
    (None, "catalog file not found"),
    ('id,title,image\nA,"never closed,a.jpg\n', "is never closed"),
])
def test_a_bad_catalog_is_reported_before_any_model_loads(env: dict[str, str], tmp_path: Path,
                                                          content: str | None, says: str) -> None:
    """An encoder that cannot load is named on purpose: the catalog's error must come first."""
    catalog = tmp_path / "catalog.csv"
    if content is not None:
        catalog.write_text(content, encoding="utf-8")
    unloadable = {**env, "VISEARCH_ENCODER": "clip", "VISEARCH_CLIP_MODEL": str(tmp_path / "no-such-model")}
    for command in ("index", "sync"):
        result = CliRunner().invoke(app, [command, str(catalog), "--quiet"], env=unloadable)
        assert result.exit_code == 2 and says in result.output, result.output
        assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
