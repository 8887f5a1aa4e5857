"""The `visearch` admin CLI: catalog in, collection out; search and evaluate from a shell."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, cast

import typer
from pydantic import ValidationError
from typer.core import TyperGroup

from visearch.core.catalog import validation_reason
from visearch.core.config import Settings, load_settings
from visearch.core.domain import Card, Filters, Query, SearchResult, price_text
from visearch.core.errors import CollectionNotFoundError, VisearchError
from visearch.core.search import SearchService

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

    from visearch.core.catalog.files import CatalogFormat
    from visearch.core.encoders.baselines import ImageFeatures
    from visearch.indexer.evaluate import Calibration, EvalQuery
    from visearch.indexer.train import TrainResult

T = TypeVar("T")

#: the base class of click's command-line mistakes (typer vendors click; its ClickException derives from this one)
CLICK_ERRORS = typer.TyperException


class OneLineErrors(TyperGroup):
    """A mistake click catches (unknown option, value out of range, missing argument) is one line and exit 2,
    like every mistake our commands catch, instead of a usage box."""

    def main(
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except CLICK_ERRORS as exc:
            # NoArgsIsHelpError carries the help, already printed (typer tells it by name too)
            if type(exc).__name__ != "NoArgsIsHelpError":
                context = getattr(exc, "ctx", None)
                hint = f" (see {context.command_path} --help)" if context is not None else ""
                typer.echo(f"error: {exc.format_message()}{hint}", err=True)
            sys.exit(getattr(exc, "exit_code", 2))
        except typer.Abort:
            typer.echo("aborted", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    name="visearch",
    help="Visual product search for messengers: index a catalog, search it by photo or text.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=OneLineErrors,
)


@app.callback()
def global_options(
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="also show debug logs and the libraries' warnings (before the command: visearch -v search ...)",
        ),
    ] = False,
) -> None:
    """Options of every command."""
    route_library_chatter(verbose)


def route_library_chatter(verbose: bool) -> None:
    """What torch (the ONNX exporter), transformers and other libraries warn about is for developers:
    it goes to the log at DEBUG, which --verbose shows; our own warnings (a retired setting) stay one line."""
    warnings.showwarning = log_warning
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "warning" if verbose else "error")  # its own stderr handler
    for name in ("visearch", "py.warnings"):
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.NOTSET)


def log_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """`warnings.showwarning` of the CLI: a warning of ours is one line on stderr, a library's is a DEBUG log."""
    if warned_by_visearch():
        logging.getLogger("visearch").warning("warning: %s", message)
    else:
        logging.getLogger("py.warnings").debug("%s: %s (%s:%s)", category.__name__, message, filename, lineno)


def show_info_logs() -> None:
    """A long-running command (serve, bot) logs what it serves at INFO, or at DEBUG with --verbose."""
    ours = logging.getLogger("visearch")
    ours.setLevel(min(ours.getEffectiveLevel(), logging.INFO))


def warned_by_visearch() -> bool:
    """True when the code that called warnings.warn is ours (the first frame outside this module and `warnings`)."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        module = str(frame.f_globals.get("__name__", ""))
        if module not in (__name__, "warnings"):
            return module.startswith("visearch.")
        frame = frame.f_back
    return False


EncoderOpt = Annotated[
    str | None, typer.Option("--encoder", help="clip | offline | auto (default: VISEARCH_ENCODER or clip)")
]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="embedded store directory (VISEARCH_DATA_DIR)")]
CollectionOpt = Annotated[str | None, typer.Option("--collection", help="collection name (VISEARCH_COLLECTION)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print machine-readable JSON")]
OcrOpt = Annotated[
    bool | None,
    typer.Option(
        "--ocr/--no-ocr",
        help="read the text on product photos into the words signal (VISEARCH_OCR; 0.1-0.4 s per photo)",
    ),
]
ModelOpt = Annotated[
    Path | None, typer.Option("--model", help="a model folder from `visearch train` (VISEARCH_MODEL_DIR)")
]
CatalogArg = Annotated[
    str,
    typer.Argument(
        metavar="SOURCE",
        help="catalog file or feed URL: CSV, JSON Lines, Google Merchant / Meta (XML or tab-separated), YML, "
        "Shopify products.json (or the store's URL with --format shopify), WooCommerce Store API; gzip is fine",
    ),
]
FormatOpt = Annotated[
    str | None,
    typer.Option(
        "--format",
        help="csv | jsonl | merchant | yml | shopify | woocommerce (default: told from the content)",
    ),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")]


def settings_from(**overrides: Any) -> Settings:
    """Settings from env/.env with command-line options (the ones given) on top; exit 2 if invalid."""
    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except VisearchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def run(coro_fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run one async command; turn our errors into one readable line and exit code 2."""
    try:
        return asyncio.run(coro_fn())
    except VisearchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        typer.echo("interrupted: everything written so far is kept; run the same command again to resume", err=True)
        raise typer.Exit(130) from None


async def open_service(settings: Settings, *, existing: bool = False) -> SearchService:
    """The service of one CLI command, with the encoder of the collection (see `SearchService.open`).
    `existing`: the command reads the collection, so a missing one is said before any model loads."""
    from visearch.core.encoders.factory import check_encoder_before_loading
    from visearch.core.search import settings_for_collection
    from visearch.core.store.factory import open_store

    store = open_store(settings)
    try:
        if existing:
            info = await store.info()
            if info is None:
                raise CollectionNotFoundError(
                    f"collection {settings.collection!r} does not exist yet: "
                    "index a catalog first with `visearch index CATALOG`"
                )
            check_encoder_before_loading(info, await settings_for_collection(store, settings))
        return await SearchService.open(settings, store)
    except BaseException:
        await store.close()
        raise


def print_result(result: SearchResult, heading: str) -> None:
    """A small readable table of cards in rank order. The score printed is the one they were ranked by
    and the cut-offs are printed as precisely as the scores, so the table never contradicts itself."""
    fused = result.min_score_words is not None
    note = " (score: the photo and words matches fused, VISEARCH_FUSION)" if fused else ""
    typer.echo(f"{heading.removesuffix(':')}{note}:" if heading.endswith(":") else heading + note)
    if result.no_match:
        typer.echo(f"  no match above the relevance {describe_cut_offs(result)}: try another photo or more words")
        return
    for rank, card in enumerate(result.cards, start=1):
        stock = "" if card.in_stock else "  (out of stock)"
        typer.echo(
            f"  {rank}. {card.title:<36} {price_text(card.price, card.currency):>12}  "
            f"{card.category or '':<12} score {ranking_score(card):.3f}{similarities(card, result)}  "
            f"[{card.product_id}]{stock}"
        )
    if result.cut_off:
        typer.echo(f"  ({result.cut_off} more below the {describe_cut_offs(result)} not shown)")


