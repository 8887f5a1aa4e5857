"""The configuration reference, generated from the settings classes' own field descriptions.

One source for what a setting means: the `Field(description=...)` beside it in the code. MkDocs runs this file
as a hook (mkdocs.yml `hooks:`), so the site always shows the settings as the code declares them; run it as a
script to refresh the copy in docs/configuration.md that GitHub shows (`--check` only says whether it is stale).

    .venv/bin/python docs/hooks/config_reference.py          # rewrite the table in docs/configuration.md
    .venv/bin/python docs/hooks/config_reference.py --check  # exit 1 when the table is stale
"""

from __future__ import annotations

import argparse
import enum
import importlib
import re
import sys
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

#: every settings class an operator sets, in the order the reference lists them: (module:class, section title)
SETTINGS_CLASSES: tuple[tuple[str, str], ...] = (
    ("visearch.core.config:Settings", "Search engine, encoders, store and indexing"),
    ("visearch.bots.server.config:ServerSettings", "`visearch serve`: webhooks, HTTP API, Viber and WhatsApp"),
    ("visearch.bots.telegram.config:TelegramSettings", "Telegram bot"),
    ("visearch.bots.conversation.i18n:LocaleSettings", "The customer's language: every channel, the page and the API"),
)

BEGIN_MARKER = "<!-- BEGIN generated config reference: docs/hooks/config_reference.py -->"
END_MARKER = "<!-- END generated config reference -->"
REFERENCE_PAGE = "configuration.md"
DOCS_DIR = Path(__file__).resolve().parent.parent


class MissingMarkersError(Exception):
    """The page has no generated region to fill (its markers are missing)."""


class MissingDescriptionError(Exception):
    """A setting has no `Field(description=...)`: the reference would have a blank line for it."""


@dataclass(frozen=True)
class SettingRow:
    """One line of the reference: what an operator needs to set one variable."""

    env_name: str
    type_name: str
    default: str
    description: str


def settings_class(dotted: str) -> type[BaseSettings]:
    """Import `module:Class`."""
    module_name, _, class_name = dotted.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, BaseSettings)):
        raise TypeError(f"{dotted} is not a pydantic-settings class")
    return cls


def env_prefix(cls: type[BaseSettings]) -> str:
    """The prefix the class reads its variables with (VISEARCH_, VISEARCH_TELEGRAM_)."""
    return str(cls.model_config.get("env_prefix", ""))


def type_name(annotation: Any) -> str:
    """A type as an operator writes it: `int`, `path`, `secret`, or the allowed words of a Literal."""
    if annotation is type(None):
        return ""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{value}`" for value in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        parts = [type_name(arg) for arg in typing.get_args(annotation)]
        return " \\| ".join(part for part in parts if part)
    if annotation is SecretStr:
        return "secret"
    if isinstance(annotation, type) and issubclass(annotation, Path):
        return "path"
    return getattr(annotation, "__name__", str(annotation))


def bounds(field: FieldInfo) -> str:
    """The range or pattern pydantic enforces, e.g. `>= 1, <= 1024`."""
    symbols = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<", "max_length": "length <=", "pattern": "matches"}
    parts = []
    for constraint in field.metadata:
        for attribute, symbol in symbols.items():
            value = getattr(constraint, attribute, None)
            if value is not None:
                parts.append(f"{symbol} `{value}`" if attribute == "pattern" else f"{symbol} {format_value(value)}")
    return ", ".join(parts)


def format_value(value: Any) -> str:
    """A value as it would be written in the environment."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, enum.Enum):
        return str(value.value)
    return str(value)


def format_default(field: FieldInfo) -> str:
    """The default as a table cell: `unset` for None, `empty` for an empty string."""
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if value == "":
        return "empty"
    return f"`{format_value(value)}`"


def markdown_text(text: str) -> str:
    """A description as a safe table cell: pipes and angle brackets escaped, variable names as code."""
    pieces = re.split(r"(`[^`]*`)", text)
    out = []
    for piece in pieces:
        if piece.startswith("`"):
            out.append(piece)
            continue
        piece = piece.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
        out.append(re.sub(r"\b(VISEARCH_[A-Z0-9_]+(?:=[\w.-]+)?)", r"`\1`", piece))
    return "".join(out)


