"""Text queries on a clothing catalog: precision@10 of words like "shoes", "a dress", "a hat".

The catalog is built from `../shared/datasets/clothing` (real photos labelled T-Shirt, Shoes,
Dress...): one product per photo. Each query is a short phrase a customer types; a result counts
when its photo carries the query's label. Two catalogs, three ways of answering, in one run:

* catalog "neutral titles": every title is "Item N", so only the photos can match the words;
* catalog "half titled": half of each label's products get a shop-like title drawn from a few per
  label ("Ankle boots", "Canvas trainers", "Parka", "Crew-neck tee"...: often *not* the query's
  word), the other half stay "Item N";
* answered by the photos only (`VISEARCH_WEIGHT_WORDS=0`: the "before" figure), or by photos and
  words fused (the default), or by the words alone (`VISEARCH_WEIGHT_IMAGE=0`).

The photo side has no relevance cut-off here (the whole ranking is measured, as in the "before"
figure); the words side keeps its own cut-off (`min_score_words`), as it runs in production.

Other languages (`--languages en,uk,es`, issue 16): the "half titled" measurement again per language,
the same products carrying the same titles translated (`TITLES`), the placeholder translated too
("Товар N", "Artículo N"), and the customer's queries in that language (`LANGUAGE_QUERIES`). The
offline encoder's text side (MiniLM) is English-only, so there the words side is mostly the literal
words rule (`core.fusion.has_all_terms`, no stemming: "pantalones" does not find "Pantalón chino");
the per-query table says how many of a label's shop titles hold every query word, and which miss.
`--random-multilingual` repeats it with a tiny *random* CLIP and a tiny *random* BERT text model given
as `VISEARCH_CLIP_TEXT_MODEL` (both built here, nothing downloaded): it shows the multilingual path
runs end to end; its numbers mean nothing about quality.

    python benchmarks/text_queries.py               # up to 60 photos per label (about 550 photos)
    python benchmarks/text_queries.py --per-label 20 --json out.json
    python benchmarks/text_queries.py --per-label 30 --languages en,uk,es --random-multilingual
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TypedDict

from _common import REPO_ROOT, dump_json, machine_info, print_machine, table

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from visearch.core.config import load_settings
from visearch.core.domain import Query
from visearch.core.encoders.base import Encoder
from visearch.core.ingest import index_catalog
from visearch.core.search import SearchService
from visearch.core.store.factory import open_store
from visearch.indexer.progress import TqdmProgress

DATASET = REPO_ROOT.parent / "shared" / "datasets" / "clothing"
QUERIES = {
    "shoes": "Shoes",
    "a dress": "Dress",
    "a hat": "Hat",
    "t-shirt": "T-Shirt",
    "pants": "Pants",
    "shorts": "Shorts",
    "a skirt": "Skirt",
    "a jacket": "Outwear",
    "a shirt": "Shirt",
    "a hoodie": "Hoodie",
}
#: titles a shop might give (several avoid the query's own word on purpose)
SHOP_TITLES = {
    "Shoes": ["Leather sneakers", "Ankle boots", "Canvas trainers", "Running shoes"],
    "Dress": ["Floral midi dress", "Evening gown", "Summer sundress", "Wrap dress"],
    "Hat": ["Baseball cap", "Wool beanie", "Straw sun hat", "Bucket hat"],
    "T-Shirt": ["Crew-neck tee", "Graphic T-shirt", "Cotton tee", "V-neck t-shirt"],
    "Pants": ["Chino trousers", "Slim jeans", "Cargo pants", "Joggers"],
    "Shorts": ["Denim shorts", "Running shorts", "Bermuda shorts", "Swim trunks"],
    "Skirt": ["Pleated skirt", "Denim mini skirt", "A-line midi skirt", "Tulle skirt"],
    "Outwear": ["Denim jacket", "Puffer coat", "Parka", "Rain jacket"],
    "Shirt": ["Oxford shirt", "Flannel shirt", "Linen button-down", "Poplin shirt"],
    "Hoodie": ["Zip hoodie", "Hooded sweatshirt", "Pullover hoodie", "Fleece hoodie"],
}
#: the same titles as a Ukrainian and a Spanish shop would write them, index for index (so the same
#: product gets the same title in every language); as in English several avoid the query's word
TITLES = {
    "en": SHOP_TITLES,
    "uk": {
        "Shoes": ["Шкіряні кеди", "Ботильйони", "Текстильні кросівки", "Взуття для бігу"],
        "Dress": ["Сукня міді з квітами", "Вечірнє плаття", "Літній сарафан", "Сукня на запах"],
        "Hat": ["Бейсболка", "Вовняна шапка", "Солом'яний капелюх", "Панама"],
        "T-Shirt": ["Футболка з круглим вирізом", "Футболка з принтом", "Бавовняна футболка", "Футболка з V-вирізом"],
        "Pants": ["Штани чінос", "Джинси слім", "Штани карго", "Джогери"],
        "Shorts": ["Джинсові шорти", "Шорти для бігу", "Шорти-бермуди", "Плавки"],
        "Skirt": ["Плісована спідниця", "Джинсова міні-спідниця", "Спідниця міді А-силуету", "Фатинова спідниця"],
        "Outwear": ["Джинсова куртка", "Пуховик", "Парка", "Куртка-дощовик"],
        "Shirt": ["Сорочка оксфорд", "Фланелева сорочка", "Лляна сорочка на ґудзиках", "Поплінова сорочка"],
        "Hoodie": ["Худі на блискавці", "Толстовка з капюшоном", "Худі оверсайз", "Флісове худі"],
    },
    "es": {
        "Shoes": ["Zapatillas de piel", "Botines", "Zapatillas de lona", "Zapatos para correr"],
        "Dress": ["Vestido midi de flores", "Traje de noche", "Solero de verano", "Vestido cruzado"],
        "Hat": ["Gorra de béisbol", "Gorro de lana", "Sombrero de paja", "Sombrero de pescador"],
        "T-Shirt": ["Camiseta de cuello redondo", "Camiseta estampada", "Camiseta de algodón", "Camiseta de pico"],
        "Pants": ["Pantalón chino", "Vaqueros slim", "Pantalón cargo", "Joggers"],
        "Shorts": ["Pantalón corto vaquero", "Pantalón corto de running", "Bermudas", "Bañador"],
        "Skirt": ["Falda plisada", "Minifalda vaquera", "Falda midi evasé", "Falda de tul"],
        "Outwear": ["Chaqueta vaquera", "Abrigo acolchado", "Parka", "Chaqueta impermeable"],
        "Shirt": ["Camisa Oxford", "Camisa de franela", "Camisa de lino", "Camisa de popelín"],
        "Hoodie": ["Sudadera con cremallera", "Sudadera con capucha", "Sudadera canguro", "Sudadera polar"],
    },
}
#: the titles of the products without a shop title
PLACEHOLDER = {"en": "Item {n}", "uk": "Товар {n}", "es": "Artículo {n}"}
#: what a customer types, per language (query -> label), in the order of QUERIES
LANGUAGE_QUERIES = {
    "en": QUERIES,
    "uk": dict(
        zip(
            ["взуття", "сукня", "капелюх", "футболка", "штани", "шорти", "спідниця", "куртка", "сорочка", "худі"],
            QUERIES.values(),
            strict=True,
        )
    ),
    "es": dict(
        zip(
            [
                "zapatos",
                "un vestido",
                "un sombrero",
                "camiseta",
                "pantalones",
                "pantalones cortos",
                "una falda",
                "una chaqueta",
                "una camisa",
                "una sudadera",
            ],
            QUERIES.values(),
            strict=True,
        )
    ),
}
RANDOM_NOTE = "random weights: the path runs, the numbers mean nothing"
MODES = {
    "photos only (before)": {"weight_words": 0.0},
    "photos + words (fused)": {},
    "words only": {"weight_image": 0.0},
}


def build_catalog(folder: Path, per_label: int, titled: bool, language: str = "en") -> dict[str, str]:
    """A CSV catalog of up to `per_label` photos per queried label, titles in `language`; returns
    product id -> label. Every language picks the same photos and gives them the same title (translated)."""
    wanted = set(QUERIES.values())
    counts: dict[str, int] = {}
    labels: dict[str, str] = {}
    rows = []
    with (DATASET / "images.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            label = row["label"]
            if label not in wanted or counts.get(label, 0) >= per_label:
                continue
            photo = DATASET / "images" / f"{row['image']}.jpg"
            if not photo.is_file():
                continue
            n = counts[label] = counts.get(label, 0) + 1
            product_id = f"item-{len(rows) + 1}"
            labels[product_id] = label
            title = PLACEHOLDER[language].format(n=len(rows) + 1)
            if titled and n % 2 == 0:  # every other product of each label gets a shop title
                options = TITLES[language][label]
                title = options[(n // 2) % len(options)]
            rows.append({"id": product_id, "title": title, "image": str(photo)})
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "catalog.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["id", "title", "image"])
        writer.writeheader()
        writer.writerows(rows)
    return labels


async def measure(
    folder: Path,
    labels: dict[str, str],
    encoder: Encoder,
    queries: dict[str, str] | None = None,
    encoder_name: str = "offline",
) -> dict[str, dict[str, float]]:
    """Precision@10 per query (`queries`, default QUERIES) in every mode, on one collection indexed once."""
    queries = QUERIES if queries is None else queries
    base = load_settings(data_dir=folder / "data", encoder=encoder_name, collection="clothing", min_score_text=0.0)
    store = open_store(base)
    out: dict[str, dict[str, float]] = {}
    try:
        with TqdmProgress() as progress:
            summary = await index_catalog(folder / "catalog.csv", encoder, store, base, progress=progress)
        if summary.failed:
            print(f"{summary.failed} photos failed to index", file=sys.stderr)
        for mode, overrides in MODES.items():
            service = SearchService(encoder, store, base.model_copy(update=overrides))
            precision = {}
            for text, label in queries.items():
                cards = (await service.search(Query(text=text, limit=10))).cards
                precision[text] = sum(labels.get(c.product_id) == label for c in cards) / 10
            out[mode] = precision
    finally:
        await store.close()
    return out


class LiteralMatch(TypedDict):
    """How the literal words rule sees one query on one catalog (`literal_report`)."""

    terms: list[str]
    titled: int
    literal: int
    other_labels_literal: int
    missed: dict[str, str]


def _shared_prefix(a: str, b: str) -> int:
    """Letters two words share from their start ("pantalon", "pantalones": 8)."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def literal_report(folder: Path, labels: dict[str, str], queries: dict[str, str]) -> dict[str, LiteralMatch]:
    """Per query: its literal terms, how many of its label's shop-titled products hold them all
    (`has_all_terms`, the rule the words side keeps regardless of the cosine), how many products of
    *other* labels do, and each missed title with the title word nearest a query term (inflection,
    compound)."""
    from visearch.core.fusion import has_all_terms, query_terms, words

    with (folder / "catalog.csv").open(encoding="utf-8") as fh:
        titles = {row["id"]: row["title"] for row in csv.DictReader(fh)}
    out: dict[str, LiteralMatch] = {}
    for text, label in queries.items():
        terms = query_terms(text)
        shop = [t for pid, t in titles.items() if labels[pid] == label and not t.split()[-1].isdigit()]
        found = [t for t in shop if has_all_terms(terms, {"title": t})]
        wrong = sum(labels[pid] != label and has_all_terms(terms, {"title": t}) for pid, t in titles.items())
        missed: dict[str, str] = {}
        for title in dict.fromkeys(t for t in shop if t not in found):
            title_words = set(words(title))
            near = [
                f"{w}≠{term}"
                for term in sorted(terms - title_words)
                for w in sorted(title_words)
                if min(len(w), len(term)) >= 3 and (term in w or w in term or _shared_prefix(w, term) >= 4)
            ]
            missed[title] = ", ".join(near)
        out[text] = {
            "terms": sorted(terms),
            "titled": len(shop),
            "literal": len(found),
            "other_labels_literal": wrong,
            "missed": missed,
        }
    return out