def ranking_score(card: Card) -> float:
    """The value the card was ranked by (a card built without one ranks by its similarity)."""
    return card.score if card.rank_score is None else card.rank_score


def cut_offs(result: SearchResult) -> dict[str, float]:
    """Each signal's relevance cut-off: the similarity a product needs on it to be shown."""
    return {"image": result.min_score} | ({} if result.min_score_words is None else {"words": result.min_score_words})


def describe_cut_offs(result: SearchResult) -> str:
    """'cut-off 0.095', or 'cut-offs image 0.095, words 0.550' for a fused text query."""
    limits = cut_offs(result)
    if len(limits) == 1:
        return f"cut-off {result.min_score:.3f}"
    return "cut-offs " + ", ".join(f"{name} {value:.3f}" for name, value in limits.items())


def similarities(card: Card, result: SearchResult) -> str:
    """'  (image 0.236, words 0.661)' when the ranking score is not the similarity itself (fused
    signals, colour boost); a product under every cut-off was kept because it names every query word."""
    if ranking_score(card) == card.score and result.min_score_words is None:
        return ""
    found = card.signals or {"image": card.score}
    text = ", ".join(f"{name} {value:.3f}" for name, value in found.items())
    limits = cut_offs(result)
    if not any(value >= limits.get(name, float("inf")) for name, value in found.items()):
        text += ": names every query word"
    return f"  ({text})"


@app.command()
def index(
    catalog: CatalogArg,
    recreate: Annotated[
        bool,
        typer.Option(
            help="build the collection anew (e.g. after changing encoder); the current one is replaced only when the new one is complete"
        ),
    ] = False,
    reembed: Annotated[
        bool, typer.Option("--reembed", help="rebuild every vector with the configured model (after `visearch train`)")
    ] = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
    encoder: EncoderOpt = None,
    model: ModelOpt = None,
    data_dir: DataDirOpt = None,
    collection: CollectionOpt = None,
    ocr: OcrOpt = None,
    fmt: FormatOpt = None,
    allow_mass_delete: Annotated[
        bool,
        typer.Option(
            "--allow-mass-delete",
            help="let --recreate leave out more than half of the stored products (refused otherwise)",
        ),
    ] = False,
) -> None:
    """Index (add/update) every product of SOURCE (a file or a feed URL); unchanged images are skipped.

    --recreate / --reembed build the new collection beside the current one (embedded store) and
    swap it in only once every product the catalog lists is stored; until then nothing changes."""
    settings = settings_from(model_dir=model, encoder=encoder, data_dir=data_dir, collection=collection, ocr=ocr)
    _index_command(
        catalog,
        settings,
        IndexOptions(
            fmt=catalog_format(fmt),
            sync=False,
            recreate=recreate or reembed,
            allow_mass_delete=allow_mass_delete,
            quiet=quiet,
            as_json=as_json,
        ),
    )


@app.command()
def sync(
    catalog: CatalogArg,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
    encoder: EncoderOpt = None,
    model: ModelOpt = None,
    data_dir: DataDirOpt = None,
    collection: CollectionOpt = None,
    ocr: OcrOpt = None,
    fmt: FormatOpt = None,
    force: Annotated[
        bool, typer.Option("--force", help="a feed URL: read it even when it has not changed since the last sync")
    ] = False,
    refetch_images: Annotated[
        bool,
        typer.Option("--refetch-images", help="a feed URL: download every photo again, also those already stored"),
    ] = False,
    allow_mass_delete: Annotated[
        bool,
        typer.Option(
            "--allow-mass-delete",
            help="let sync delete more than half of the collection (refused otherwise: a truncated catalog must not empty the shop)",
        ),
    ] = False,
) -> None:
    """Like `index`, and also delete products that are no longer in SOURCE (a file or a feed URL).

    Deletes nothing when the catalog has a broken row that may hide others, and stops before
    touching anything when more than half of the collection would go (see --allow-mass-delete).
    A feed URL is downloaded whole before anything is written; when it has not changed since the
    last sync (HTTP 304, or the same bytes) nothing is done, and photos already stored under the
    same URL are not downloaded again."""
    settings = settings_from(model_dir=model, encoder=encoder, data_dir=data_dir, collection=collection, ocr=ocr)
    options = IndexOptions(
        fmt=catalog_format(fmt),
        sync=True,
        recreate=False,
        allow_mass_delete=allow_mass_delete,
        quiet=quiet,
        as_json=as_json,
        force=force,
        refetch_images=refetch_images,
    )
    _index_command(catalog, settings, options)


@dataclass(frozen=True)
class IndexOptions:
    """How `index` / `sync` write their source."""

    fmt: CatalogFormat | None
    sync: bool
    recreate: bool
    allow_mass_delete: bool
    quiet: bool
    as_json: bool
    force: bool = False
    refetch_images: bool = False


def catalog_format(name: str | None) -> CatalogFormat | None:
    """`--format`'s value checked against the known formats; exit 2 naming them otherwise."""
    from visearch.core.catalog.files import FORMATS

    if name is None:
        return None
    if name.lower() not in FORMATS:
        typer.echo(f"error: --format {name!r} is not one of {', '.join(FORMATS)}", err=True)
        raise typer.Exit(2)
    return cast("CatalogFormat", name.lower())


def _index_command(source: str, settings: Settings, options: IndexOptions) -> None:
    """`index` and `sync`: read the source (a feed URL is downloaded first), write it into the collection,
    print the summary; exit 1 on problems, 2 when the source cannot be read (nothing touched)."""
    from visearch.core.catalog.remote import is_feed_url

    if is_feed_url(source):
        _sync_feed_url(source, settings, options)
        return
    from visearch.core.catalog import read_catalog
    from visearch.core.ingest import IngestService
    from visearch.indexer.progress import TqdmProgress

    path = Path(source)
    try:  # the catalog is read before a model loads: a missing or broken file costs no wait
        rows = read_catalog(path, fmt=options.fmt, currency=settings.currency, max_bytes=settings.feed_max_bytes)
    except VisearchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None

    async def job() -> Any:
        service = await open_service(settings)
        try:
            with TqdmProgress(enabled=not (options.quiet or options.as_json)) as progress:
                return await IngestService(service.encoder, service.store, settings).write(
                    rows,
                    path.parent,
                    sync=options.sync,
                    recreate=options.recreate,
                    allow_mass_delete=options.allow_mass_delete,
                    progress=progress,
                )
        finally:
            await service.close()

    _print_summary(run(job), options.as_json)


