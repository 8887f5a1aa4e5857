"""What a new shop owner meets at the command line: the collection's own encoder is used without
`--encoder`, a wrong argument is one line before any model loads, and `delete` names what it did
not find. The real CLI through typer's runner, on a copy of the bundled sample's collection."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import copy_collection
from visearch.core.config import RETIRED_SETTINGS, Settings
from visearch.indexer.cli import app


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
    cards = json.loads(result.output[result.output.index("{") :])["cards"]
    assert cards[0]["product_id"] == "banana"
    named = CliRunner().invoke(
        app, ["search", "--text", "banana", "--encoder", "clip", "--model", "/nonexistent-model"], env=env
    )
    assert named.exit_code == 2 and "Traceback" not in named.output  # asked for: no guessing


@pytest.mark.parametrize(
    "args, says",
    [
        (["--text", "milk", "--min-price", "50", "--max-price", "10"], "price_min (50.0) is above price_max (10.0)"),
        (["--image", "no-such-photo.jpg"], "cannot read no-such-photo.jpg"),
    ],
)
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


@pytest.mark.parametrize(
    "content, says",
    [
        (None, "catalog file not found"),
        ('id,title,image\nA,"never closed,a.jpg\n', "is never closed"),
    ],
)
def test_a_bad_catalog_is_reported_before_any_model_loads(
    env: dict[str, str], tmp_path: Path, content: str | None, says: str
) -> None:
    """An encoder that cannot load is named on purpose: the catalog's error must come first."""
    catalog = tmp_path / "catalog.csv"
    if content is not None:
        catalog.write_text(content, encoding="utf-8")
    unloadable = {**env, "VISEARCH_ENCODER": "clip", "VISEARCH_CLIP_MODEL": str(tmp_path / "no-such-model")}
    for command in ("index", "sync"):
        result = CliRunner().invoke(app, [command, str(catalog), "--quiet"], env=unloadable)
        assert result.exit_code == 2 and says in result.output, result.output
        assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "extra, stored_kind_named",
    [
        (
            {"VISEARCH_ENCODER": "clip", "VISEARCH_CLIP_MODEL": "no-such-clip-on-the-hub"},
            "clip:no-such-clip-on-the-hub",
        ),
        ({"VISEARCH_BACKEND": "onnx-int8"}, "conse-v1+int8"),
    ],
)
def test_an_encoder_mismatch_is_said_before_any_model_loads(
    env: dict[str, str], extra: dict[str, str], stored_kind_named: str
) -> None:
    """The collection says which encoder built it: a search with another one is refused from that alone
    (the CLIP asked for here does not even exist, so loading it first would end in another error)."""
    result = CliRunner().invoke(app, ["search", "--text", "milk"], env={**env, **extra})
    assert result.exit_code == 2, result.output
    assert "was built with encoder 'offline:" in result.output and stored_kind_named in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


SAMPLE = Path(__file__).resolve().parents[2] / "indexer" / "demo_data" / "grocery"
#: `visearch eval` on the bundled sample, before the options a case gets wrong
SAMPLE_EVAL = ["eval", "--catalog", str(SAMPLE / "catalog.csv"), "--queries", str(SAMPLE / "queries.csv")]


