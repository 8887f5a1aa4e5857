"""The docs stay true to the code: every setting described and in the generated reference, the site builds
strictly (no broken link or anchor, no page outside the nav), and the README and architecture name only things
that exist."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import typer

ROOT = Path(__file__).resolve().parent.parent
SOURCE_PACKAGES = ("core", "bots", "indexer")


def load_hook(name: str) -> ModuleType:
    """A hook file from docs/hooks/ (not a package: MkDocs loads it by path, so do we)."""
    path = ROOT / "docs" / "hooks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"docs_hook_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def reference() -> ModuleType:
    return load_hook("config_reference")


def settings_classes_in_source() -> set[str]:
    """`module:Class` of every class under core/, bots/, indexer/ that subclasses BaseSettings."""
    found = set()
    for package in SOURCE_PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef) and any(
                    getattr(base, "id", getattr(base, "attr", None)) == "BaseSettings" for base in node.bases
                ):
                    module = ".".join(("visearch", *path.relative_to(ROOT).with_suffix("").parts))
                    found.add(f"{module}:{node.name}")
    return found


def test_every_settings_class_is_in_the_reference(reference: ModuleType) -> None:
    listed = {dotted for dotted, _ in reference.SETTINGS_CLASSES}
    in_source = settings_classes_in_source()
    assert len(in_source) >= 3
    assert in_source <= listed, f"add to SETTINGS_CLASSES in docs/hooks/config_reference.py: {in_source - listed}"


def test_every_setting_has_a_description(reference: ModuleType) -> None:
    missing = []
    for dotted, _ in reference.SETTINGS_CLASSES:
        cls = reference.settings_class(dotted)
        for name, field in cls.model_fields.items():
            try:
                reference.description_of(cls, name, field)
            except reference.MissingDescriptionError:
                missing.append(f"{dotted}.{name}")
    assert not missing, f"give these settings a Field(description=...): {missing}"


def test_generated_reference_lists_every_setting_once(reference: ModuleType) -> None:
    rendered = reference.render_reference()
    for dotted, _ in reference.SETTINGS_CLASSES:
        cls = reference.settings_class(dotted)
        prefix = reference.env_prefix(cls)
        for name, field in cls.model_fields.items():
            row = re.findall(rf"^\| `{prefix}{name.upper()}` \|.*\|$", rendered, flags=re.MULTILINE)
            assert len(row) == 1, f"{prefix}{name.upper()}: {len(row)} rows"
            assert reference.markdown_text(reference.description_of(cls, name, field)) in row[0]


def test_retired_settings_are_listed_as_retired(reference: ModuleType) -> None:
    from visearch.core.config import RETIRED_SETTINGS

    rendered = reference.render_reference()
    retired_part = rendered[rendered.index("## Retired settings") :]
    for name in RETIRED_SETTINGS:
        assert f"| `VISEARCH_{name.upper()}` |" in retired_part


def test_reference_shows_type_default_and_bounds(reference: ModuleType) -> None:
    rendered = reference.render_reference()
    assert (
        "| `VISEARCH_BATCH_SIZE` | int (>= 1, <= 1024) | `32` | images per embedding batch when indexing |" in rendered
    )
    assert "| `VISEARCH_ENCODER` | `clip` \\| `offline` \\| `auto` | `clip` |" in rendered
    assert "| `VISEARCH_TELEGRAM_TOKEN` | secret | unset |" in rendered
    assert "| `VISEARCH_API_FETCH_ALLOW` | str | empty |" in rendered


def test_committed_configuration_page_is_current(reference: ModuleType) -> None:
    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert reference.fill_reference(page) == page, (
        "docs/configuration.md is stale: run .venv/bin/python docs/hooks/config_reference.py"
    )


def test_a_setting_without_description_stops_the_reference(reference: ModuleType) -> None:
    from pydantic_settings import BaseSettings

    class Undocumented(BaseSettings):
        knob: int = 3

    with pytest.raises(reference.MissingDescriptionError, match=r"Undocumented\.knob"):
        list(reference.rows_of(Undocumented))


def test_a_deprecated_setting_says_so(reference: ModuleType) -> None:
    from pydantic import Field
    from pydantic_settings import BaseSettings

    class Renamed(BaseSettings):
        old_knob: int = Field(3, deprecated="use VISEARCH_NEW_KNOB")
        described: int = Field(3, deprecated="use VISEARCH_OTHER", description="what it did")

    rows = {row.env_name: row.description for row in reference.rows_of(Renamed)}
    assert rows == {
        "OLD_KNOB": "**Deprecated**: use `VISEARCH_NEW_KNOB`",
        "DESCRIBED": "**Deprecated**: use `VISEARCH_OTHER`. what it did",
    }


def test_site_builds_strictly(tmp_path: Path) -> None:
    site = tmp_path / "site"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(ROOT / "mkdocs.yml"),
            "--site-dir",
            str(site),
        ],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    configuration = (site / "configuration" / "index.html").read_text(encoding="utf-8")
    assert "VISEARCH_TELEGRAM_WEBHOOK_SECRET" in configuration and "VISEARCH_MAX_CONCURRENT_DECODES" in configuration
    results = (site / "results" / "index.html").read_text(encoding="utf-8")
    assert "Search latency: embedded engine vs qdrant-client local mode" in results
    assert not list(site.rglob("hooks")), "the hook files must not be published"


def relative_links(markdown: str) -> list[str]:
    """Link targets that are files in the repository (not URLs, not in-page anchors)."""
    targets = re.findall(r"\]\(([^)\s]+)\)", markdown)
    return [t.split("#")[0] for t in targets if not re.match(r"[a-z]+:", t) and not t.startswith("#")]


def test_readme_links_exist() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    links = relative_links(readme)
    assert links
    assert [link for link in links if not (ROOT / link).exists()] == []


def subcommands(command: object) -> dict[str, object]:
    """The commands of a CLI group by name (typer's groups keep them in `.commands`); empty for a command."""
    found = getattr(command, "commands", {})
    assert isinstance(found, dict)
    return found


def test_readme_names_real_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for target in re.findall(r"\bmake (\w+)", readme):
        assert re.search(rf"^{target}:", makefile, flags=re.MULTILINE), f"make {target}"
    from visearch.indexer.cli import app

    commands = subcommands(typer.main.get_command(app))
    cited = re.findall(r"\bvisearch (\w+)(?: (\w+))?", readme)
    assert len(cited) >= 5
    for command, sub in cited:
        assert command in commands, f"visearch {command}"
        if subcommands(commands[command]):
            assert sub in subcommands(commands[command]), f"visearch {command} {sub}"


def test_readme_import_examples_import() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    imports = re.findall(r"^from (visearch\.[\w.]+) import (\w+)$", readme, flags=re.MULTILINE)
    assert len(imports) >= 2
    for module, name in imports:
        assert hasattr(importlib.import_module(module), name), f"from {module} import {name}"


def test_readme_is_short() -> None:
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 200


def test_architecture_names_existing_paths() -> None:
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    paths = set(re.findall(r"`((?:core|bots|indexer|tests|benchmarks|deploy)/[\w./-]*)`", page))
    assert len(paths) > 20
    assert sorted(p for p in paths if not (ROOT / p).exists()) == []
    packages = {
        p.parent.relative_to(ROOT).as_posix() for pkg in SOURCE_PACKAGES for p in (ROOT / pkg).rglob("__init__.py")
    }
    unmapped = sorted(pkg for pkg in packages if f"`{pkg}/`" not in page and pkg not in SOURCE_PACKAGES)
    assert unmapped == [], f"docs/architecture.md has no line for these packages: {unmapped}"
