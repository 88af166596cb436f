"""The ``watcherd`` command. The only module that prints or exits.

Exit codes: 0 ok, 1 runtime error, 2 bad usage or bad config (the message names key and file).

Each command imports what it uses when it runs: ``watcherd --help`` loads click and little else,
and ``search``/``duplicates`` ask a running ``watcherd serve`` first (``watcherd.web.client``,
standard library only) before they load numpy, or torch for a text.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn

import click

from watcherd import command
from watcherd.meta import ENV_VAR, __version__

if TYPE_CHECKING:
    from watcherd.config import Config


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"watcherd: {message}", err=True)
    sys.exit(code)


def _load(ctx: click.Context, role: str | None = None, *, check_paths: bool = True,
          check_broker: bool | None = None, remote: bool = False, quick: bool = False) -> Config:
    """The config; exit 2 if it is bad. ``check_paths``: the watched folders must exist.
    ``check_broker`` (default: as ``check_paths``): the command will send or take messages, so
    an embedded broker's folder must be on a local filesystem. ``quick``: a short command that
    may log nothing (logging is set up when something logs)."""
    from watcherd import config, logs

    path = ctx.obj.get(command.CONFIG_KEY)
    try:
        cfg = config.load(path, check_paths=check_paths, remote=remote)
        if check_paths if check_broker is None else check_broker:
            from watcherd.broker.app import check_spool  # celery: only where it is used anyway

            check_spool(cfg)
    except config.ConfigError as exc:
        _fail(str(exc), 2)
    logs.setup(cfg.log.level, cfg.log.format, role=role, lazy=quick)
    return cfg


def _connect(cfg: Config) -> Any:
    from watcherd.store import schema

    try:
        return schema.connect(cfg.database.path)
    except Exception as exc:
        _fail(f"cannot open database {cfg.database.path}: {exc}", 1)


#: The commands that run until told to stop. Each installs its own SIGTERM/SIGINT handling once
#: it is up (the supervisor's, the watcher's, Celery's, uvicorn's); until then, a stop ends the
#: start cleanly: exit 0 and ``finally`` blocks run, instead of death by the signal while the
#: process imports or loads its model.
DAEMONS = frozenset({"run", "watch", "worker", "serve"})


def _stop_while_starting(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


@click.group(cls=command.Group, config_envvar=ENV_VAR,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="watcherd")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Watch photo folders; make thumbnails and CLIP embeddings; record them in SQLite.

    Every command takes -c/--config FILE, before or after its name."""
    ctx.ensure_object(dict)
    if ctx.invoked_subcommand in DAEMONS:
        signal.signal(signal.SIGTERM, _stop_while_starting)
        signal.signal(signal.SIGINT, _stop_while_starting)


@main.command()
@click.pass_context
def run(ctx: click.Context) -> None:
    """Watcher + thumbnail worker + embedding worker in the foreground."""
    from watcherd.supervisor import Supervisor, default_children

    cfg = _load(ctx, "supervisor")
    _connect(cfg).close()  # schema ready before any child starts
    assert cfg.file is not None
    code = Supervisor(default_children(str(cfg.file))).run()
    sys.exit(code)


def _stop_on_signals(stop: Callable[[], None]) -> None:
    def handler(_signum: int, _frame: object) -> None:
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


@main.command()
@click.pass_context
def watch(ctx: click.Context) -> None:
    """The watcher alone (systemd: watcherd.service)."""
    import dataclasses

    from watcherd import logs, sdnotify
    from watcherd.broker.app import make_app
    from watcherd.watch.loop import Watcher

    cfg = _load(ctx, "watcher")
    log = logs.get("watcherd.cli")
    watcher = Watcher(cfg, make_app(cfg))
    _stop_on_signals(watcher.stop)
    last_status = [0.0]

    def report(w: Watcher) -> None:  # systemd's STATUS line, every few seconds
        if time.monotonic() - last_status[0] >= 5:
            last_status[0] = time.monotonic()
            sdnotify.notify(f"STATUS={w.status_line()}")

    try:
        watcher.start()  # observing; the first reconcile runs in the loop, after READY
        sdnotify.notify(f"READY=1\nSTATUS={watcher.status_line()}, first scan running")
        watcher.run(on_tick=report)
    finally:
        sdnotify.notify("STOPPING=1")
        watcher.close()
        log.info("watcher stopped", **dataclasses.asdict(watcher.stats))