def _sync_feed_url(url: str, settings: Settings, options: IndexOptions) -> None:
    """A feed by URL: download and parse it before any model loads (exit 2, nothing touched, when it
    cannot be had whole), then write it; an unchanged feed is one request and exit 0."""
    from visearch.core.ingest.feeds import FeedIntake, FeedSync, Unchanged
    from visearch.indexer.progress import TqdmProgress

    if options.recreate:
        typer.echo(
            "error: --recreate takes a catalog file; download the feed first, or run `visearch sync URL`", err=True
        )
        raise typer.Exit(2)

    async def job() -> Any:
        intake = FeedIntake(settings)  # no model until the feed is read whole
        prepared = await intake.prepare(url, fmt=options.fmt, force=options.force or not options.sync)
        if isinstance(prepared, Unchanged):
            return prepared
        service = await open_service(settings)
        try:
            with TqdmProgress(enabled=not (options.quiet or options.as_json)) as progress:
                return await FeedSync(service.encoder, service.store, settings, intake).apply(
                    prepared,
                    sync=options.sync,
                    allow_mass_delete=options.allow_mass_delete,
                    refetch_images=options.refetch_images,
                    progress=progress,
                )
        finally:
            await service.close()

    outcome = run(job)
    if isinstance(outcome, Unchanged):
        if options.as_json:
            typer.echo(json.dumps({"ok": True, "unchanged": True, "source": outcome.source, "how": outcome.how}))
        else:
            typer.echo(
                f"{outcome.source}: unchanged since the last sync ({outcome.how}); nothing to do (--force reads it anyway)"
            )
        raise typer.Exit(0)
    _print_summary(outcome, options.as_json)


def _print_summary(summary: Any, as_json: bool) -> None:
    """The run's problems and summary line (or JSON); exit 0 when everything went in, 1 otherwise."""
    if as_json:
        typer.echo(json.dumps(summary.as_dict(), indent=2, ensure_ascii=False))
    else:
        for problem in summary.problems:
            typer.echo(f"  {problem}", err=True)
        typer.echo(summary.describe())
    raise typer.Exit(0 if summary.ok else 1)


@app.command()
def delete(
    product_ids: Annotated[list[str], typer.Argument(help="product ids to remove")],
    data_dir: DataDirOpt = None,
    collection: CollectionOpt = None,
) -> None:
    """Remove products (all their images) from the collection."""
    from visearch.core.store.factory import open_store

    settings = settings_from(data_dir=data_dir, collection=collection)

    async def job() -> tuple[int, list[str]]:
        store = open_store(settings)
        try:
            found = {str(p.payload.get("product_id")) async for p in store.scroll(product_ids=product_ids)}
            unknown = [pid for pid in dict.fromkeys(product_ids) if pid not in found]
            return await store.delete_products(product_ids), unknown
        finally:
            await store.close()

    removed, unknown = run(job)
    typer.echo(f"deleted {removed} point(s) of {len(product_ids)} product id(s)")
    if unknown:
        typer.echo(f"not in the collection (nothing deleted for them): {', '.join(unknown)}", err=True)


@app.command()
def stats(
    as_json: JsonOpt = False,
    data_dir: DataDirOpt = None,
    collection: CollectionOpt = None,
) -> None:
    """Collection size (points and products), encoder, backend."""
    from visearch.core.store.factory import open_store

    settings = settings_from(data_dir=data_dir, collection=collection)

    async def job() -> dict[str, Any]:
        store = open_store(settings)
        try:
            info = await store.info()
            if info is None:
                return {"collection": settings.collection, "backend": store.backend, "exists": False}
            products = {str(p.payload.get("product_id")) async for p in store.scroll()}
            return {
                "collection": info.name,
                "backend": info.backend,
                "exists": True,
                "encoder": info.encoder_id,
                "dim": info.dim,
                "points": info.points,
                "products": len(products),
            }
        finally:
            await store.close()

    data = run(job)
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    elif not data["exists"]:
        typer.echo(
            f"collection {data['collection']!r} does not exist yet ({data['backend']}); run `visearch index CATALOG`"
        )
    else:
        typer.echo(
            f"collection {data['collection']} ({data['backend']}): {data['products']} products, "
            f"{data['points']} images, encoder {data['encoder']} (dim {data['dim']})"
        )


@app.command()
def search(
    image: Annotated[
        list[Path] | None, typer.Option("--image", help="photo to search by (repeat for an album)")
    ] = None,
    text: Annotated[str | None, typer.Option("--text", help="words to search by")] = None,
    category: Annotated[list[str] | None, typer.Option("--category", help="any of these categories")] = None,
    brand: Annotated[list[str] | None, typer.Option("--brand", help="any of these brands")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="every one of these tags")] = None,
    min_price: Annotated[float | None, typer.Option("--min-price")] = None,
    max_price: Annotated[float | None, typer.Option("--max-price")] = None,
    in_stock: Annotated[bool | None, typer.Option("--in-stock/--out-of-stock", help="only in / out of stock")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000)] = 5,
    as_json: JsonOpt = False,
    encoder: EncoderOpt = None,
    model: ModelOpt = None,
    data_dir: DataDirOpt = None,
    collection: CollectionOpt = None,
) -> None:
    """Search the collection by photo (--image) or by words (--text), with optional filters."""
    if bool(image) == bool(text):
        typer.echo("error: give either --image PATH or --text TEXT", err=True)
        raise typer.Exit(2)
    settings = settings_from(model_dir=model, encoder=encoder, data_dir=data_dir, collection=collection)
    try:  # every argument is checked before a model loads: a mistake costs no wait
        filters = Filters(
            categories=category or [],
            brands=brand or [],
            tags=tag or [],
            price_min=min_price,
            price_max=max_price,
            in_stock=in_stock,
        )
        photos = [read_file(p) for p in image or []]
    except ValidationError as exc:
        typer.echo(f"error: {validation_reason(exc)}", err=True)
        raise typer.Exit(2) from None
    except VisearchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None

    async def job() -> SearchResult:
        service = await open_service(settings, existing=True)
        try:
            return await service.search(Query(images=photos, text=text, filters=filters, limit=limit))
        finally:
            await service.close()

    result = run(job)
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
    else:
        print_result(result, f"results for {'photo ' + ', '.join(map(str, image)) if image else repr(text)}:")


