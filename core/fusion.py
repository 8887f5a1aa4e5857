"""Fusing ranked lists from several signals (the photo side and the catalog's words) into one ranking.

A text query is matched twice: against the product *images* (the encoder's text-to-image space) and
against the product *words* (title, brand, category, tags, description, OCR text; a text-to-text
space). Their cosines live on different scales (the offline encoder's text-to-image cosine tops out
near 0.32, MiniLM text-to-text near 0.9), so they are not added raw. Two fusions, chosen with
`VISEARCH_FUSION`:

* ``weighted`` (default): ``sum_i w_i * (score_i - cut_i) / (1 - cut_i)``, the margin of each cosine
  above its own relevance cut-off, so 0 means "just relevant" and 1 "identical" on every signal.
  A strong title match ("sneakers" -> "Leather sneakers", 0.73) counts for more than a weak one
  ("shoes" -> "Cargo pants", 0.57), which ranks cannot tell apart.
* ``rrf``, reciprocal-rank fusion (Cormack et al. 2009): ``sum_i w_i / (k + rank_i)`` over the
  signals whose list holds the product (rank from 1). Only ranks count, so no scale has to be
  calibrated; `VISEARCH_FUSION_K` (60, the paper's value) flattens (larger) or sharpens (smaller) it.

Measured with benchmarks/text_queries.py (300 clothing photos, half with shop titles), mean
precision@10: rrf 0.70-0.82 and weighted 0.88-0.89 over words cut-offs 0.45-0.60.

Weights: `VISEARCH_WEIGHT_IMAGE` and `VISEARCH_WEIGHT_WORDS` (1.0 each). Only products that passed
a signal's own cut-off enter its list, so fusion never lets junk in; it only orders what is relevant.
One exception, on the words side: a product whose own words contain every word of the query
(`has_all_terms`) passes too. Embeddings see a brand like "tropicana" as sub-word pieces, and a
one-word query against a long product text scores near the cut-off (0.55 for "tropicana" against
"Item 1. TROPICANA Orange Juice"), so literal matches are kept by rule.

The literal rule is the one part of text search that reads every script the same way, whatever the
encoder (the offline encoder's text side is English-only), so words are compared after `fold`:

* lower-cased with `str.casefold` ("Straße" -> "strasse") after NFKC (full-width and ligature forms);
* accents dropped: a letter's combining marks go ("Café" -> "cafe", "Müsli" -> "musli", "ação" -> "acao",
  Arabic harakat and hamza seats: "أ" -> "ا", tatweel dropped);
* Cyrillic letters kept as they are, because there the marks make letters: "й" stays "й" (not "и"),
  "ї" stays "ї"; the one exception is "ё" -> "е", which Russian writes either way;
* no letter is ever mapped to another script: a Cyrillic "с" is not a Latin "c", so "сок" never
  matches "cok" (a word that mixes scripts matches only the same mix);
* digits of any script as ASCII digits ("٥٠٠" -> "500");
* apostrophes inside a word (', ’, ʼ, ‘, `) are one apostrophe and keep the word whole: "м’ясо" and
  "м'ясо" are the same query word. A product's words also count without the apostrophe and as their
  parts ("women's" gives "women's", "womens", "women", "s"), so "women shirt" still finds "Women's shirt".

A word is a run of letters, marks and digits (Unicode categories L*, M*, N*) with those apostrophes
inside; anything else separates words ("xr-500" is "xr" and "500" on both sides, "_milk_" is "milk").
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from visearch.core.domain import Hit, result_key

FusionMethod = Literal["rrf", "weighted"]

#: characters written as an apostrophe inside words (Ukrainian "м'ясо" is typed with any of them)
APOSTROPHES = frozenset("'\u2019\u02bc\u2018`\u00b4")
#: Unicode's Cyrillic blocks: their letters keep their marks ("й", "ї"), see `fold`
_CYRILLIC = ((0x0400, 0x052F), (0x1C80, 0x1C8F), (0x2DE0, 0x2DFF), (0xA640, 0xA69F))
#: the Cyrillic letters folded anyway (Russian writes "ё" as "е" as often as not)
_CYRILLIC_FOLDS = {"ё": "е"}
#: marks that are not letters: Arabic tatweel (a stretch of the line)
_DROP = frozenset("\u0640")
#: a word of folded ASCII text (the common case, 20x faster than the character loop)
_ASCII_WORD = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")


def fold(text: str) -> str:
    """`text` as the literal rule compares it: casefolded, accents dropped except on Cyrillic letters,
    ё -> е, digits as ASCII, every apostrophe as '. Never maps a letter to another script (module docstring)."""
    if text.isascii():  # NFKC changes nothing, casefold is lower
        return text.lower().replace("`", "'")
    out: list[str] = []
    folded: dict[str, str] = {}  # per call: a text repeats few distinct characters
    for char in unicodedata.normalize("NFC", unicodedata.normalize("NFKC", text).casefold()):
        piece = folded.get(char)
        if piece is None:
            piece = folded[char] = _fold_char(char)
        out.append(piece)
    return "".join(out)


def _fold_char(char: str) -> str:
    """One character of NFC, casefolded text as `fold` writes it."""
    if char in APOSTROPHES:  # before the letters: ʼ (U+02BC) is a modifier *letter*
        return "'"
    if any(low <= ord(char) <= high for low, high in _CYRILLIC):
        return _CYRILLIC_FOLDS.get(char, char)
    if char in _DROP:
        return ""
    if char.isdigit() and unicodedata.decimal(char, None) is not None:
        return str(unicodedata.decimal(char))
    return "".join(c for c in unicodedata.normalize("NFD", char) if not unicodedata.combining(c))


