"""``install-systemd``: the options read, the install run (``watcherd.install``), what it did
and what to do next printed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from watcherd import command
from watcherd.cli.prelude import fail


@click.command("install-systemd")
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
            fail("--watch does not go with --remote-worker: a remote worker watches no folder",
                 2)
        _install_remote(config_file, dest, no_reload, broker_addresses)
        return
    if broker_addresses:
        fail("--broker-address goes with --remote-worker", 2)
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
        fail(str(exc), 1)
    for line in actions:
        click.echo(line)
    click.echo(next_step)
