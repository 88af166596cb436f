"""``search`` and ``duplicates``: a running ``watcherd serve`` of the same config is asked first
(``watcherd.web.client``, standard library only), and only without one does the command load
numpy, and torch for a text, to answer in this process.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn

import click

from watcherd.cli.prelude import fail, load_config

if TYPE_CHECKING:
    from watcherd.config import Config


def _open_for_search(cfg: Config) -> Any:
    import logging
    import sqlite3

    # open_clip reports every step of a model load at INFO on the root logger: noise around
    # the results of an interactive command. Warnings and errors still show.
    root = logging.getLogger()
    root.setLevel(max(root.level, logging.WARNING))

    from watcherd.store import vectors

    try:
        return vectors.connect_readonly(cfg.database.path, mmap=True)
    except (OSError, sqlite3.Error) as exc:
        fail(f"cannot open database {cfg.database.path}: {exc}", 1)


def _search_errors(run: Callable[[], Any]) -> Any:
    """Bad input exits 2 with its reason; a model or database problem exits 1."""
    import sqlite3

    from watcherd.search.model_choice import NoVectorsError
    from watcherd.search.ranking import QueryError
    from watcherd.search.service import ModelUnavailable
    from watcherd.store.vectors import VectorError

    try:
        return run()
    except QueryError as exc:
        fail(str(exc), 2)
    except ModelUnavailable as exc:
        fail(f"cannot load the model: {exc}", 1)
    except (NoVectorsError, VectorError, sqlite3.Error) as exc:
        fail(str(exc), 1)


def _served_error(answer: Any) -> NoReturn:
    """An error answer of the server (watcherd.web.client: 400 or 404) as in-process would
    end: a bad query exits 2, no vectors at all exits 1; the same reason."""
    fail(answer.reason, 2 if answer.status == 400 else 1)


def _note(note: str | None) -> None:
    if note:
        click.echo(f"note: {note}", err=True)


def _describe(model: str, pretrained: str) -> str:
    from watcherd.store.readonly import ModelKey

    return ModelKey(model, pretrained).describe()


class _Found(NamedTuple):
    """One search's answer, from a server or in-process: what the command prints."""

    note: str | None
    model: str  # described
    considered: int
    hits: list[dict[str, Any]]  # {"image_id", "path", "score"} (as --json prints them)


class _SearchArgs(NamedTuple):
    text: str | None  # the words of TEXT, joined
    images: tuple[str, ...]
    not_texts: tuple[str, ...]
    not_images: tuple[str, ...]
    n: int
    min_score: float | None
    under: str | None  # absolute
    model: str | None
    pretrained: str | None
    filters: dict[str, str]  # the filter options given (name -> value), checked

    @property
    def listing(self) -> bool:
        return bool(self.filters) and not (self.text is not None or self.images
                                           or self.not_texts or self.not_images)


_FILTERS = ("taken", "place", "near", "camera", "keyword")


def _filters(given: dict[str, str | None]) -> dict[str, str]:
    """The filter options given, checked (a bad one exits 2 naming it)."""
    from watcherd.search.filters import FilterError, parse

    try:
        parse(**given)
    except FilterError as exc:
        fail(str(exc), 2)
    return {k: v for k, v in given.items() if v is not None and v.strip()}


def _served_search(cfg: Config, a: _SearchArgs) -> _Found | None:
    """The answer of a running `watcherd serve` of this config, or None (answer in-process)."""
    from watcherd.web import client

    params = client.search_params(cfg.database.path, text=a.text, images=a.images,
                                  not_texts=a.not_texts, not_images=a.not_images, n=a.n,
                                  min_score=a.min_score, under=a.under, model=a.model,
                                  pretrained=a.pretrained, filters=a.filters)
    answer = None if params is None else client.ask(cfg, "/api/search", params,
                                                    timeout=client.SEARCH_TIMEOUT_S)
    if answer is None:
        return None
    if answer.status != 200:
        if a.images or a.not_images:
            return None  # e.g. a photo without a vector of that model: in-process embeds its file
        _served_error(answer)
    body = answer.body
    return _Found(body["note"], _describe(body["model"]["model"], body["model"]["pretrained"]),
                  int(body["considered"]), list(body["results"]))