def description_of(cls: type[BaseSettings], name: str, field: FieldInfo) -> str:
    """The field's description; a deprecated field (an old name kept working) says so first, and its
    deprecation message may stand in for the description."""
    description = (field.description or "").strip()
    if field.deprecated:
        notice = f"**Deprecated**: {field.deprecation_message or 'kept so old configurations still start'}"
        return f"{notice}. {description}" if description else notice
    if not description:
        raise MissingDescriptionError(f"{cls.__name__}.{name} has no Field(description=...)")
    return description


def rows_of(cls: type[BaseSettings]) -> Iterator[SettingRow]:
    """One row per field of a settings class; a field without a description is an error, not a blank cell."""
    prefix = env_prefix(cls)
    for name, field in cls.model_fields.items():
        description = description_of(cls, name, field)
        limits = bounds(field)
        kind = type_name(field.annotation)
        yield SettingRow(
            env_name=f"{prefix}{name.upper()}",
            type_name=f"{kind} ({limits})" if limits else kind,
            default=format_default(field),
            description=markdown_text(description),
        )


def retired_settings() -> list[tuple[str, str]]:
    """(variable, why) of settings that were removed but are still accepted with a warning: a module's
    `RETIRED_SETTINGS` mapping (name -> why), read with the prefix of the settings class beside it."""
    retired = []
    for dotted, _ in SETTINGS_CLASSES:
        module_name = dotted.partition(":")[0]
        prefix = env_prefix(settings_class(dotted))
        for name, why in getattr(importlib.import_module(module_name), "RETIRED_SETTINGS", {}).items():
            retired.append((f"{prefix}{name.upper()}", why))
    return sorted(set(retired))


def render_reference() -> str:
    """The generated region: one table per settings class, then the retired settings."""
    lines = [BEGIN_MARKER, ""]
    for dotted, title in SETTINGS_CLASSES:
        cls = settings_class(dotted)
        lines += [f"## {title}", "", f"Read by `{dotted.replace(':', '.')}`.", ""]
        lines += ["| variable | type | default | description |", "|---|---|---|---|"]
        lines += [f"| `{r.env_name}` | {r.type_name} | {r.default} | {r.description} |" for r in rows_of(cls)]
        lines.append("")
    retired = retired_settings()
    if retired:
        lines += [
            "## Retired settings",
            "",
            "Still accepted, so an old `.env` keeps starting, but ignored, with a",
            "warning at start that says why.",
            "",
        ]
        lines += ["| variable | why it does nothing |", "|---|---|"]
        lines += [f"| `{env_name}` | {markdown_text(why)} |" for env_name, why in retired]
        lines.append("")
    lines.append(END_MARKER)
    return "\n".join(lines)


def fill_reference(page: str) -> str:
    """The page with its generated region replaced by a fresh one."""
    start, end = page.find(BEGIN_MARKER), page.find(END_MARKER)
    if start < 0 or end < start:
        raise MissingMarkersError(f"{REFERENCE_PAGE} needs the lines {BEGIN_MARKER!r} and {END_MARKER!r}")
    return page[:start] + render_reference() + page[end + len(END_MARKER) :]


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    """MkDocs hook: the configuration page gets the reference generated from the code being built."""
    if page.file.src_uri == REFERENCE_PAGE:
        return fill_reference(markdown)
    return markdown


def main(argv: list[str] | None = None) -> int:
    """Rewrite (or with --check, only compare) the reference in docs/configuration.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/configuration.md is stale")
    args = parser.parse_args(argv)
    path = DOCS_DIR / REFERENCE_PAGE
    current = path.read_text(encoding="utf-8")
    fresh = fill_reference(current)
    if args.check:
        if fresh != current:
            print(f"{path} is stale: run .venv/bin/python docs/hooks/config_reference.py", file=sys.stderr)
            return 1
        return 0
    if fresh != current:
        path.write_text(fresh, encoding="utf-8")
        print(f"rewrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
