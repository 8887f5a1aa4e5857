"""Retired settings (VISEARCH_DEFAULT_LIMIT, VISEARCH_MAX_LIMIT) still start, with a warning that they do nothing."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from visearch.core.config import RETIRED_SETTINGS, Settings, load_settings


@pytest.mark.parametrize("name", sorted(RETIRED_SETTINGS))
def test_a_retired_setting_in_the_environment_warns_and_is_ignored(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"VISEARCH_{name.upper()}", "7")
    with pytest.warns(FutureWarning, match=f"VISEARCH_{name.upper()} is deprecated and ignored"):
        settings = load_settings()
    assert not hasattr(settings, name)


def test_a_retired_setting_in_the_env_file_warns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("VISEARCH_MAX_LIMIT=3\nVISEARCH_COLLECTION=shop\n", encoding="utf-8")
    with pytest.warns(FutureWarning, match="VISEARCH_MAX_LIMIT"):
        settings = Settings()
    assert settings.collection == "shop"


def test_current_settings_do_not_warn(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in RETIRED_SETTINGS:
        monkeypatch.delenv(f"VISEARCH_{name.upper()}", raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        load_settings(collection="shop")