def _local_search(cfg: Config, a: _SearchArgs) -> _Found:
    from watcherd import models
    from watcherd.search import filters, service
    from watcherd.search.engine import Query, hits_json
    from watcherd.search.full_scan import ScanSource

    conn = _open_for_search(cfg)
    query = Query(texts=(a.text,) if a.text is not None else (), images=a.images,
                  not_texts=a.not_texts, not_images=a.not_images, n=a.n, min_score=a.min_score,
                  under=a.under, filters=filters.parse(**a.filters))
    e = cfg.embeddings

    def run() -> Any:
        from watcherd.media.options import Options

        return service.search(
            conn, query, configured=models.configured_key(cfg, conn), model=a.model,
            pretrained=a.pretrained, source=lambda key: ScanSource(conn, key),
            encoder=lambda key: service.load_encoder(*models.loadable(cfg, conn, key),
                                                     e.device, e.precision),
            max_pixels=cfg.images.max_pixels,
            options=Options.of(cfg.images.max_pixels, cfg.thumbnails.sizes,
                               cfg.raw.prefer_embedded_preview))

    results = _search_errors(run)
    return _Found(results.note, results.model.describe(), results.considered,
                  hits_json(results.hits))


_LOCAL_HELP = ("Answer in this process, even when a `watcherd serve` of this config is running "
               "(by default it is asked first).")


@click.command()
@click.argument("text", nargs=-1)
@click.option("--image", "images", multiple=True, metavar="PATH",
              help="Photos like this one (an indexed photo, or any image file; repeatable).")
@click.option("--not", "not_texts", multiple=True, metavar="TEXT",
              help="Away from this text (repeatable).")
@click.option("--not-image", "not_images", multiple=True, metavar="PATH",
              help="Away from this photo (repeatable).")
@click.option("-n", "n", type=int, default=20, show_default=True, help="Number of results.")
@click.option("--min-score", type=float, metavar="S", help="Only results scoring at least S.")
@click.option("--under", metavar="FOLDER", help="Only photos below this folder.")
@click.option("--taken", metavar="SPEC", help="Only photos taken then: 2019, 2019-06, "
              "2019-06-01, or FROM..TO of those (inclusive).")
@click.option("--place", metavar="TEXT", help="Only photos taken in this country, region or "
              "place (a name, any case or accents, or an ISO country code).")
@click.option("--near", metavar="LAT,LON[,KM]", help="Only photos taken within KM (default 1) "
              "of this point.")
@click.option("--camera", metavar="TEXT", help="Only photos whose camera make or model "
              "contains TEXT (any case).")
@click.option("--keyword", metavar="TEXT", help="Only photos with this keyword.")
@click.option("--model", metavar="M", help="Search this stored model's vectors "
              "(default: [embeddings] model).")
@click.option("--pretrained", metavar="P", help="With --model: which stored weights.")
@click.option("--json", "as_json", is_flag=True, help="A JSON array of {image_id, path, score}.")
@click.option("--paths", "as_paths", is_flag=True, help="Paths only, one per line.")
@click.option("--local", is_flag=True, help=_LOCAL_HELP)
@click.pass_context
def search(ctx: click.Context, text: tuple[str, ...], images: tuple[str, ...],
           not_texts: tuple[str, ...], not_images: tuple[str, ...], n: int,
           min_score: float | None, under: str | None, model: str | None,
           pretrained: str | None, as_json: bool, as_paths: bool, local: bool,
           **filter_options: str | None) -> None:
    """Photos ranked by similarity to TEXT and/or --image, away from --not/--not-image;
    only those matching the filters (--taken, --place, --near, --camera, --keyword). With
    filters and no query: the matching photos, newest taken first.

    A running `watcherd serve` of the same config answers what its API can (texts, indexed
    photos); the rest is answered in this process."""
    if as_json and as_paths:
        fail("--json and --paths exclude each other", 2)
    given = _filters({k: filter_options.get(k) for k in _FILTERS})
    cfg = load_config(ctx, "search", check_paths=False, quick=True)
    folder = None
    if under is not None:
        folder = os.path.abspath(os.path.expanduser(under))
        if not os.path.isdir(folder):
            fail(f"--under {under}: no such folder", 2)
    args = _SearchArgs(" ".join(text) if text else None, images, not_texts, not_images, n,
                       min_score, folder, model, pretrained, given)
    started = time.perf_counter()
    found = (None if local else _served_search(cfg, args)) or _local_search(cfg, args)
    _note(found.note)
    what = (f"{len(found.hits)} of {found.considered} matching photos, newest taken first"
            if args.listing else
            f"model {found.model}: {len(found.hits)} of {found.considered} photos")
    click.echo(f"{what} ({time.perf_counter() - started:.2f} s)", err=True)
    _print_hits(found.hits, as_json=as_json, as_paths=as_paths)


