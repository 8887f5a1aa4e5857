"""The wheel holds what an installed visearch needs: every package, the type markers and the package data.

The folders core/, bots/ and indexer/ install as visearch.core, visearch.bots and visearch.indexer
(pyproject's `[tool.setuptools]` maps them), so two mistakes pass every other test in a checkout and
break only an installed wheel: a package folder missing from the `packages` list, and an import of
the bare top-level names `core`, `bots` or `indexer` (which a checkout on sys.path still resolves).
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: source folder -> the package it installs as
PACKAGE_DIRS = {"core": "visearch.core", "bots": "visearch.bots", "indexer": "visearch.indexer"}
#: folders whose Python files must never import the bare names
SOURCE_DIRS = ("core", "bots", "indexer", "tests", "benchmarks")
BARE_NAMES = frozenset(PACKAGE_DIRS)


def package_folders() -> dict[str, Path]:
    """Every folder with an `__init__.py` under the source folders, by the package name it installs as."""
    found: dict[str, Path] = {}
    for folder, package in PACKAGE_DIRS.items():
        for init in sorted((ROOT / folder).rglob("__init__.py")):
            relative = init.parent.relative_to(ROOT / folder)
            found[".".join([package, *relative.parts])] = init.parent
    return found


def python_files(folder: str) -> list[Path]:
    return [p for p in sorted((ROOT / folder).rglob("*.py")) if "__pycache__" not in p.parts]


def bare_imports(path: Path, root: Path = ROOT) -> list[str]:
    """`import core...` / `from bots... import` lines of one file, as 'file:line: module'."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        else:
            continue
        found += [f"{path.relative_to(root)}:{node.lineno}: {m}" for m in modules if m.split(".")[0] in BARE_NAMES]
    return found


def test_every_package_folder_is_listed_in_pyproject() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"])
    folders = package_folders()
    assert "visearch.core.store" in folders  # the walk sees subpackages
    missing = sorted(set(folders) - listed)
    assert not missing, f"package folders missing from [tool.setuptools] packages in pyproject.toml: {missing}"
    assert not sorted(listed - set(folders)), "pyproject lists packages that have no folder with an __init__.py"


def test_no_source_file_imports_the_bare_folder_names() -> None:
    files = [p for folder in SOURCE_DIRS for p in python_files(folder)]
    assert len(files) > 50
    offenders = [line for path in files for line in bare_imports(path)]
    assert not offenders, "import visearch.core/bots/indexer, not the bare folder names:\n" + "\n".join(offenders)


def test_the_bare_name_check_catches_both_import_forms(tmp_path: Path) -> None:
    sample = tmp_path / "probe.py"
    sample.write_text(
        "import core.config\nfrom bots.http import x\nfrom visearch.core import y\nfrom . import z\n", encoding="utf-8"
    )
    assert [line.split(": ")[1] for line in bare_imports(sample, tmp_path)] == ["core.config", "bots.http"]


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The file names inside a wheel built (setuptools' PEP 517 backend, no isolation) from a copy of the tree."""
    tree = tmp_path_factory.mktemp("tree")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in PACKAGE_DIRS:
        shutil.copytree(ROOT / folder, tree / folder, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, tree / name)
    dist = tree / "dist"
    build = f"from setuptools import build_meta; print(build_meta.build_wheel({str(dist)!r}))"
    done = subprocess.run([sys.executable, "-c", build], cwd=tree, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def test_the_wheel_holds_every_module_and_the_type_markers(wheel_names: set[str]) -> None:
    for folder in PACKAGE_DIRS:
        expected = {f"visearch/{p.relative_to(ROOT).as_posix()}" for p in python_files(folder)}
        assert not sorted(expected - wheel_names), f"modules of {folder}/ missing from the wheel"
        assert f"visearch/{folder}/py.typed" in wheel_names
    assert "visearch/indexer/cli.py" in wheel_names
    assert "visearch/bots/telegram/__init__.py" in wheel_names
    assert not any(name.startswith(("core/", "bots/", "indexer/", "tests/")) for name in wheel_names)


def test_the_wheel_holds_the_package_data(wheel_names: set[str]) -> None:
    assert "visearch/core/encoders/imagenet_classes.txt" in wheel_names
    assert "visearch/bots/web/index.html" in wheel_names
    static = {
        f"visearch/{p.relative_to(ROOT).as_posix()}"
        for p in (ROOT / "bots" / "web" / "static").glob("*")
        if p.is_file()
    }
    assert static <= wheel_names
    demo = "visearch/indexer/demo_data/grocery/"
    for name in ("catalog.csv", "queries.csv", "LICENSE", "README.md"):
        assert demo + name in wheel_names
    images = {p.name for p in (ROOT / "indexer" / "demo_data" / "grocery" / "images").glob("*.jpg")}
    assert images and {f"{demo}images/{name}" for name in images} <= wheel_names
    queries = {p.name for p in (ROOT / "indexer" / "demo_data" / "grocery" / "queries").glob("*.jpg")}
    assert {f"{demo}queries/{name}" for name in queries} <= wheel_names


PUBLIC_SURFACE = """
import importlib, sys
import visearch.core.domain
assert "visearch.core.search" not in sys.modules, "importing a core module pulled in the whole engine"
for package in ("visearch.core", "visearch.bots.telegram", "visearch.bots.server"):
    module = importlib.import_module(package)
    assert module.__all__, package
    for name in module.__all__:
        assert getattr(module, name) is not None, (package, name)
"""

AIOGRAM_ONLY = """
import sys
from visearch.bots.telegram import create_router
assert callable(create_router)
assert "telegram" not in sys.modules, "the aiogram router imported python-telegram-bot"
"""


@pytest.mark.parametrize("script", [PUBLIC_SURFACE, AIOGRAM_ONLY], ids=["every-public-name", "aiogram-alone"])
def test_the_public_import_paths_work(script: str) -> None:
    """What the README tells a shop to import resolves, and a shop on aiogram never loads the other framework."""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