@pytest.mark.parametrize(
    "args, says",
    [
        (["search", "--text", "milk", "--limit", "0"], "Invalid value for '--limit'"),
        (["search", "--text", "milk", "--min-price", "abc"], "Invalid value for '--min-price'"),
        (["search", "--txt", "milk"], "No such option: --txt"),
        (["serch", "--text", "milk"], "No such command 'serch'"),
        (["search", "--text", "milk", "--collection", "no-such-collection"], "'no-such-collection' does not exist yet"),
        (["delete", "banana", "--collection", "no-such-collection"], "'no-such-collection' does not exist yet"),
        (["optimize", "--collection", "no-such-collection"], "'no-such-collection' does not exist yet"),
        (["eval", "--catalog", "no-such.csv", "--queries", str(SAMPLE / "queries.csv")], "catalog file not found"),
        ([*SAMPLE_EVAL, "--calibrate", "--unrelated", "no-such-folder"], "no-such-folder is not a folder"),
        ([*SAMPLE_EVAL, "--compare", "sharpen=on,off"], "NAME one of crops, verify, rerank"),
        ([*SAMPLE_EVAL, "--compare", "verify="], "--compare takes NAME=V1,V2"),
        ([*SAMPLE_EVAL, "--compare", "verify=on,maybe"], "VISEARCH_VERIFY='maybe'"),
        ([*SAMPLE_EVAL, "--compare", "top-k=20,0"], "VISEARCH_VERIFY_TOP_K='0'"),
        ([*SAMPLE_EVAL, "--by", "colour"], "--by takes category, brand, tags"),
        (["train", "--catalog", "no-such.csv", "--output", "model"], "catalog file not found"),
        (["serve", "--port", "99999"], "Invalid value for '--port'"),
        (["bot", "telegram", "--framework", "telethon"], "--framework must be aiogram or ptb"),
        (["bot", "viber", "--set-webhook", "https://shop.example/webhooks/viber"], "VISEARCH_VIBER_TOKEN is not set"),
        (["stats"], "VISEARCH_MIN_SCORE_TEXT: Input should be a valid number"),
    ],
)
def test_every_user_error_is_one_line_and_exit_2(
    env: dict[str, str], tmp_path: Path, args: list[str], says: str
) -> None:
    """Each mistake is named before any model loads: the encoder named here cannot load, so a command that
    reached a model would say so instead."""
    unloadable = {
        **env,
        "VISEARCH_ENCODER": "clip",
        "VISEARCH_CLIP_MODEL": str(tmp_path / "no-such-model"),
        "VISEARCH_VIBER_TOKEN": "",
        "VISEARCH_MIN_SCORE_TEXT": "abc" if args == ["stats"] else "0.2",
    }
    result = CliRunner().invoke(app, args, env=unloadable)
    assert result.exit_code == 2, result.output
    assert says in result.output and "Traceback" not in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


ROW = re.compile(r"^\s+\d+\. .* score (?P<score>\d+\.\d{3})(?:  \((?P<signals>[^)]*)\))?  \[(?P<id>[^\]]+)\]")
CUT_OFF_LINE = re.compile(r"below the cut-offs? (?P<limits>.+) not shown")


def printed_limits(text: str) -> dict[str, float]:
    """'0.095' or 'image 0.095, words 0.550' from the cut-off line, as {signal: cut-off}."""
    match = CUT_OFF_LINE.search(text)
    assert match, text
    parts = [part.split() for part in match["limits"].split(", ")]
    return {"image": float(parts[0][0])} if len(parts[0]) == 1 else {name: float(value) for name, value in parts}


def catalog_words(product_id: str) -> str:
    """Every word the sample catalog holds for a product (what a literal match is checked against)."""
    with (SAMPLE / "catalog.csv").open(encoding="utf-8") as fh:
        return next(" ".join(row.values()) for row in csv.DictReader(fh) if row["id"] == product_id).casefold()


@pytest.mark.parametrize(
    "query, settings",
    [
        (["--text", "milk"], {}),  # fused: photo and words matches, literal matches under the words cut-off
        (["--text", "arla"], {}),  # a brand: kept by naming every query word
        (["--text", "banana"], {}),
        (["--image", str(SAMPLE / "queries" / "banana.jpg")], {"VISEARCH_MIN_SCORE_IMAGE": "0.2"}),  # the similarity
        (
            [
                "--image",
                str(SAMPLE / "queries" / "banana.jpg"),
            ],  # ranked by similarity + colour boost, cut by similarity
            {"VISEARCH_MIN_SCORE_IMAGE": "0.2", "VISEARCH_COLOUR_BOOST": "0.1"},
        ),
    ],
)
def test_printed_scores_are_the_ranked_ones_and_pass_the_printed_cut_off(
    env: dict[str, str], query: list[str], settings: dict[str, str]
) -> None:
    """Rows are in the order of the score printed, and no row is below the cut-off printed with it."""
    result = CliRunner().invoke(app, ["search", *query, "--limit", "30"], env={**env, **settings})
    assert result.exit_code == 0, result.output
    rows = [match for line in result.output.splitlines() if (match := ROW.match(line))]
    assert len(rows) >= 5, result.output
    scores = [float(row["score"]) for row in rows]
    assert scores == sorted(scores, reverse=True), result.output
    limits = printed_limits(result.output)
    for row in rows:
        if row["signals"] is None:  # the score is the similarity: it is the one cut
            assert len(limits) == 1 and float(row["score"]) >= limits["image"], row.group(0)
            continue
        similarity, _, literal = row["signals"].partition(": ")
        found = {name: float(value) for name, value in (pair.split() for pair in similarity.split(", "))}
        if literal:  # under every cut-off: kept because the product names every query word
            assert literal == "names every query word" and all(found[n] < limits[n] for n in found), row.group(0)
            assert all(word in catalog_words(row["id"]) for word in query[1].casefold().split()), row.group(0)
        else:
            assert any(value >= limits[name] for name, value in found.items()), row.group(0)