def _is_word_char(char: str) -> bool:
    return unicodedata.category(char)[0] in "LMN"


def words(text: str) -> Iterator[str]:
    """The folded words of `text`, an apostrophe between two word characters kept as "'"."""
    folded = fold(text)
    if folded.isascii():
        yield from _ASCII_WORD.findall(folded)
        return
    kinds = {char: _is_word_char(char) for char in set(folded)}  # per call: few distinct characters
    current: list[str] = []
    for i, char in enumerate(folded):
        inside = char == "'" and bool(current) and i + 1 < len(folded) and kinds[folded[i + 1]]
        if inside or kinds[char]:
            current.append(char)
        elif current:
            yield "".join(current)
            current = []
    if current:
        yield "".join(current)


def product_words(text: str) -> set[str]:
    """A product's words for the literal rule: each word, and one with an apostrophe also without it
    and as its parts, so "womens" and "women" find "Women's" and "мясо" finds "м'ясо"."""
    found: set[str] = set()
    for word in words(text):
        found.add(word)
        if "'" in word:
            found.add(word.replace("'", ""))
            found.update(part for part in word.split("'") if part)
    return found


#: words too common to require in a literal match ("a dress" needs only "dress"): English and the
#: shipped languages (uk, ru, es, de, pt, ar), only articles, conjunctions and prepositions, folded
STOP_WORDS = frozenset(
    fold(word)
    for word in (
        # en
        *("a", "an", "the", "and", "or", "of", "for", "with", "in", "on", "to", "by", "at", "from"),
        # uk
        *("і", "й", "та", "в", "у", "з", "із", "зі", "до", "для", "на", "по", "від"),
        # ru
        *("и", "в", "во", "с", "со", "для", "на", "из", "по", "от", "к", "до"),
        # es
        *("el", "la", "los", "las", "un", "una", "y", "de", "del", "con", "para", "en", "por"),
        # de
        *("der", "die", "das", "den", "dem", "ein", "eine", "und", "mit", "für", "von", "im", "zum", "zur"),
        # pt
        *("o", "os", "as", "um", "uma", "e", "da", "do", "das", "dos", "com", "em", "no", "na", "para"),
        # ar (standalone words; prefixes such as و and ال stay part of their word)
        *("و", "في", "من", "مع", "على", "إلى", "عن"),
    )
)
#: payload fields whose words count for a literal match (the same fields the words vector embeds)
WORD_FIELDS = ("title", "brand", "category", "tags", "ocr_text", "description")


@dataclass(frozen=True, slots=True)
class Signal:
    """One ranked list of products (best first, one hit per product) with its weight and cut-off."""

    name: str
    hits: Sequence[Hit]
    weight: float = 1.0
    cut_off: float = 0.0
    #: products (result keys) this signal holds by rule, not by score: the literal words matches
    literal: frozenset[str] = frozenset()


def query_terms(text: str) -> frozenset[str]:
    """The words of a query that a literal match must find (folded, see `fold`; stop words dropped)."""
    return frozenset(word for word in words(text) if word not in STOP_WORDS)


def has_all_terms(terms: frozenset[str], payload: dict[str, Any]) -> bool:
    """True when the product's own words contain every query term: brand names and model numbers
    ("tropicana", "xr-500") match literally even where the embedding splits them into pieces."""
    if not terms:
        return False
    found: set[str] = set()
    for field in WORD_FIELDS:
        value = payload.get(field)
        text = " ".join(map(str, value)) if isinstance(value, list) else str(value or "")
        found.update(product_words(text))
    return terms <= found


def _product(hit: Hit) -> str:
    return result_key(hit.payload, hit.point_id)


#: the least a literal words match adds in the weighted fusion, as a share of a perfect match: a title
#: holding every query word outranks titles the embedding only finds close ("сукня" vs "Сукня міді")
LITERAL_GAIN = 0.5


def fuse(signals: Sequence[Signal], method: FusionMethod = "rrf", k: float = 60.0) -> list[Hit]:
    """One hit per product, best fused score first.

    The hit kept for a product is the one from the first signal that found it (its photo is the
    card's), with `signals` holding every signal's cosine for it; its `score` stays that cosine and
    `rank_score` is the fused value it is ordered by. Ties keep the order of the first signal, then the next.
    """
    fused: dict[str, float] = {}
    chosen: dict[str, Hit] = {}
    cosines: dict[str, dict[str, float]] = {}
    first_seen: dict[str, tuple[int, int]] = {}
    for s_index, signal in enumerate(signals):
        for rank, hit in enumerate(signal.hits, start=1):
            product = _product(hit)
            if method == "rrf":
                gain = signal.weight / (k + rank)
            else:
                gain = signal.weight * max(0.0, hit.score - signal.cut_off) / max(1e-6, 1.0 - signal.cut_off)
                if product in signal.literal:  # every query word is in its text: never below half a perfect match
                    gain = max(gain, signal.weight * LITERAL_GAIN)
            fused[product] = fused.get(product, 0.0) + gain
            cosines.setdefault(product, {})[signal.name] = hit.score
            if product not in chosen:
                chosen[product] = hit
                first_seen[product] = (s_index, rank)
    order = sorted(fused, key=lambda p: (-fused[p], first_seen[p]))
    return [
        chosen[p].model_copy(update={"signals": {**chosen[p].signals, **cosines[p]}, "rank_score": fused[p]})
        for p in order
    ]