@main.command()
@click.argument("kind", type=click.Choice(["thumbnails", "embeddings"]))
@click.pass_context
def worker(ctx: click.Context, kind: str) -> None:
    """One Celery worker: `thumbnails` (prefork pool) or `embeddings` (solo pool, CLIP)."""
    from watcherd.worker.runner import run_worker

    # An embedding worker may run on another machine, with only [broker] and [embeddings].
    cfg = _load(ctx, f"worker-{kind}", remote=kind == "embeddings")
    if cfg.local:
        _connect(cfg).close()
    sys.exit(run_worker(cfg, kind))


def _under_watched(cfg: Config, path: Path) -> Path:
    for root in cfg.watch.paths:
        if path == root or root in path.parents:
            return path
    _fail(f"{path} is not under a watched folder ({', '.join(map(str, cfg.watch.paths))})", 2)


@main.command()
@click.argument("path", required=False, type=click.Path(exists=True, file_okay=False))
@click.pass_context
def scan(ctx: click.Context, path: str | None) -> None:
    """One reconcile pass now; prints what it queued."""
    from watcherd.broker.app import make_app
    from watcherd.watch.loop import Watcher

    cfg = _load(ctx, "scan")
    roots = [_under_watched(cfg, Path(path).resolve())] if path else list(cfg.watch.paths)
    watcher = Watcher(cfg, make_app(cfg))
    try:
        watcher.start(observe=False)
        totals = watcher.scan_once(roots, timeout=cfg.watch.settle_seconds + 3600)
        sent = watcher.outbox.sent_total
    finally:
        watcher.close()
    click.echo(f"scanned {', '.join(map(str, roots))}: {totals['new_or_changed']} new or "
               f"changed, {totals['unchanged']} unchanged, {totals['deleted']} marked deleted; "
               f"queued {sent['thumbnail']} thumbnail and {sent['embedding']} embedding tasks")
    if not watcher.outbox.broker_ok:
        click.echo("broker unreachable: rows stay pending and the watcher sends them later",
                   err=True)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Counts per status, failures with reasons, queue backlog, worker state."""
    from watcherd import status as status_model
    from watcherd import status_text

    cfg = _load(ctx, "status", check_paths=False)
    conn = _connect(cfg)
    report = status_model.collect(cfg, conn)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    for line in status_text.lines(report):
        click.echo(line)


@main.command()
@click.option("--failed", is_flag=True, help="Also re-queue failed rows.")
@click.pass_context
def retry(ctx: click.Context, failed: bool) -> None:
    """Re-queue stuck (pending) rows now, and failed ones with --failed."""
    from watcherd.broker.app import make_app
    from watcherd.dispatch.outbox import Outbox
    from watcherd.store import admin

    cfg = _load(ctx, "retry", check_paths=False, check_broker=True)
    conn = _connect(cfg)
    counts = admin.requeue(conn, failed=failed)
    outbox = Outbox(make_app(cfg), conn, cfg)
    sent = outbox.send_due()
    click.echo(f"re-queued {counts['thumbnail']} thumbnail and {counts['embedding']} embedding "
               f"rows; sent {sent['thumbnail']} + {sent['embedding']} tasks")
    if not outbox.broker_ok:
        click.echo("broker unreachable: the watcher sends them when it is back", err=True)


@main.command()
@click.option("--older-than", "older_than", type=click.FloatRange(min=0), metavar="DAYS",
              help="Photos deleted more than DAYS ago (default: [database] keep_deleted_days).")
@click.option("--vacuum", "do_vacuum", is_flag=True,
              help="Then VACUUM, giving the space back to the filesystem (blocks writers while "
                   "it runs; needs free disk about the database's size).")
@click.option("--model", metavar="M", help="Instead: remove every vector of this stored model "
              "(not the configured one), e.g. after a model change.")
@click.option("--pretrained", metavar="P", help="With --model: which of its stored weights.")
@click.option("--thumbnail-size", "thumbnail_sizes", type=click.IntRange(min=1), multiple=True,
              metavar="N", help="Instead: remove the thumbnails of this size (not a configured "
              "one); repeatable.")
@click.pass_context
def purge(ctx: click.Context, older_than: float | None, do_vacuum: bool, model: str | None,
          pretrained: str | None, thumbnail_sizes: tuple[int, ...]) -> None:
    """Remove the rows, thumbnails and embeddings of photos deleted long ago; or (--model,
    --thumbnail-size) an old model's vectors or thumbnails of sizes no longer configured.
    No prompt."""
    from watcherd.store import admin

    cfg = _load(ctx, "purge", check_paths=False)
    conn = _connect(cfg)
    if pretrained is not None and model is None:
        _fail("--pretrained needs --model", 2)
    only_old = model is not None or bool(thumbnail_sizes)
    if model is not None:
        _purge_model(cfg, conn, model, pretrained)
    if thumbnail_sizes:
        kept = sorted(set(thumbnail_sizes) & set(cfg.thumbnails.sizes))
        if kept:
            _fail(f"--thumbnail-size {kept[0]}: a configured size ([thumbnails] sizes in "
                  f"{cfg.file}); remove it from the config first", 2)
        n, size = admin.purge_thumbnail_sizes(conn, thumbnail_sizes)
        click.echo(f"removed {n} thumbnails of size "
                   f"{', '.join(map(str, sorted(set(thumbnail_sizes))))} ({size / 1e6:.1f} MB)")
    days = cfg.database.keep_deleted_days if older_than is None else older_than
    if only_old and older_than is None:
        pass
    elif older_than is None and days == 0:
        click.echo("[database] keep_deleted_days is 0 (keep for ever): nothing purged; "
                   "pass --older-than DAYS")
    else:
        r = admin.purge_deleted(conn, days)
        click.echo(f"removed {r.images} photos deleted more than {days:g} days ago, with "
                   f"{r.thumbnails} thumbnails and {r.embeddings} embeddings "
                   f"({r.bytes / 1e6:.1f} MB)")
    if do_vacuum:
        try:
            before, after = admin.vacuum(conn)
        except Exception as exc:
            _fail(f"VACUUM failed (is the disk full? a long reader open?): {exc}", 1)
        click.echo(f"vacuumed {cfg.database.path}: {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB")
    elif older_than is not None or days or only_old:
        click.echo("the database file keeps its size until `watcherd purge --vacuum`")


def _purge_model(cfg: Config, conn: Any, model: str, pretrained: str | None) -> None:
    from watcherd import models
    from watcherd.search.model_choice import NoVectorsError, choose_model
    from watcherd.search.ranking import QueryError
    from watcherd.store import admin

    configured = models.configured_key(cfg, conn)
    try:
        key = choose_model(conn, configured, model, pretrained)
    except (QueryError, NoVectorsError) as exc:
        _fail(f"--model: {exc}", 2)
    if key == configured:
        _fail(f"--model: {key.describe()} is the configured model ([embeddings] in {cfg.file}); "
              "its vectors are the ones in use", 2)
    n, size = admin.purge_model(conn, key.model, key.pretrained)
    click.echo(f"removed {n} vectors of model {key.describe()} ({size / 1e6:.1f} MB)")


@main.command()
@click.pass_context
def migrate(ctx: click.Context) -> None:
    """Create or upgrade the database schema (idempotent)."""
    from watcherd.store import migrations, schema

    cfg = _load(ctx, "migrate", check_paths=False)
    try:
        conn = schema.connect(cfg.database.path, migrate_schema=False)
        before, after = migrations.migrate(conn)
    except Exception as exc:
        _fail(f"migration failed: {exc}", 1)
    click.echo(f"{cfg.database.path}: schema version {before} -> {after}"
               if before != after else f"{cfg.database.path}: schema is current ({after})")


@main.command("install-systemd")
@click.option("--watch", "watch_paths", multiple=True, metavar="FOLDER",
              type=click.Path(file_okay=False, path_type=Path),
              help="Folder to watch, written into a new config (repeatable; default /srv/photos).")
@click.option("-c", "--config", "--config-file", "config_file", metavar="FILE",
              type=click.Path(dir_okay=False, path_type=Path),
              help="The services' config, before or after the command name; created from "
                   "config.example.toml if missing (default: /etc/watcherd/watcherd.toml; "
                   "$WATCHERD_CONFIG is not used here).")
@click.option("--dest", type=click.Path(file_okay=False, path_type=Path),
              default=Path("/etc/systemd/system"), show_default=True,
              help="Where the unit files go.")
@click.option("--no-reload", is_flag=True,
              help="Only write files: no systemd-sysusers, no daemon-reload (image builds).")
@click.option("--remote-worker", is_flag=True,
              help="On a machine that embeds for a photo server: install only "
                   "watcherd-remote-embeddings and /etc/watcherd/remote.toml "
                   "(docs/remote-workers.md).")
@click.option("--broker-address", "broker_addresses", multiple=True, metavar="IP",
              help="With --remote-worker: the broker's IP address or network, which the unit "
                   "may reach besides localhost (repeatable).")
@click.pass_context
def install_systemd(ctx: click.Context, watch_paths: tuple[Path, ...], config_file: Path | None,
                    dest: Path, no_reload: bool, remote_worker: bool,
                    broker_addresses: tuple[str, ...]) -> None:
    """Install the systemd units (watcherd, watcherd-thumbnails, watcherd-embeddings,
    watcherd-web), the watcherd system user and a config; see docs/systemd.md. With
    --remote-worker, the remote embedding worker's unit and config instead."""
    from watcherd import install

    if config_file is None:  # -c typed before the command counts; $WATCHERD_CONFIG does not
        before = ctx.ensure_object(dict)
        config_file = (Path(before[command.CONFIG_KEY]) if before.get(command.CONFIG_GIVEN_KEY)
                       else install.REMOTE_CONFIG_PATH if remote_worker
                       else install.CONFIG_PATH)
    if remote_worker:
        if watch_paths:
            _fail("--watch does not go with --remote-worker: a remote worker watches no folder",
                  2)
        _install_remote(config_file, dest, no_reload, broker_addresses)
        return
    if broker_addresses:
        _fail("--broker-address goes with --remote-worker", 2)
    folders = [str(p.absolute()) for p in watch_paths] or ["/srv/photos"]
    _installed(lambda: install.install(dest, config_path=config_file.absolute(),
                                       watch_paths=folders, reload=not no_reload),
               f"next: check {config_file}, then `systemctl enable --now watcherd`; "
               "logs: journalctl -u watcherd -u 'watcherd-*' -o cat")


