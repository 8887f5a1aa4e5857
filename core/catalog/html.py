"""Shop descriptions arrive as HTML (feeds, product pages): the words a customer reads, as plain text."""

from __future__ import annotations

from html.parser import HTMLParser

#: tags that separate words (a `<br>` or a new paragraph is a space, not nothing)
BREAK_TAGS = frozenset(
    {"br", "p", "div", "li", "ul", "ol", "tr", "td", "th", "table", "h1", "h2", "h3", "h4", "h5", "h6", "hr"}
)
#: tags whose content no customer reads
HIDDEN_TAGS = frozenset({"script", "style"})


def html_to_text(fragment: str) -> str:
    """Tags dropped, entities unescaped, script and style left out, whitespace collapsed to single spaces."""
    if "<" not in fragment and "&" not in fragment:
        return " ".join(fragment.split())
    parser = _TextOnly()
    parser.feed(fragment)
    parser.close()
    return " ".join("".join(parser.parts).split())


class _TextOnly(HTMLParser):
    """Collects the text outside tags; break tags become spaces, hidden tags are dropped with their content."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in HIDDEN_TAGS:
            self._hidden += 1
        elif tag in BREAK_TAGS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in HIDDEN_TAGS:
            self._hidden = max(0, self._hidden - 1)
        elif tag in BREAK_TAGS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)
