"""The ``watcherd`` command. The only module that prints or exits.

Exit codes: 0 ok, 1 runtime error, 2 bad usage or bad config (the message names key and file).
"""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click

from watcherd import __version__, config, logs, sdnotify
from watcherd.config import Config, ConfigError
from watcherd.store import db


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"watcherd: {message}", err=True)
    sys.exit(code)


def _load(ctx: click.Context, role: str | None = None, *, check_paths: bool = True) -> Config:
    path = ctx.obj.get("config")
    try:
        cfg = config.load(path, check_paths=check_paths)
    except ConfigError as exc:
        _fail(str(exc), 2)
    logs.setup(cfg.log.level, cfg.log.format, role=role)
    return cfg


def _connect(cfg: Config) -> Any:
    try:
        return db.connect(cfg.database.path)
    except Exception as exc:
        _fail(f"cannot open database {cfg.database.path}: {exc}", 1)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-c", "--config", "config_path", envvar=config.ENV_VAR, metavar="FILE",
              type=click.Path(dir_okay=False), help="Config file (default: $WATCHERD_CONFIG).")
@click.version_option(__version__, prog_name="watcherd")
@click.pass_context
def main(ctx: click.Context, config_path: str | None) -> None:
    """Watch photo folders; make thumbnails and CLIP embeddings; record them in SQLite."""
    ctx.ensure_object(dict)
    ctx.obj["config"] = config_path


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
    from watcherd.queue.app import make_app
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
        log.info("watcher stopped", **watcher.stats)


@main.command()
@click.argument("kind", type=click.Choice(["thumbnails", "embeddings"]))
@click.pass_context
def worker(ctx: click.Context, kind: str) -> None:
    """One Celery worker: `thumbnails` (prefork pool) or `embeddings` (solo pool, CLIP)."""
    from watcherd.worker.runner import run_worker

    cfg = _load(ctx, f"worker-{kind}")
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
    from watcherd.queue.app import make_app
    from watcherd.watch.loop import Watcher

    cfg = _load(ctx, "scan")
    roots = [_under_watched(cfg, Path(path).resolve())] if path else list(cfg.watch.paths)
    watcher = Watcher(cfg, make_app(cfg))
    try:
        totals = watcher.rescan(roots)
        deadline = time.monotonic() + cfg.watch.settle_seconds + 30
        while watcher.candidates and time.monotonic() < deadline:
            time.sleep(0.2)
            watcher._settle()
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
    from watcherd.queue.app import make_app, queue_depths

    cfg = _load(ctx, "status", check_paths=False)
    conn = _connect(cfg)
    report: dict[str, Any] = {
        "database": str(cfg.database.path),
        "counts": db.status_counts(conn),
        "failures": db.failures(conn, limit=20),
        "workers": _workers(cfg, db.worker_states(conn)),
        "broker": cfg.broker.url or f"embedded ({cfg.spool_dir})",
    }
    try:
        report["queues"] = queue_depths(make_app(cfg), cfg)
    except Exception as exc:
        report["queues"] = None
        report["broker_error"] = str(exc)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    c = report["counts"]
    click.echo(f"database    {report['database']}")
    click.echo(f"images      {c['images']['total']} ({c['images']['deleted']} deleted)")
    for kind in db.KINDS:
        k = c[kind]
        click.echo(f"{kind + 's':<12}{k['done']} done, {k['pending']} pending, "
                   f"{k['failed']} failed")
    if report["queues"] is None:
        click.echo(f"broker      {report['broker']}: UNREACHABLE ({report['broker_error']})")
    else:
        q = report["queues"]
        click.echo(f"broker      {report['broker']}: "
                   + ", ".join(f"{n} waiting in {name}" for name, n in q.items()))
    for w in report["workers"]:
        click.echo(_worker_line(w))
        if w["role"] == "embeddings" and w["liveness"] == "alive" \
                and w["state"] == "model failed":
            click.echo("            EMBEDDINGS ARE NOT BEING COMPUTED: the model could not be "
                       "loaded; fix [embeddings], restart the embedding worker, then "
                       "`watcherd retry --failed`")
    if report["failures"]:
        click.echo("failures:")
        for f in report["failures"]:
            click.echo(f"  {f['kind']:<9} #{f['id']} {f['path']}: {f['error']}")