def _install_remote(config_file: Path, dest: Path, no_reload: bool,
                    broker_addresses: tuple[str, ...]) -> None:
    from watcherd import install

    _installed(lambda: install.install_remote(dest, config_path=config_file.absolute(),
                                              broker_addresses=broker_addresses,
                                              reload=not no_reload),
               f"next: set the photo server's model in {config_file}, put the broker URL in "
               f"{install.BROKER_URL_PATH} (mode 0600), then `systemctl enable --now "
               "watcherd-remote-embeddings`; logs: journalctl -u watcherd-remote-embeddings "
               "-o cat")


def _installed(do: Callable[[], list[str]], next_step: str) -> None:
    """Run an install, print what it did and what to do next; its error exits 1."""
    from watcherd import install

    try:
        actions = do()
    except install.InstallError as exc:
        _fail(str(exc), 1)
    for line in actions:
        click.echo(line)
    click.echo(next_step)


@main.command()
@click.pass_context
def serve(ctx: click.Context) -> None:
    """The search page, the JSON API and /metrics on [web] listen."""
    cfg = _load(ctx, "serve", check_paths=False)
    from watcherd.web import server

    try:
        server.check(cfg)
    except server.TokenRequired as exc:
        _fail(str(exc), 2)
    if not cfg.database.path.is_file():
        _fail(f"cannot open database {cfg.database.path}: no such file (start the watcher "
              "first, or run `watcherd migrate`)", 1)
    try:
        server.serve(cfg)
    except (OSError, RuntimeError) as exc:
        _fail(str(exc), 1)