def build_random_multilingual(folder: Path) -> tuple[Encoder, str]:
    """A tiny random CLIP (benchmarks/clip_builder.py) with a tiny random BERT + mean pooling + Dense text
    model (the layout of clip-ViT-B-32-multilingual-v1) given as VISEARCH_CLIP_TEXT_MODEL, loaded the
    way `visearch` loads it (settings -> load_encoder). Nothing is downloaded. Random weights."""
    import torch
    from clip_builder import SIZES, build_clip_dir, words_of
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Pooling, Transformer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from visearch.core.encoders.factory import load_encoder

    texts = [t for by_label in TITLES.values() for options in by_label.values() for t in options]
    texts += [q for queries in LANGUAGE_QUERIES.values() for q in queries]
    clip_dir = build_clip_dir(folder / "tiny-clip", words_of(texts), size="tiny")
    dim = int(SIZES["tiny"]["projection_dim"])
    source = folder / "tiny-multilingual-transformer"
    source.mkdir(parents=True, exist_ok=True)
    letters = sorted(
        {c for t in texts for c in t.lower() if c.isalpha()} | set("abcdefghijklmnopqrstuvwxyz0123456789'")
    )
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *letters, *(f"##{c}" for c in letters)]
    (source / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(str(source / "vocab.txt"), do_lower_case=True, strip_accents=False)
    torch.manual_seed(1)
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_attention_heads=2, num_hidden_layers=2
    )
    BertModel(config).eval().save_pretrained(source)
    tokenizer.save_pretrained(source)
    word = Transformer(str(source), max_seq_length=128)
    pool = Pooling(word.get_embedding_dimension(), pooling_mode="mean")
    dense = Dense(pool.get_embedding_dimension(), dim, activation_function=torch.nn.Tanh())
    text_dir = folder / "tiny-multilingual"
    SentenceTransformer(modules=[word, pool, dense], device="cpu").save(str(text_dir))
    os.environ["VISEARCH_CLIP_TEXT_MODEL"] = str(text_dir)
    try:
        encoder = load_encoder(load_settings(encoder="clip", clip_model=str(clip_dir), data_dir=folder / "unused"))
    finally:
        del os.environ["VISEARCH_CLIP_TEXT_MODEL"]
    return encoder, "clip"