def _print_hits(hits: list[dict[str, Any]], *, as_json: bool, as_paths: bool) -> None:
    """Score (or, in a listing, when taken) and path per line; or --json, or --paths."""
    listing = bool(hits) and hits[0]["score"] is None
    if listing and not (as_json or as_paths):  # when taken, in place of a score
        for h in hits:
            click.echo(f"{h.get('taken_at') or '?'}\t{h['path']}")
    elif as_json:
        click.echo(json.dumps(hits, indent=2))
    elif as_paths:
        for h in hits:
            click.echo(h["path"])
    elif sys.stdout.isatty():
        width = max((len(f"{h['score']:.4f}") for h in hits), default=0)
        for h in hits:
            click.echo(f"{h['score']:>{width}.4f}  {h['path']}")
    else:
        for h in hits:
            click.echo(f"{h['score']:.4f}\t{h['path']}")


def _served_duplicates(cfg: Config, threshold: float, model: str | None,
                       pretrained: str | None) -> tuple[dict[str, Any], int] | None:
    """(report, photos compared) from a running `watcherd serve` of this config, or None."""
    from watcherd.web import client

    params = client.duplicates_params(threshold, model, pretrained)
    answer = None if params is None else client.ask(cfg, "/api/duplicates", params,
                                                    timeout=client.DUPLICATES_TIMEOUT_S)
    compared = None if answer is None else answer.header(client.COMPARED_HEADER)
    if answer is None or (answer.status == 200 and compared is None):
        return None
    _note(answer.header(client.NOTE_HEADER))
    if answer.status != 200:
        _served_error(answer)
    return answer.body, int(compared or 0)


def _local_duplicates(cfg: Config, threshold: float, model: str | None,
                      pretrained: str | None) -> tuple[dict[str, Any], int]:
    from watcherd import models
    from watcherd.search.duplicates import find_duplicates, report
    from watcherd.search.model_choice import pick

    conn = _open_for_search(cfg)
    choice = _search_errors(lambda: pick(conn, models.configured_key(cfg, conn), model,
                                         pretrained))
    _note(choice.note)
    found = _search_errors(lambda: find_duplicates(conn, choice.key, threshold))
    return report(found), found.compared


@click.command()
@click.option("--threshold", type=float, metavar="T",
              help="Near-identical at cosine >= T (default: [search] duplicate_threshold, 0.99).")
@click.option("--model", metavar="M", help="Compare this stored model's vectors "
              "(default: [embeddings] model).")
@click.option("--pretrained", metavar="P", help="With --model: which stored weights.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--local", is_flag=True, help=_LOCAL_HELP)
@click.pass_context
def duplicates(ctx: click.Context, threshold: float | None, model: str | None,
               pretrained: str | None, as_json: bool, local: bool) -> None:
    """Groups of identical files (same sha256), then of near-identical photos.

    A running `watcherd serve` of the same config answers it when it can."""
    cfg = load_config(ctx, "duplicates", check_paths=False, quick=True)
    t = cfg.search.duplicate_threshold if threshold is None else threshold
    started = time.perf_counter()
    found = ((None if local else _served_duplicates(cfg, t, model, pretrained))
             or _local_duplicates(cfg, t, model, pretrained))
    out, compared = found
    click.echo(f"model {_describe(out['model'], out['pretrained'])}: {len(out['identical'])} "
               f"groups of identical files, {len(out['near'])} of near-identical photos "
               f"(cosine >= {t:g}) among {compared} distinct photos "
               f"({time.perf_counter() - started:.1f} s)", err=True)
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    for g in out["identical"]:
        click.echo(f"identical ({len(g['photos'])} files, sha256 {g['sha256'][:12]})")
        for p in g["photos"]:
            click.echo(f"  {p['path']}")
    for g in out["near"]:
        click.echo(f"near-identical ({len(g['photos'])} photos)")
        paths = {p["image_id"]: p["path"] for p in g["photos"]}
        for p in g["photos"]:
            click.echo(f"  {p['path']}")
        for pair in g["pairs"]:
            click.echo(f"    {pair['score']:.4f}  {paths[pair['a']]}  ~  {paths[pair['b']]}")