# ------------------------------------------------------------------------- search, duplicates


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
        _fail(f"cannot open database {cfg.database.path}: {exc}", 1)


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
        _fail(str(exc), 2)
    except ModelUnavailable as exc:
        _fail(f"cannot load the model: {exc}", 1)
    except (NoVectorsError, VectorError, sqlite3.Error) as exc:
        _fail(str(exc), 1)


def _served_error(answer: Any) -> NoReturn:
    """An error answer of the server (watcherd.web.client: 400 or 404) as in-process would
    end: a bad query exits 2, no vectors at all exits 1; the same reason."""
    _fail(answer.reason, 2 if answer.status == 400 else 1)


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


def _served_search(cfg: Config, a: _SearchArgs) -> _Found | None:
    """The answer of a running `watcherd serve` of this config, or None (answer in-process)."""
    from watcherd.web import client

    params = client.search_params(cfg.database.path, text=a.text, images=a.images,
                                  not_texts=a.not_texts, not_images=a.not_images, n=a.n,
                                  min_score=a.min_score, under=a.under, model=a.model,
                                  pretrained=a.pretrained)
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
    from watcherd.search import service
    from watcherd.search.engine import Query, hits_json
    from watcherd.search.full_scan import ScanSource

    conn = _open_for_search(cfg)
    query = Query(texts=(a.text,) if a.text is not None else (), images=a.images,
                  not_texts=a.not_texts, not_images=a.not_images, n=a.n, min_score=a.min_score,
                  under=a.under)
    e = cfg.embeddings

    def run() -> Any:
        return service.search(
            conn, query, configured=models.configured_key(cfg, conn), model=a.model,
            pretrained=a.pretrained, source=lambda key: ScanSource(conn, key),
            encoder=lambda key: service.load_encoder(*models.loadable(cfg, conn, key),
                                                     e.device, e.precision),
            max_pixels=cfg.images.max_pixels)

    results = _search_errors(run)
    return _Found(results.note, results.model.describe(), results.considered,
                  hits_json(results.hits))