def check_catalog_file(catalog: Path) -> None:
    """Read the catalog once before any model loads: a missing or broken file is one line at once."""
    from visearch.core.catalog import read_catalog

    try:
        read_catalog(catalog)
    except VisearchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def read_file(path: Path) -> bytes:
    """Read a query photo; a missing file is a VisearchError naming it."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise VisearchError(f"cannot read {path}: {exc.strerror or exc}") from None


EVAL_METHODS = ("encoder", "phash", "cnn")
#: `--compare NAME=...` -> the settings it sets (rerank: both parts of re-ranking at once)
COMPARE_SETTINGS: dict[str, tuple[str, ...]] = {
    "crops": ("query_crops",),
    "verify": ("verify",),
    "rerank": ("query_crops", "verify"),
    "top-k": ("verify_top_k",),
    "weight": ("verify_weight",),
    "min-inliers": ("verify_min_inliers",),
    "full-inliers": ("verify_full_inliers",),
}
#: `--by` -> the product's value a query is counted under (tags: its first tag)
BREAKDOWN_FIELDS = ("category", "brand", "tags")
#: the photos of an --unrelated folder
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


@dataclass(frozen=True)
class EvalPlan:
    """What `visearch eval` measures every method on, and how."""

    catalog: Path
    queries: Path
    ks: tuple[int, ...]
    calibrate: bool
    keep: float
    unrelated: Path | None
    show_progress: bool
    #: (label, settings update) per configuration to measure on the one index
    configs: tuple[tuple[str, dict[str, str]], ...] = (("", {}),)
    #: product id -> the value its queries are broken down by (--by)
    group_of: dict[str, str] | None = None


@app.command("eval")
def eval_command(
    catalog: Annotated[Path, typer.Option("--catalog", help="catalog to index (into a throw-away collection)")],
    queries: Annotated[Path, typer.Option("--queries", help="CSV: image or text, expected")],
    k: Annotated[str, typer.Option("--k", help="comma-separated cut-offs")] = "1,5,10",
    method: Annotated[
        str,
        typer.Option(
            "--method",
            help="comma-separated: encoder (the configured one), "
            "phash (perceptual hash), cnn (raw ImageNet CNN features)",
        ),
    ] = "encoder",
    calibrate_cutoff: Annotated[
        bool, typer.Option("--calibrate", help="recommend relevance cut-offs from these queries")
    ] = False,
    keep: Annotated[
        float, typer.Option("--keep", min=0.5, max=1.0, help="--calibrate: share of correct first results to keep")
    ] = 0.95,
    unrelated: Annotated[
        Path | None, typer.Option("--unrelated", help="--calibrate: folder of photos the shop does not sell")
    ] = None,
    compare: Annotated[
        list[str] | None,
        typer.Option(
            "--compare",
            help="NAME=V1,V2 (repeatable; every combination is one row, on one index): "
            "crops, verify, rerank (both) =on,off; top-k=10,20; weight=0.3,0.5",
        ),
    ] = None,
    by: Annotated[
        str | None, typer.Option("--by", help="Recall@1 broken down by the expected product's category, brand or tags")
    ] = None,
    as_json: JsonOpt = False,
    encoder: EncoderOpt = None,
    model: ModelOpt = None,
    collection: CollectionOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Recall@k and MRR: index CATALOG with each method, run every query of QUERIES, one table."""
    ks = parse_cut_offs(k)
    methods = parse_methods(method)
    check_catalog_file(catalog)
    if unrelated is not None and not unrelated.is_dir():
        typer.echo(f"error: --unrelated {unrelated} is not a folder of photos", err=True)
        raise typer.Exit(2)
    configs = parse_comparisons(compare or [])
    group_of = breakdown_of(catalog, by) if by is not None else None
    plan = EvalPlan(catalog, queries, ks, calibrate_cutoff, keep, unrelated, not as_json, tuple(configs), group_of)
    with tempfile.TemporaryDirectory(prefix="visearch-eval-") as tmp:
        # no --collection: a throw-away embedded collection; with it: reuse (and update) that one
        throwaway = collection is None
        settings = settings_from(
            model_dir=model,
            encoder=encoder,
            collection=collection or "eval",
            data_dir=Path(tmp) if throwaway else data_dir,
            qdrant_url="" if throwaway else None,
        )
        baseline_settings = settings.model_copy(update={"data_dir": Path(tmp), "qdrant_url": None})
        for _, update in configs:  # a bad value is said before anything is indexed
            configured(settings, update)
        results = run(lambda: evaluate_methods(methods, plan, settings, baseline_settings))
    if as_json:
        clean = [{k_: v for k_, v in r.items() if k_ != "_report"} for r in results]
        typer.echo(json.dumps(clean[0] if len(clean) == 1 else clean, indent=2))
        return
    print_eval_table(results, ks, catalog)
    if group_of is not None:
        print_breakdown(results, by or "")
    print_skipped_queries(results)
    print_calibration(results)


def parse_cut_offs(k: str) -> tuple[int, ...]:
    """--k as sorted distinct positive integers; anything else is one line and exit 2."""
    try:
        ks = tuple(sorted({int(x) for x in k.split(",") if x.strip()}))
        if not ks or min(ks) < 1:
            raise ValueError
    except ValueError:
        typer.echo(f"error: --k must be positive integers separated by commas, got {k!r}", err=True)
        raise typer.Exit(2) from None
    return ks


def parse_methods(method: str) -> list[str]:
    """--method as a list of EVAL_METHODS; an unknown or empty one is one line and exit 2."""
    methods = [m.strip() for m in method.split(",") if m.strip()]
    unknown = [m for m in methods if m not in EVAL_METHODS]
    if unknown or not methods:
        typer.echo(f"error: --method takes {', '.join(EVAL_METHODS)} (comma-separated), got {method!r}", err=True)
        raise typer.Exit(2)
    return methods


def parse_comparisons(specs: list[str]) -> list[tuple[str, dict[str, str]]]:
    """--compare NAME=V1,V2 options as (label, settings update) per combination, in the order given;
    an unknown name or a missing value is one line and exit 2 (values are checked by Settings)."""
    axes: list[list[tuple[str, dict[str, str]]]] = []
    for spec in specs:
        name, _, values = spec.partition("=")
        name = name.strip()
        options = [v.strip() for v in values.split(",") if v.strip()]
        if name not in COMPARE_SETTINGS or not options:
            typer.echo(
                f"error: --compare takes NAME=V1,V2 with NAME one of {', '.join(COMPARE_SETTINGS)}, got {spec!r}",
                err=True,
            )
            raise typer.Exit(2)
        axes.append([(f"{name}={v}", dict.fromkeys(COMPARE_SETTINGS[name], v)) for v in options])
    configs: list[tuple[str, dict[str, str]]] = [("", {})]
    for axis in axes:
        configs = [(f"{label} {part}".strip(), {**update, **more}) for label, update in configs for part, more in axis]
    return configs


