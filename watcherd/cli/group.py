"""The ``watcherd`` group: its own options, the stop that ends a daemon still starting, and the
commands, gathered from the modules that hold them.
"""

from __future__ import annotations

import signal

import click

from watcherd import command
from watcherd.cli.admin import migrate, purge, retry, scan, status
from watcherd.cli.daemons import run, serve, watch, worker
from watcherd.cli.search import duplicates, search
from watcherd.cli.systemd import install_systemd
from watcherd.meta import ENV_VAR, __version__

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


for _command in (run, watch, worker, scan, status, retry, purge, migrate, install_systemd, serve,
                 search, duplicates):
    main.add_command(_command)