def mean(values: dict[str, float]) -> float:
    return sum(values.values()) / len(values)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-label", type=int, default=60)
    ap.add_argument("--quick", action="store_true", help="15 photos per label")
    ap.add_argument(
        "--languages",
        default="en",
        help="comma-separated, of " + ",".join(TITLES) + ": the half-titled catalog per language (default en: "
        "the English figures only, as before)",
    )
    ap.add_argument(
        "--random-multilingual",
        action="store_true",
        help="also run every language with a tiny random CLIP + random multilingual text model (the numbers mean nothing)",
    )
    ap.add_argument("--json", nargs="?", const="-", default=None)
    args = ap.parse_args(argv)
    languages = [lang.strip() for lang in args.languages.split(",") if lang.strip()]
    unknown = [lang for lang in languages if lang not in TITLES]
    if unknown:
        ap.error(f"unknown language(s) {unknown}: choose from {','.join(TITLES)}")
    from visearch.core.encoders.offline import OfflineEncoder

    per_label = 15 if args.quick else args.per_label
    encoder = OfflineEncoder()
    folder = Path(tempfile.mkdtemp(prefix="visearch-text-bench-"))
    results: dict[str, dict[str, dict[str, float]]] = {}
    by_language: dict[str, dict[str, dict[str, dict[str, float]]]] = {}  # encoder run -> language -> mode
    literal: dict[str, dict[str, LiteralMatch]] = {}
    random_id = None
    try:
        for catalog, titled in (("neutral titles", False), ("half titled", True)):
            labels = build_catalog(folder / catalog.replace(" ", "-"), per_label, titled)
            results[catalog] = asyncio.run(measure(folder / catalog.replace(" ", "-"), labels, encoder))
        literal["en"] = literal_report(folder / "half-titled", labels, QUERIES)
        runs: list[tuple[str, Encoder, str]] = [("offline", encoder, "offline")]
        if args.random_multilingual:
            random_encoder, name = build_random_multilingual(folder / "models")
            random_id = random_encoder.model_id
            runs.append((RANDOM_NOTE, random_encoder, name))
        for run, enc, name in runs:
            by_language[run] = {}
            for lang in languages:
                if run == "offline" and lang == "en":
                    by_language[run][lang] = results["half titled"]  # the same catalog, measured above
                    continue
                sub = folder / f"half-titled-{lang}-{name}"
                labels = build_catalog(sub, per_label, True, lang)
                by_language[run][lang] = asyncio.run(measure(sub, labels, enc, LANGUAGE_QUERIES[lang], name))
                if lang not in literal:
                    literal[lang] = literal_report(sub, labels, LANGUAGE_QUERIES[lang])
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(folder)
    info = machine_info(encoder=encoder.model_id, photos=len(labels))
    if random_id:
        info["random_multilingual_encoder"] = random_id
    out = sys.stderr if args.json == "-" else sys.stdout
    with contextlib.redirect_stdout(out):
        print_machine(info)
    columns = [(catalog, mode) for catalog in results for mode in MODES]
    rows = [[q, QUERIES[q], *(f"{results[c][m][q]:.1f}" for c, m in columns)] for q in QUERIES]
    rows.append(["mean", "", *(f"{sum(results[c][m].values()) / len(QUERIES):.2f}" for c, m in columns)])
    print(table(["query", "label", *(f"{c}: {m}" for c, m in columns)], rows), file=out)
    if languages != ["en"] or args.random_multilingual:
        print("\nhalf titled catalog, mean precision@10 per language", file=out)
        rows = [
            [lang, run, *(f"{mean(by_language[run][lang][m]):.2f}" for m in MODES)]
            for run in by_language
            for lang in languages
        ]
        print(table(["language", "encoder", *MODES], rows), file=out)
        for lang in languages:
            print(f"\n{lang}: per query, half titled, offline encoder", file=out)
            res = by_language["offline"][lang]
            rows = []
            for q, label in LANGUAGE_QUERIES[lang].items():
                lit = literal[lang][q]
                missed = "; ".join(f"{t} ({why})" if why else t for t, why in lit["missed"].items())
                rows.append(
                    [
                        q,
                        label,
                        *(f"{res[m][q]:.1f}" for m in MODES),
                        f"{lit['literal']}/{lit['titled']}",
                        str(lit["other_labels_literal"]),
                        missed or "-",
                    ]
                )
            head = ["query", "label", *MODES, "label's titles literal", "other labels literal", "titles missed"]
            print(table(head, rows), file=out)
    if args.json:
        dump_json(
            {
                "machine": info,
                "precision_at_10": results,
                "languages": by_language,
                "literal": literal,
            },
            args.json,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