def configured(settings: Settings, update: dict[str, str]) -> Settings:
    """`settings` with one --compare configuration applied and validated like the environment's values
    (`verify=maybe` or `top-k=0` is one line naming the setting, and exit 2)."""
    if not update:
        return settings
    try:
        return Settings.model_validate(settings.model_dump() | update)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = "VISEARCH_" + "_".join(str(part) for part in problem["loc"]).upper()
        typer.echo(f"error: --compare {where}={update.get(str(problem['loc'][0]), '')!r}: {problem['msg']}", err=True)
        raise typer.Exit(2) from None


def breakdown_of(catalog: Path, by: str) -> dict[str, str]:
    """Product id -> its `by` value (category, brand, or first tag) from the catalog; an unknown field is exit 2."""
    from visearch.core.catalog import read_catalog

    if by not in BREAKDOWN_FIELDS:
        typer.echo(f"error: --by takes {', '.join(BREAKDOWN_FIELDS)}, got {by!r}", err=True)
        raise typer.Exit(2)
    products = [row.product for row in read_catalog(catalog).rows]
    if by == "tags":
        return {p.id: str(p.tags[0]) if p.tags else "" for p in products}
    return {p.id: str(getattr(p, by) or "") for p in products}


async def evaluate_methods(
    methods: list[str], plan: EvalPlan, settings: Settings, baseline_settings: Settings
) -> list[dict[str, Any]]:
    """One result row per method, in the order given; each method's service is closed before the next opens."""
    from visearch.indexer.evaluate import read_queries

    parsed = read_queries(plan.queries)
    results = []
    offline: ImageFeatures | None = None
    for name in methods:
        service, offline = await open_eval_service(name, settings, baseline_settings, offline)
        try:
            results.extend(await measure_method(name, service, parsed, plan))
        finally:
            await service.close()
    return results


async def open_eval_service(
    name: str, settings: Settings, baseline_settings: Settings, offline: ImageFeatures | None
) -> tuple[SearchService, ImageFeatures | None]:
    """The service method `name` is measured with: the configured encoder, or a baseline in a collection of its own.
    `offline`: the raw CNN features loaded so far (the cnn baseline reuses the configured offline encoder's)."""
    from visearch.core.encoders.baselines import CnnFeatureEncoder, PHashEncoder
    from visearch.core.encoders.offline import OfflineEncoder
    from visearch.core.store.factory import open_store

    if name == "encoder":
        service = await open_service(settings)
        if type(service.encoder) is OfflineEncoder:  # not a fine-tuned one: the baseline is the raw features
            offline = service.encoder
        return service, offline
    if name == "cnn" and offline is None:
        offline = await asyncio.to_thread(OfflineEncoder, settings.device, settings.batch_size)
    base = PHashEncoder() if name == "phash" else CnnFeatureEncoder(offline)
    target = baseline_settings.model_copy(update={"collection": f"eval-{name}"})
    return SearchService(base, open_store(target), target), offline


