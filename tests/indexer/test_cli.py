"""The `visearch` commands end to end: the bundled sample indexed and searched in a temp dir."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from visearch.indexer.cli import app

SAMPLE = Path(__file__).resolve().parents[2] / "indexer" / "demo_data" / "grocery"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    data = tmp_path_factory.mktemp("cli-data")
    return {"VISEARCH_DATA_DIR": str(data), "VISEARCH_ENCODER": "offline", "VISEARCH_COLLECTION": "cli"}


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli-catalog")
    shutil.copytree(SAMPLE, root, dirs_exist_ok=True)
    return root / "catalog.csv"


def invoke(env: dict[str, str], *args: str):
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


@pytest.fixture(scope="module")
def indexed(env: dict[str, str], catalog: Path) -> Path:
    result = invoke(env, "index", str(catalog), "--quiet")
    assert result.exit_code == 0, result.output
    return catalog


def test_index_then_reindex_does_no_work(env: dict[str, str], indexed: Path) -> None:
    result = invoke(env, "index", str(indexed), "--json")
    assert result.exit_code == 0, result.output
    counts = json.loads(result.stdout)["counts"]
    assert counts["indexed"] == 0
    assert counts["unchanged"] == 81


def test_stats_json(env: dict[str, str], indexed: Path) -> None:
    data = json.loads(invoke(env, "stats", "--json").stdout)
    assert data["products"] == 81 and data["points"] == 81
    assert data["encoder"].startswith("offline:")


def test_search_by_photo_prints_the_product(env: dict[str, str], indexed: Path) -> None:
    result = invoke(env, "search", "--image", str(SAMPLE / "queries" / "banana.jpg"), "--json")
    assert result.exit_code == 0, result.output
    cards = json.loads(result.stdout)["cards"]
    assert cards[0]["product_id"] == "banana"


def test_search_by_text_with_filters(env: dict[str, str], indexed: Path) -> None:
    result = invoke(
        env, "search", "--text", "apple", "--category", "APPLE", "--max-price", "30", "--in-stock", "--json"
    )
    assert result.exit_code == 0, result.output
    cards = json.loads(result.stdout)["cards"]
    assert cards and all(c["category"] == "Apple" and c["price"] <= 30 and c["in_stock"] for c in cards)


def test_search_needs_image_or_text(env: dict[str, str]) -> None:
    result = invoke(env, "search")
    assert result.exit_code == 2
    assert "--image" in result.output


def test_search_missing_photo_is_a_clear_error(env: dict[str, str], indexed: Path, tmp_path: Path) -> None:
    result = invoke(env, "search", "--image", str(tmp_path / "nope.jpg"))
    assert result.exit_code == 2
    assert "nope.jpg" in result.output


def test_search_with_other_encoder_names_both(env: dict[str, str], indexed: Path, tiny_clip_dir: Path) -> None:
    other = {**env, "VISEARCH_ENCODER": "clip", "VISEARCH_CLIP_MODEL": str(tiny_clip_dir)}
    result = invoke(other, "search", "--text", "milk")
    assert result.exit_code == 2
    assert "offline:" in result.output and "clip:" in result.output


def test_bad_config_names_the_variable(env: dict[str, str]) -> None:
    result = invoke({**env, "VISEARCH_ENCODER": "resnet"}, "stats")
    assert result.exit_code == 2
    assert "VISEARCH_ENCODER" in result.output


def test_eval_reports_recall(env: dict[str, str], catalog: Path) -> None:
    result = invoke(
        env, "eval", "--catalog", str(catalog), "--queries", str(SAMPLE / "queries.csv"), "--k", "1,5", "--json"
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["queries"] == 9
    assert report["recall@5"] >= 0.5
    assert report["recall@1"] <= report["recall@5"]


def test_eval_compares_re_ranking_on_one_index_with_a_breakdown(env: dict[str, str], catalog: Path) -> None:
    """`--compare verify=on,off --by tags`: one row per configuration, the same indexing for both,
    Recall@1 per tag of the expected products, and the time per query."""
    args = ["eval", "--catalog", str(catalog), "--queries", str(SAMPLE / "queries.csv"), "--k", "1,5"]
    result = invoke(env, *args, "--compare", "verify=on,off", "--by", "tags", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["config"] for r in rows] == ["verify=on", "verify=off"]
    assert rows[0]["indexing"] == rows[1]["indexing"] and rows[0]["indexing"]["features"] == 81
    with catalog.open(encoding="utf-8", newline="") as fh:
        tags = {row["tags"].split("|")[0] for row in csv.DictReader(fh)}
    for row in rows:
        assert row["queries"] == 9 and row["ms_per_query_p50"] > 0
        by_tag = row["recall@1_by_group"]
        assert by_tag and set(by_tag) <= tags
    table = invoke(env, *args, "--compare", "rerank=on,off", "--by", "tags")
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert any(line.split()[:2] == ["encoder", "rerank=on"] for line in lines)
    assert any(line.split()[:2] == ["encoder", "rerank=off"] for line in lines)
    assert "Recall@1 by tags (queries):" in table.stdout


def test_delete_then_search_does_not_return_it(env: dict[str, str], catalog: Path, tmp_path: Path) -> None:
    own = {**env, "VISEARCH_COLLECTION": "cli-delete"}
    assert invoke(own, "index", str(catalog), "--quiet").exit_code == 0
    result = invoke(own, "delete", "banana")
    assert result.exit_code == 0 and "deleted 1 point" in result.output
    cards = json.loads(invoke(own, "search", "--image", str(SAMPLE / "queries" / "banana.jpg"), "--json").stdout)[
        "cards"
    ]
    assert "banana" not in [c["product_id"] for c in cards]


def test_demo_runs_offline_and_finds_the_milk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("VISEARCH_ENCODER", raising=False)
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "VISEARCH_ENCODER": None}
    result = CliRunner().invoke(app, ["demo", "--data-dir", str(tmp_path / "data")], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "81 images indexed" in result.output
    photo_section = result.output.split("photo search")[1].split("text search")[0]
    assert "1. Arla Standard Milk" in photo_section
    assert "1. Banana" in result.output.split("text search: 'banana'")[1]
    assert "--encoder offline" in result.output
    assert [r.getMessage() for r in caplog.records if "offline encoder" in r.getMessage()]


def test_cli_on_a_served_data_directory_says_where_the_server_is(
    tmp_path: Path, sample_collection, offline_encoder, catalog: Path
) -> None:
    """One process owns an embedded data directory: a CLI run next to `visearch serve` stops with
    the server's address and API, and changes nothing."""
    import httpx

    from tests.conftest import copy_collection
    from tests.serving import app_in_thread

    settings = copy_collection(sample_collection, tmp_path / "data")
    served_env = {
        "VISEARCH_DATA_DIR": str(settings.data_dir),
        "VISEARCH_ENCODER": "offline",
        "VISEARCH_COLLECTION": settings.collection,
    }
    with app_in_thread(settings, offline_encoder) as url:
        before = httpx.get(f"{url}/api/v1/stats").json()["points"]
        for args in (["index", str(catalog), "--quiet", "--recreate"], ["stats"]):
            result = CliRunner().invoke(app, args, env=served_env)
            assert result.exit_code == 2, result.output
            assert f"visearch serve at {url}" in result.output and f"{url}/api/v1" in result.output
            assert "Traceback" not in result.output
        assert httpx.get(f"{url}/api/v1/stats").json()["points"] == before  # --recreate did not happen
    assert not (settings.data_dir / ".visearch.owner").exists()  # the note goes with the server
    result = CliRunner().invoke(app, ["stats"], env=served_env)
    assert result.exit_code == 0, result.output