def _workers(cfg: Config, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``workers`` rows (one per worker process, written by the watcher from heartbeats),
    each with ``liveness`` (alive / dead / stopped) and ``last_seen_s`` added."""
    from datetime import UTC, datetime

    from watcherd.queue.liveness import DEAD_AFTER_S, row_liveness

    # The watcher writes the rows every outbox tick: older than that plus the heartbeat
    # deadline, and nobody has heard the worker.
    stale_after = DEAD_AFTER_S + cfg.broker.outbox_interval_seconds + 2
    now = datetime.now(UTC)
    out = []
    for w in rows:
        try:
            seen = datetime.strptime(w["last_seen"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
            ago = max(0.0, (now - seen).total_seconds())
        except (TypeError, ValueError):
            ago = float("inf")
        out.append({**w, "liveness": row_liveness(w["state"], ago, stale_after),
                    "last_seen_s": round(ago, 1) if ago != float("inf") else None})
    return out


def _worker_line(w: dict[str, Any]) -> str:
    ago = w["last_seen_s"]
    seen = "never seen" if ago is None else f"last seen {_duration(ago)} ago"
    line = f"worker      {w['name']}: {w['liveness']}"
    if w["liveness"] == "alive" and w["state"] not in ("ready", None):
        line += f", {w['state']}"
    line += f" ({seen}"
    if w["liveness"] == "alive":
        line += f", RSS {round((w['rss_kb'] or 0) / 1024)} MB, {w['processed'] or 0} tasks done"
    if w["model"]:
        line += f", model {w['model']}" + (f" {w['pretrained']}" if w["pretrained"] else "")
        line += f" on {w['device']}" if w["device"] else ""
    line += ")"
    if w["message"]:
        line += f"\n            {w['message']}"
    return line


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@main.command()
@click.option("--failed", is_flag=True, help="Also re-queue failed rows.")
@click.pass_context
def retry(ctx: click.Context, failed: bool) -> None:
    """Re-queue stuck (pending) rows now, and failed ones with --failed."""
    from watcherd.queue.app import make_app
    from watcherd.queue.outbox import Outbox

    cfg = _load(ctx, "retry", check_paths=False)
    conn = _connect(cfg)
    counts = db.requeue(conn, failed=failed)
    outbox = Outbox(make_app(cfg), conn, cfg)
    sent = outbox.send_due()
    click.echo(f"re-queued {counts['thumbnail']} thumbnail and {counts['embedding']} embedding "
               f"rows; sent {sent['thumbnail']} + {sent['embedding']} tasks")
    if not outbox.broker_ok:
        click.echo("broker unreachable: the watcher sends them when it is back", err=True)


@main.command()
@click.pass_context
def migrate(ctx: click.Context) -> None:
    """Create or upgrade the database schema (idempotent)."""
    cfg = _load(ctx, "migrate", check_paths=False)
    try:
        conn = db.connect(cfg.database.path, migrate_schema=False)
        before, after = db.migrate(conn)
    except Exception as exc:
        _fail(f"migration failed: {exc}", 1)
    click.echo(f"{cfg.database.path}: schema version {before} -> {after}"
               if before != after else f"{cfg.database.path}: schema is current ({after})")


@main.command("install-systemd")
@click.option("--watch", "watch_paths", multiple=True, metavar="FOLDER",
              type=click.Path(file_okay=False, path_type=Path),
              help="Folder to watch, written into a new config (repeatable; default /srv/photos).")
@click.option("--config-file", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("/etc/watcherd/watcherd.toml"), show_default=True,
              help="The services' config; created from config.example.toml if missing.")
@click.option("--dest", type=click.Path(file_okay=False, path_type=Path),
              default=Path("/etc/systemd/system"), show_default=True,
              help="Where the unit files go.")
@click.option("--no-reload", is_flag=True,
              help="Only write files: no systemd-sysusers, no daemon-reload (image builds).")
def install_systemd(watch_paths: tuple[Path, ...], config_file: Path, dest: Path,
                    no_reload: bool) -> None:
    """Install the systemd units (watcherd, watcherd-thumbnails, watcherd-embeddings), the
    watcherd system user and a config; see docs/systemd.md."""
    from watcherd import install

    folders = [str(p.absolute()) for p in watch_paths] or ["/srv/photos"]
    try:
        actions = install.install(dest, config_path=config_file.absolute(), watch_paths=folders,
                                  reload=not no_reload)
    except install.InstallError as exc:
        _fail(str(exc), 1)
    for line in actions:
        click.echo(line)
    click.echo(f"next: check {config_file}, then `systemctl enable --now watcherd`; "
               "logs: journalctl -u watcherd -u 'watcherd-*' -o cat")