_LOCAL_HELP = ("Answer in this process, even when a `watcherd serve` of this config is running "
               "(by default it is asked first).")


@main.command()
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
           pretrained: str | None, as_json: bool, as_paths: bool, local: bool) -> None:
    """Photos ranked by similarity to TEXT and/or --image, away from --not/--not-image.

    A running `watcherd serve` of the same config answers what its API can (texts, indexed
    photos); the rest is answered in this process."""
    if as_json and as_paths:
        _fail("--json and --paths exclude each other", 2)
    cfg = _load(ctx, "search", check_paths=False, quick=True)
    folder = None
    if under is not None:
        folder = os.path.abspath(os.path.expanduser(under))
        if not os.path.isdir(folder):
            _fail(f"--under {under}: no such folder", 2)
    args = _SearchArgs(" ".join(text) if text else None, images, not_texts, not_images, n,
                       min_score, folder, model, pretrained)
    started = time.perf_counter()
    found = (None if local else _served_search(cfg, args)) or _local_search(cfg, args)
    _note(found.note)
    click.echo(f"model {found.model}: {len(found.hits)} of {found.considered} photos "
               f"({time.perf_counter() - started:.2f} s)", err=True)
    hits = found.hits
    if as_json:
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


@main.command()
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
    cfg = _load(ctx, "duplicates", check_paths=False, quick=True)
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
