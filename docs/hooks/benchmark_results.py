"""Puts benchmarks/RESULTS.md, the one place for measured figures, into the site as `results.md`.

The file stays beside the scripts that produce its figures (so a benchmark change and its new figures land in one
commit), and the pages link to it as `../benchmarks/RESULTS.md`, which works on GitHub; in the site those links
point at the page this hook adds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

RESULTS_SOURCE = Path(__file__).resolve().parents[2] / "benchmarks" / "RESULTS.md"
RESULTS_PAGE = "results.md"
REPO_LINK = "](../benchmarks/RESULTS.md"


def on_files(files: Files, config: MkDocsConfig, **_: Any) -> Files:
    """Add the results file to the site as if it were docs/results.md."""
    files.append(File.generated(config, RESULTS_PAGE, abs_src_path=str(RESULTS_SOURCE)))
    return files


def on_page_markdown(markdown: str, **_: Any) -> str:
    """Links written for GitHub (`../benchmarks/RESULTS.md#...`) point at the site's results page."""
    return markdown.replace(REPO_LINK, f"]({RESULTS_PAGE}")
