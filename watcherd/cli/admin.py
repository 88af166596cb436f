"""The short commands an operator runs against an installation: ``scan`` now, ``status``,
``retry`` what is stuck, ``purge`` what is deleted or no longer configured, ``migrate`` the
schema.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from watcherd.cli.prelude import connect, fail, load_config

if TYPE_CHECKING:
    from watcherd.config import Config


def _under_watched(cfg: Config, path: Path) -> Path:
    for root in cfg.watch.paths:
        if path == root or root in path.parents:
            return path
    fail(f"{path} is not under a watched folder ({', '.join(map(str, cfg.watch.paths))})", 2)


@click.command()
@click.argument("path", required=False, type=click.Path(exists=True, file_okay=False))
@click.pass_context
def scan(ctx: click.Context, path: str | None) -> None:
    """One reconcile pass now; prints what it queued."""
    from watcherd.broker.app import make_app
    from watcherd.watch.loop import Watcher

    cfg = load_config(ctx, "scan")
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


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Counts per status, failures with reasons, queue depths, worker state."""
    from watcherd import status as status_model
    from watcherd import status_text

    cfg = load_config(ctx, "status", check_paths=False)
    conn = connect(cfg)
    report = status_model.collect(cfg, conn)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    for line in status_text.lines(report):
        click.echo(line)


@click.command()
@click.option("--failed", is_flag=True, help="Also re-queue failed rows.")
@click.option("--metadata", "metadata", is_flag=True,
              help="Also read every photo's metadata again (not its pixels), e.g. after "
                   "sidecars changed while watcherd was stopped; the watcher feeds them behind "
                   "new photos.")
@click.pass_context
def retry(ctx: click.Context, failed: bool, metadata: bool) -> None:
    """Re-queue stuck (pending) rows now, and failed ones with --failed."""
    from watcherd.broker.app import make_app
    from watcherd.dispatch.outbox import Outbox
    from watcherd.store import admin
    from watcherd.store import metadata as stored_metadata

    cfg = load_config(ctx, "retry", check_paths=False, check_broker=True)
    conn = connect(cfg)
    if metadata:
        n = stored_metadata.mark_all_due(conn)
        click.echo(f"metadata of {n} photos to read again")
    counts = admin.requeue(conn, failed=failed)
    outbox = Outbox(make_app(cfg), conn, cfg)
    sent = outbox.send_due()
    click.echo(f"re-queued {counts['thumbnail']} thumbnail and {counts['embedding']} embedding "
               f"rows; sent {sent['thumbnail']} + {sent['embedding']} tasks")
    if not outbox.broker_ok:
        click.echo("broker unreachable: the watcher sends them when it is back", err=True)


@click.command()
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

    cfg = load_config(ctx, "purge", check_paths=False)
    conn = connect(cfg)
    if pretrained is not None and model is None:
        fail("--pretrained needs --model", 2)
    only_old = model is not None or bool(thumbnail_sizes)
    if model is not None:
        _purge_model(cfg, conn, model, pretrained)
    if thumbnail_sizes:
        kept = sorted(set(thumbnail_sizes) & set(cfg.thumbnails.sizes))
        if kept:
            fail(f"--thumbnail-size {kept[0]}: a configured size ([thumbnails] sizes in "
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
            fail(f"VACUUM failed (is the disk full? a long reader open?): {exc}", 1)
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
        fail(f"--model: {exc}", 2)
    if key == configured:
        fail(f"--model: {key.describe()} is the configured model ([embeddings] in {cfg.file}); "
             "its vectors are the ones in use", 2)
    n, size = admin.purge_model(conn, key.model, key.pretrained)
    click.echo(f"removed {n} vectors of model {key.describe()} ({size / 1e6:.1f} MB)")


@click.command()
@click.pass_context
def migrate(ctx: click.Context) -> None:
    """Create or upgrade the database schema (idempotent)."""
    from watcherd.store import migrations, schema

    cfg = load_config(ctx, "migrate", check_paths=False)
    try:
        conn = schema.connect(cfg.database.path, migrate_schema=False)
        before, after = migrations.migrate(conn)
    except Exception as exc:
        fail(f"migration failed: {exc}", 1)
    click.echo(f"{cfg.database.path}: schema version {before} -> {after}"
               if before != after else f"{cfg.database.path}: schema is current ({after})")