def test_json_keeps_its_fields_and_adds_the_ranking_score(env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["search", "--text", "milk", "--limit", "30", "--json"], env=env)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {"cards", "cut_off", "min_score", "next_cursor"} <= set(data) and data["min_score_words"] is not None
    cards = data["cards"]
    assert {"product_id", "title", "score", "signals", "rank_score"} <= set(cards[0])
    ranks = [card["rank_score"] for card in cards]
    assert ranks == sorted(ranks, reverse=True)
    assert [card["score"] for card in cards] != sorted((card["score"] for card in cards), reverse=True)  # why: fused


def run_visearch(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """The installed console script in a fresh process: what a shop owner's terminal shows."""
    script = Path(sys.executable).with_name("visearch")
    return subprocess.run(
        [str(script), *args],
        env={**os.environ, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_library_warnings_stay_out_of_the_output_and_verbose_shows_them(
    tmp_path: Path, tiny_clip_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first ONNX export makes torch warn (legacy exporter, traced shape checks, index ops): none of it is
    printed, --verbose shows it as log lines, and a retired setting of ours is still said, in one line."""
    monkeypatch.chdir(tmp_path)
    catalog = tmp_path / "catalog.csv"
    catalog.write_text(
        "id,title,image\n" + "".join(f"{p},{p},{SAMPLE / 'images' / p}.jpg\n" for p in ("banana", "kiwi", "lime")),
        encoding="utf-8",
    )
    env = {"VISEARCH_DATA_DIR": str(tmp_path / "data"), "VISEARCH_ENCODER": "clip", "VISEARCH_COLLECTION": "warn"}
    quiet, verbose = (shutil.copytree(tiny_clip_dir, tmp_path / name / "clip") for name in ("quiet", "verbose"))
    built = CliRunner().invoke(app, ["index", str(catalog), "--quiet"], env={**env, "VISEARCH_CLIP_MODEL": str(quiet)})
    assert built.exit_code == 0, built.output
    retired = f"VISEARCH_{next(iter(RETIRED_SETTINGS)).upper()}"
    plain = run_visearch(
        "search",
        "--text",
        "banana",
        cwd=tmp_path,
        env={**env, "VISEARCH_CLIP_MODEL": str(quiet), "VISEARCH_BACKEND": "onnx", retired: "7"},
    )
    assert plain.returncode == 0, plain.stderr
    assert list((quiet / "visearch-onnx").glob("*.onnx")), "no export happened: nothing could have warned"
    assert "Warning" not in plain.stderr and "warn(" not in plain.stderr, plain.stderr
    assert [line for line in plain.stderr.splitlines() if retired in line] == [plain.stderr.strip()]
    assert plain.stderr.startswith(f"warning: {retired} is deprecated")
    shown = run_visearch(
        "-v",
        "search",
        "--text",
        "banana",
        cwd=tmp_path,
        env={**env, "VISEARCH_CLIP_MODEL": str(verbose), "VISEARCH_BACKEND": "onnx"},
    )
    assert shown.returncode == 0, shown.stderr
    assert "torch.onnx.export: TracerWarning" in shown.stderr and "warn(" not in shown.stderr, shown.stderr
