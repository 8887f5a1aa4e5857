"""Per shipped locale: messages translated / total, and each platform's longest rendered label
against its limit (the figures of issue 16's note; tests/bots/test_locales.py enforces the limits).

    python benchmarks/locales_report.py
"""

from __future__ import annotations

from babel.messages.pofile import read_po

from visearch.bots.conversation.answers import COMMANDS
from visearch.bots.conversation.i18n import DOMAIN, SHIPPED_LOCALES, Locales, shipped_locales
from visearch.bots.conversation.wording import Wordings
from visearch.bots.viber.messages import BUTTON_TEXT_LIMIT
from visearch.bots.whatsapp.bot import BUTTON_TITLE_LIMIT

TELEGRAM_COMMAND_LIMIT = 256
#: a product title as long as a "More like …" button shows it (the channels cut titles to 30)
TITLE = "W" * 30


def translated(locale: str) -> tuple[int, int]:
    """(translated, total) messages of a locale's .po (English: its own source, all of them)."""
    if locale == "en":
        with (SHIPPED_LOCALES / f"{DOMAIN}.pot").open("rb") as file:
            total = len([m for m in read_po(file) if m.id])
        return total, total
    with (SHIPPED_LOCALES / locale / "LC_MESSAGES" / f"{DOMAIN}.po").open("rb") as file:
        catalog = read_po(file, locale=locale)
    messages = [m for m in catalog if m.id]
    done = [m for m in messages if all(m.string if isinstance(m.string, tuple | list) else [m.string])]
    return len(done), len(messages)


def main() -> None:
    wordings = Wordings(Locales())
    print(f"{'locale':8} {'translated':>12}  {'longest WhatsApp button':32} {'Viber button':>12} {'command menu':>12}")
    for locale in shipped_locales():
        words = wordings.of(locale)
        done, total = translated(locale)
        buttons = [words.more_like_this, words.show_more, words.open_in_shop, words.open]
        longest = max(buttons, key=len)
        viber = max(len(f"<b>{b}</b>") for b in [*buttons, words.more_like(TITLE)])
        menu = max(len(words.command_description(c)) for c in COMMANDS)
        print(
            f"{locale:8} {done:>5} / {total:<5}  {longest!r:24} {len(longest):>2}/{BUTTON_TITLE_LIMIT:<3}"
            f" {viber:>5}/{BUTTON_TEXT_LIMIT:<6} {menu:>5}/{TELEGRAM_COMMAND_LIMIT:<6}"
        )


if __name__ == "__main__":
    main()