async def measure_method(
    name: str, service: SearchService, parsed: list[EvalQuery], plan: EvalPlan
) -> list[dict[str, Any]]:
    """Index the catalog with the service once, then per configuration run every query and calibrate
    cut-offs when asked: one row of the table each."""
    from visearch.core.ingest import index_catalog
    from visearch.indexer.evaluate import calibrate, evaluate, top_scores
    from visearch.indexer.progress import TqdmProgress

    with TqdmProgress(enabled=plan.show_progress) as progress:
        summary = await index_catalog(
            plan.catalog,
            service.encoder,
            service.store,
            service.settings,
            sync=False,
            recreate=False,
            progress=progress,
        )
    indexed = service.settings
    rows = []
    for label, update in plan.configs:
        service.settings = configured(indexed, update)
        report = await evaluate(service, parsed, plan.ks, plan.group_of)
        calibration: list[Calibration] = []
        if plan.calibrate:
            junk = None
            if plan.unrelated is not None:
                photos = sorted(p for p in plan.unrelated.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
                junk = {"image": await top_scores(service, photos)}
            calibration = calibrate(report, plan.keep, junk)
        rows.append(
            {
                "method": name,
                "config": label or "defaults",
                "encoder": service.encoder.model_id,
                "catalog": str(plan.catalog),
                **report.as_dict(),
                "indexing": summary.as_dict()["counts"],
                "_report": report,
                "calibration": [c.__dict__ for c in calibration],
            }
        )
    service.settings = indexed
    return rows


def print_eval_table(results: list[dict[str, Any]], ks: tuple[int, ...], catalog: Path) -> None:
    """One line per method and configuration: Recall@k for each k, MRR, the median time per query
    (embedding and re-ranking) and how many queries were skipped."""
    first = results[0]["_report"]
    typer.echo(f"{first.queries + len(first.errors)} queries, catalog {catalog}, encoder {results[0]['encoder']}")
    width = max(len(r["config"]) for r in results)
    header = (
        f"  {'method':<8} {'config':<{width}}"
        + "".join(f" Recall@{kk:<3}" for kk in ks)
        + f" MRR@{max(ks):<3} ms/query  skipped"
    )
    typer.echo(header)
    for r in results:
        report = r["_report"]
        typer.echo(
            f"  {r['method']:<8} {r['config']:<{width}}"
            + "".join(f" {report.recall(kk):>9.3f}" for kk in ks)
            + f" {report.mrr:>7.3f} {report.ms_per_query(0.5):>9.1f}  {len(report.errors):>7}"
        )


def print_breakdown(results: list[dict[str, Any]], by: str) -> None:
    """Recall@1 per value of --by (queries counted under their expected product's value), one column per row."""
    names = sorted({name for r in results for name in r["_report"].groups})
    typer.echo(f"Recall@1 by {by} (queries):")
    width = max(len(r["config"]) for r in results)
    typer.echo(f"  {'method':<8} {'config':<{width}}" + "".join(f" {n[:14]:>14}" for n in names))
    for r in results:
        groups = r["_report"].groups
        recall = r["_report"].group_recall()
        cells = "".join(
            f" {recall.get(n, 0.0):>8.3f} ({groups.get(n, [0])[0]:>3})" if n in groups else f" {'-':>14}" for n in names
        )
        typer.echo(f"  {r['method']:<8} {r['config']:<{width}}" + cells)


def print_skipped_queries(results: list[dict[str, Any]]) -> None:
    """The first five queries each method could not run, on stderr."""
    for r in results:
        for err in r["_report"].errors[:5]:
            typer.echo(f"  {r['method']}: skipped query {err}", err=True)


def print_calibration(results: list[dict[str, Any]]) -> None:
    """Each recommended cut-off as the setting to put in .env, with what it keeps and lets through."""
    for r in results:
        for c in r["calibration"]:
            variable = "VISEARCH_MIN_SCORE_IMAGE" if c["kind"] == "image" else "VISEARCH_MIN_SCORE_TEXT"
            wrong = "n/a" if c["wrong_passing"] is None else f"{c['wrong_passing']:.0%}"
            junk = (
                ""
                if c["unrelated_passing"] is None
                else f", {c['unrelated_passing']:.0%} of unrelated photos get a result"
            )
            typer.echo(
                f"  {r['method']} {c['kind']} queries: {variable}={c['threshold']} keeps {c['keep']:.0%} of "
                f"{c['samples']} correct first results; {wrong} of wrong first results pass{junk}"
            )


@app.command()
def train(
    catalog: Annotated[
        Path, typer.Option("--catalog", help="catalog whose products with several photos are the similarity groups")
    ],
    output: Annotated[
        Path, typer.Option("--output", help="folder to write the model to (use it with --model / VISEARCH_MODEL_DIR)")
    ],
    eval_queries: Annotated[
        Path | None,
        typer.Option("--eval-queries", help="CSV (image, expected) to evaluate on instead of held-out photos"),
    ] = None,
    loss: Annotated[
        str, typer.Option("--loss", help="mnrl (in-batch negatives), ms (MultiSimilarity), triplet (batch-hard)")
    ] = "mnrl",
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 40,
    views: Annotated[
        int,
        typer.Option(
            "--views",
            min=1,
            help="augmented views per photo (offline: features cached once; clip: one draw in N is the plain photo)",
        ),
    ] = 4,
    no_colour: Annotated[
        bool, typer.Option("--no-colour", help="no colour jitter (when colour tells products apart)")
    ] = False,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    unfreeze_blocks: Annotated[
        int,
        typer.Option(
            "--unfreeze-blocks",
            min=0,
            help="--encoder clip: also train the last N vision blocks (default: the projection only)",
        ),
    ] = 0,
    encoder: EncoderOpt = None,
) -> None:
    """Fine-tune the similarity model on the catalog's own photos; prints Recall@1/5 before and after.

    `--encoder offline` (default) trains a head on frozen features; `--encoder clip` trains CLIP's image
    projection (VISEARCH_CLIP_MODEL, or VISEARCH_MODEL_DIR) on CUDA when present, else on the CPU.
    """
    if loss not in ("mnrl", "ms", "triplet"):
        typer.echo("error: --loss must be mnrl, ms or triplet", err=True)
        raise typer.Exit(2)
    settings = settings_from(encoder=encoder or "offline")
    check_catalog_file(catalog)
    if unfreeze_blocks and settings.encoder != "clip":
        typer.echo(
            "error: --unfreeze-blocks is for --encoder clip (the offline encoder's backbone stays frozen)", err=True
        )
        raise typer.Exit(2)
    options = {
        "loss": loss,
        "epochs": epochs,
        "views": views,
        "colour": not no_colour,
        "seed": seed,
        "max_pixels": settings.max_image_pixels,
    }
    job = TrainJob(settings, catalog, output, options, unfreeze_blocks)

    async def train_in_background() -> TrainResult:
        photos = eval_photos(eval_queries, settings.max_image_pixels)
        bar = TrainingBar(job.use_clip)
        try:
            return await asyncio.to_thread(job.run, photos, bar.progress, bar.on_epoch)
        finally:
            bar.close()

    print_training(run(train_in_background), output)


@dataclass(frozen=True)
class TrainJob:
    """What `visearch train` trains: the configured encoder's model on a catalog, into an output folder."""

    settings: Settings
    catalog: Path
    output: Path
    options: dict[str, Any]  # the TrainConfig fields the command sets
    unfreeze_blocks: int

    @property
    def use_clip(self) -> bool:
        return self.settings.encoder == "clip"

    def run(
        self,
        photos: list[tuple[PILImage, str]] | None,
        progress: Callable[[str, int, int], None],
        on_epoch: Callable[..., None],
    ) -> TrainResult:
        """The chosen encoder's training job (runs on a worker thread); `photos`: the --eval-queries ones."""
        from visearch.indexer.train import TrainConfig, train_offline

        if self.use_clip:
            return self.run_clip(photos, progress, on_epoch)
        from visearch.core.encoders.offline import OfflineEncoder

        base = OfflineEncoder(self.settings.device, self.settings.batch_size)
        cfg = TrainConfig(**self.options)
        return train_offline(self.catalog, self.output, base, cfg, photos, progress, on_epoch)

    def run_clip(
        self,
        photos: list[tuple[PILImage, str]] | None,
        progress: Callable[[str, int, int], None],
        on_epoch: Callable[..., None],
    ) -> TrainResult:
        """CLIP's image side, from the model folder (VISEARCH_MODEL_DIR) or VISEARCH_CLIP_MODEL."""
        from transformers.utils import logging as hf_logging

        from visearch.indexer.train_clip import ClipTrainConfig, train_clip

        hf_logging.disable_progress_bar()  # transformers' load/save bars would break the training bar
        settings = self.settings
        source = str(settings.model_dir) if settings.model_dir else settings.clip_model
        device = settings.device if "device" in settings.model_fields_set else None  # unset: CUDA when present
        cfg = ClipTrainConfig(**self.options, unfreeze_blocks=self.unfreeze_blocks)
        return train_clip(self.catalog, self.output, source, cfg, photos, progress, on_epoch, device)


def eval_photos(eval_queries: Path | None, max_pixels: int) -> list[tuple[PILImage, str]] | None:
    """The photo rows of --eval-queries, each with the first product it expects (text rows are left out)."""
    if eval_queries is None:
        return None
    from visearch.core.images import load_image_file
    from visearch.indexer.evaluate import read_queries

    return [
        (load_image_file(q.image, max_pixels), next(iter(q.expected)))
        for q in read_queries(eval_queries)
        if q.image is not None
    ]


class TrainingBar:
    """The progress bar of `visearch train`: steps (clip) or feature images (offline), then each epoch's scores."""

    def __init__(self, use_clip: bool) -> None:
        from tqdm import tqdm

        self.bar = tqdm(
            total=0,
            unit="step" if use_clip else "img",
            desc="training" if use_clip else "features",
            file=sys.stderr,
            dynamic_ncols=True,
        )

    def progress(self, stage: str, done: int, total: int) -> None:
        self.bar.total = total
        self.bar.n = done
        self.bar.refresh()

    def on_epoch(self, epoch: int, loss_value: float, scores: Any) -> None:
        self.bar.set_description(f"epoch {epoch}")
        self.bar.set_postfix(loss=f"{loss_value:.3f}", R1=f"{scores.recall1:.3f}", refresh=True)

    def close(self) -> None:
        self.bar.close()


def print_training(result: TrainResult, output: Path) -> None:
    """Recall@1/5 and MRR before and after, and how to use the model."""
    typer.echo(
        f"trained on {result.images} photos of {result.products} products; "
        f"{result.epochs_run} epochs, best at epoch {result.best_epoch}"
    )
    typer.echo(f"  held-out ({result.after.queries} queries)  Recall@1  Recall@5  MRR@5")
    typer.echo(
        f"  zero-shot                     {result.before.recall1:8.3f}  {result.before.recall5:8.3f}  {result.before.mrr:5.3f}"
    )
    typer.echo(
        f"  fine-tuned                    {result.after.recall1:8.3f}  {result.after.recall5:8.3f}  {result.after.mrr:5.3f}"
    )
    if result.best_epoch == 0:
        typer.echo(
            "  no epoch beat zero-shot on the held-out photos: the saved model is the starting one "
            "(try more photos per product, another --loss, or more --epochs)"
        )
    typer.echo(
        f"model {result.version} written to {output}; use it with --model {output} (or VISEARCH_MODEL_DIR), "
        f"then rebuild the collection: visearch index CATALOG --model {output} --reembed"
    )


@app.command()
def optimize(
    as_json: JsonOpt = False,
    data_dir: DataDirOpt = None,
    collection: CollectionOpt = None,
) -> None:
    """Build the vector index (HNSW, optional int8 quantization) from VISEARCH_HNSW_* / VISEARCH_QUANTIZATION.

    Maintenance: run it after a bulk index, with the service stopped (the embedded engine allows one
    process per data directory and holds the GIL while building). Filtered searches stay exact."""
    from visearch.core.store.base import IndexMaintenance
    from visearch.core.store.factory import open_store

    settings = settings_from(data_dir=data_dir, collection=collection)

    async def job() -> dict[str, Any]:
        store = open_store(settings)
        try:
            if not isinstance(store, IndexMaintenance):
                raise VisearchError(f"the {store.backend} store has no vector index to build")
            return (await store.build_index()).as_dict()
        finally:
            await store.close()

    data = run(job)
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    cfg = data["settings"]
    built = "rebuilt" if data["changed"] else "already up to date"
    typer.echo(
        f"collection {data['collection']} ({data['backend']}): index {built} in {data['seconds']:.1f}s; "
        f"{data['points']} points, {data['indexed_vectors']} indexed vectors, {data['segments']} segments, "
        f"status {data['status']}"
    )
    typer.echo(
        f"  HNSW m={cfg['hnsw_m']} ef_construct={cfg['hnsw_ef_construct']} payload_m={cfg['payload_links']} "
        f"(search ef={cfg['hnsw_ef']}); "
        f"quantization {cfg['quantization']}"
        + (
            f" (rescore {cfg['quantization_rescore']}, oversampling {cfg['quantization_oversampling']:g})"
            if cfg["quantization"] != "none"
            else ""
        )
        + (
            "; filtered searches stay exact"
            if cfg["filtered"] == "exact"
            else "; filtered searches planned by the engine"
        )
    )
    for note in data["notes"]:
        typer.echo(f"  note: {note}")


@app.command()
def demo(
    data_dir: DataDirOpt = None,
) -> None:
    """Index the bundled grocery sample and run a photo search and a text search."""
    sample = Path(str(resources.files("visearch.indexer") / "demo_data" / "grocery"))
    encoder = None if os.environ.get("VISEARCH_ENCODER") else "auto"
    settings = settings_from(encoder=encoder, data_dir=data_dir, collection="demo")
    from visearch.core.ingest import index_catalog
    from visearch.indexer.progress import TqdmProgress

    async def job() -> str:
        service = await open_service(settings)
        try:
            typer.echo(f"encoder: {service.encoder.model_id}; store: {service.store.backend} in {settings.data_dir}")
            with TqdmProgress() as progress:
                summary = await index_catalog(
                    sample / "catalog.csv",
                    service.encoder,
                    service.store,
                    settings,
                    sync=True,
                    recreate=False,
                    progress=progress,
                )
            typer.echo(summary.describe())
            photo = sample / "queries" / "arla-standard-milk.jpg"
            result = await service.search(Query(images=[photo.read_bytes()], limit=3))
            print_result(result, f"\nphoto search: a customer's in-store photo of milk ({photo.name}):")
            result = await service.search(Query(text="banana", limit=3))
            print_result(result, "\ntext search: 'banana':")
            result = await service.search(Query(text="milk", filters=Filters(price_max=25, in_stock=True), limit=3))
            print_result(
                result, "\ntext search with filters: 'milk', in stock, price <= 25 SEK (demo prices are invented):"
            )
            return service.encoder.model_id.split(":", 1)[0]
        finally:
            await service.close()

    used = run(job)
    photo = sample / "queries" / "banana.jpg"
    typer.echo(
        f"\ntry: visearch search --collection demo --encoder {used} --image {photo}"
        f"\n     visearch search --collection demo --encoder {used} --text 'orange' --max-price 30 --in-stock"
        f"\n     VISEARCH_TELEGRAM_TOKEN=<token from @BotFather> visearch bot telegram --collection demo --encoder {used}"
    )


bot_app = typer.Typer(help="Run a messenger bot over the collection.", no_args_is_help=True)
app.add_typer(bot_app, name="bot")


@bot_app.command("telegram")
def bot_telegram(
    framework: Annotated[str, typer.Option("--framework", help="aiogram | ptb (python-telegram-bot)")] = "aiogram",
    webhook: Annotated[
        str | None, typer.Option("--webhook", help="public https URL for a webhook; default: long polling")
    ] = None,
    set_webhook: Annotated[
        str | None, typer.Option("--set-webhook", help="only register this URL (for `visearch serve`) and exit")
    ] = None,
    listen: Annotated[str, typer.Option("--listen", help="webhook mode: address to listen on")] = "0.0.0.0",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="webhook mode: port to listen on")] = 8080,
    shop_name: Annotated[str, typer.Option("--shop-name", help="name shown in /start")] = "Shop",
    encoder: EncoderOpt = None,
    model: ModelOpt = None,
    data_dir: DataDirOpt = None,
    collection: CollectionOpt = None,
) -> None:
    """Answer photos and words sent to your Telegram bot with product cards (token: VISEARCH_TELEGRAM_TOKEN)."""
    if framework not in ("aiogram", "ptb"):
        typer.echo("error: --framework must be aiogram or ptb", err=True)
        raise typer.Exit(2)
    if set_webhook:
        run(lambda: _register_telegram_webhook(set_webhook))
        return
    settings = settings_from(model_dir=model, encoder=encoder, data_dir=data_dir, collection=collection)
    from visearch.bots.telegram.config import load_telegram_settings
    from visearch.bots.telegram.conversation import TelegramConversation
    from visearch.bots.telegram.runner import Framework, make_runner, serve_forever

    chosen: Framework = "ptb" if framework == "ptb" else "aiogram"

    async def job() -> None:
        telegram = load_telegram_settings()
        telegram.require_token()
        conversation = TelegramConversation(telegram, settings, shop_name=shop_name)
        runner = make_runner(chosen, telegram, conversation, webhook, listen, port)
        mode = f"webhook {webhook} (listening on {listen}:{port})" if webhook else "long polling"
        typer.echo(f"loading the model and the collection {settings.collection!r}...", err=True)
        await serve_forever(runner)
        typer.echo(f"stopped ({framework}, {mode})", err=True)

    show_info_logs()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its INFO lines carry URLs, and Bot API URLs carry the token
    run(job)


