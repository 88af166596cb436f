"""The commands that run until told to stop: ``run`` (all of it, supervised) and the parts it
supervises, each also a systemd unit of its own: ``watch``, ``worker`` and ``serve``.

Each imports its machinery (Celery, the watcher, the model, the web stack) only when it runs.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable

import click

from watcherd.cli.prelude import connect, fail, load_config


@click.command()
@click.pass_context
def run(ctx: click.Context) -> None:
    """Watcher + thumbnail worker + embedding worker in the foreground."""
    from watcherd.supervisor import Supervisor, default_children

    cfg = load_config(ctx, "supervisor")
    connect(cfg).close()  # schema ready before any child starts
    assert cfg.file is not None
    code = Supervisor(default_children(str(cfg.file))).run()
    sys.exit(code)


def _stop_on_signals(stop: Callable[[], None]) -> None:
    def handler(_signum: int, _frame: object) -> None:
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


@click.command()
@click.pass_context
def watch(ctx: click.Context) -> None:
    """The watcher alone (systemd: watcherd.service)."""
    import dataclasses

    from watcherd import logs, sdnotify
    from watcherd.broker.app import make_app
    from watcherd.watch.loop import Watcher

    cfg = load_config(ctx, "watcher")
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


@click.command()
@click.argument("kind", type=click.Choice(["thumbnails", "embeddings"]))
@click.pass_context
def worker(ctx: click.Context, kind: str) -> None:
    """One Celery worker: `thumbnails` (prefork pool) or `embeddings` (solo pool, CLIP)."""
    from watcherd.worker.runner import run_worker

    # An embedding worker may run on another machine, with only [broker] and [embeddings].
    cfg = load_config(ctx, f"worker-{kind}", remote=kind == "embeddings")
    if cfg.local:
        connect(cfg).close()
    sys.exit(run_worker(cfg, kind))


@click.command()
@click.pass_context
def serve(ctx: click.Context) -> None:
    """The search page, the JSON API and /metrics on [web] listen."""
    cfg = load_config(ctx, "serve", check_paths=False)
    from watcherd.web import server

    try:
        server.check(cfg)
    except server.TokenRequired as exc:
        fail(str(exc), 2)
    if not cfg.database.path.is_file():
        fail(f"cannot open database {cfg.database.path}: no such file (start the watcher "
             "first, or run `watcherd migrate`)", 1)
    try:
        server.serve(cfg)
    except (OSError, RuntimeError) as exc:
        fail(str(exc), 1)
