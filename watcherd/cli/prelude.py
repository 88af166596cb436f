"""What every command starts with: the config loaded (a bad one exits 2, naming key and file)
and logging set up, the database opened; and ``fail``, the one way a command ends with a
message.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, NoReturn

import click

from watcherd import command

if TYPE_CHECKING:
    from watcherd.config import Config


def fail(message: str, code: int) -> NoReturn:
    click.echo(f"watcherd: {message}", err=True)
    sys.exit(code)


def load_config(ctx: click.Context, role: str | None = None, *, check_paths: bool = True,
                check_broker: bool | None = None, remote: bool = False,
                quick: bool = False) -> Config:
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
        fail(str(exc), 2)
    logs.setup(cfg.log.level, cfg.log.format, role=role, lazy=quick)
    return cfg


def connect(cfg: Config) -> Any:
    from watcherd.store import schema

    try:
        return schema.connect(cfg.database.path)
    except Exception as exc:
        fail(f"cannot open database {cfg.database.path}: {exc}", 1)