async def _register_telegram_webhook(url: str) -> None:
    """setWebhook with VISEARCH_TELEGRAM_WEBHOOK_SECRET, or a fresh secret the operator then configures."""
    import secrets as secrets_mod

    from visearch.bots.telegram.aiogram_router import create_bot
    from visearch.bots.telegram.config import load_telegram_settings

    telegram = load_telegram_settings()
    configured = telegram.webhook_secret_value
    fresh = configured is None
    secret = configured or secrets_mod.token_urlsafe(32)
    from aiogram.types import BotCommand

    from visearch.bots.conversation.i18n import Locales, load_locale_settings
    from visearch.bots.conversation.wording import Wordings
    from visearch.bots.telegram.conversation import register_commands

    wordings = Wordings(Locales.from_settings(load_locale_settings()))
    bot = create_bot(telegram)
    try:
        await bot.set_webhook(url, secret_token=secret, drop_pending_updates=False)
        await register_commands(bot, wordings, lambda name, text: BotCommand(command=name, description=text))
    finally:
        await bot.session.close()
    typer.echo(f"Telegram webhook set to {url} (command menu in {len(wordings.locales.available)} languages)")
    if fresh:
        typer.echo(
            "Put this line in the .env of `visearch serve` (it is the only copy):\n"
            f"VISEARCH_TELEGRAM_WEBHOOK_SECRET={secret}"
        )


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="port to listen on")] = 8080,
    encoder: EncoderOpt = None,
    model: ModelOpt = None,
    data_dir: DataDirOpt = None,
    collection: CollectionOpt = None,
) -> None:
    """Serve the search page (/), the HTTP API (/api/v1), the Telegram, Viber and WhatsApp webhooks,
    /healthz, /readyz and /metrics on one port."""
    settings = settings_from(model_dir=model, encoder=encoder, data_dir=data_dir, collection=collection)
    import uvicorn

    from visearch.bots.conversation.i18n import load_locale_settings
    from visearch.bots.server.app import create_app
    from visearch.bots.server.config import load_server_settings
    from visearch.bots.telegram.config import load_telegram_settings

    try:
        server, telegram, locales = load_server_settings(), load_telegram_settings(), load_locale_settings()
    except VisearchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    from visearch.core.store.factory import open_store

    try:  # the data directory's lock, before uvicorn: a second server stops here with one line
        store = open_store(settings)
    except VisearchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    show_info_logs()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    listen_url = server.public_url or f"http://{host}:{port}"
    app_ = create_app(settings, server, telegram, listen_url=listen_url, store=store, locales=locales)
    typer.echo(
        f"visearch serve on http://{host}:{port} (collection {settings.collection!r}): search page at /, "
        "API at /api/v1 (schema: /api/v1/openapi.json)",
        err=True,
    )
    uvicorn.run(
        app_,
        host=host,
        port=port,
        log_level="warning",
        proxy_headers=True,
        limit_concurrency=server.max_connections,
        timeout_keep_alive=5,
    )


@bot_app.command("viber")
def bot_viber(
    set_webhook: Annotated[str, typer.Option("--set-webhook", help="public https URL of /webhooks/viber")],
) -> None:
    """Register the Viber webhook (VISEARCH_VIBER_TOKEN); `visearch serve` must already answer at that URL."""
    from visearch.bots.http import PlatformError
    from visearch.bots.server.config import load_server_settings

    async def job() -> None:
        server = load_server_settings()
        token = server.viber_credential
        if token is None:
            raise VisearchError("VISEARCH_VIBER_TOKEN is not set (the token is in your Viber bot's settings)")
        from visearch.bots.viber.bot import set_webhook as register_viber_webhook

        try:  # registering needs no search: no bot, no queue
            await register_viber_webhook(token, server.viber_api_url, set_webhook)
        except PlatformError as exc:
            typer.echo(f"error: Viber refused the webhook: {exc.description}", err=True)
            raise typer.Exit(1) from None
        typer.echo(f"Viber webhook set to {set_webhook}")

    run(job)


def main() -> None:
    """Console-script entry point."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    for handler in logging.getLogger().handlers:
        handler.addFilter(ModelLibraryChatter())
    app()


#: loggers of the model libraries: their warnings (weights not used, processors, deprecations) are for developers
MODEL_LIBRARIES = ("transformers", "sentence_transformers", "huggingface_hub", "torch", "onnxruntime", "rapidocr")


class ModelLibraryChatter(logging.Filter):
    """Shows the model libraries' log lines below ERROR only with --verbose (our loggers at DEBUG)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR or not record.name.startswith(MODEL_LIBRARIES):
            return True
        return logging.getLogger("visearch").isEnabledFor(logging.DEBUG)


if __name__ == "__main__":
    main()
