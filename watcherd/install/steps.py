"""The install steps: write the rendered files (atomically, and only when they changed), create
the system user, run ``systemctl daemon-reload``; ``install`` for the photo server's services,
``install_remote`` for an embedding worker on another machine.

Each returns the human-readable list of what it did; nothing here prints or exits.
"""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
from collections.abc import Sequence
from pathlib import Path

from watcherd.install.config_file import render_config, web_listen_of
from watcherd.install.resources import (
    BROKER_URL_PATH,
    CONFIG_PATH,
    DATABASE_PATH,
    REMOTE_CONFIG_PATH,
    REMOTE_CONFIG_TEMPLATE,
    REMOTE_UNIT,
    SYSUSERS_FILE,
    UNIT_FILES,
    USER,
    WORKER_UNITS,
    InstallError,
    Runner,
    default_watcherd_bin,
    find_resource,
    systemd_version,
)
from watcherd.install.units import render_remote_unit, render_units


def _write(path: Path, text: str, mode: int, actions: list[str]) -> None:
    """Write atomically (a temporary file renamed over ``path``) unless already identical."""
    try:
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            actions.append(f"unchanged {path}")
            return
        existed = path.exists()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.chmod(mode)
        tmp.replace(path)
    except OSError as exc:
        raise InstallError(f"cannot write {path}: {exc.strerror or exc}") from None
    actions.append(f"{'updated' if existed else 'wrote'} {path}")


def _run(run: Runner, argv: list[str]) -> None:
    try:
        result = run(argv, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise InstallError(f"cannot run {argv[0]}: {exc}") from None
    if result.returncode != 0:
        detail = (result.stderr or result.stdout or "").strip()
        raise InstallError(f"{' '.join(argv)} failed (exit {result.returncode}): {detail}")


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def install(
    dest: Path = Path("/etc/systemd/system"),
    *,
    example_config: str | None = None,
    watcherd_bin: str | None = None,
    config_path: Path = CONFIG_PATH,
    watch_paths: Sequence[str] = ("/srv/photos",),
    sysusers_dir: Path = Path("/etc/sysusers.d"),
    reload: bool = True,
    run: Runner = subprocess.run,
) -> list[str]:
    """Install the services; return what was done, one line per action.

    Writes the three units into ``dest`` and the ``watcherd`` system user into ``sysusers_dir``;
    with ``reload`` creates that user (``systemd-sysusers``) and runs ``systemctl
    daemon-reload``. Writes ``config_path`` from ``example_config`` (the text of
    ``config.example.toml``; ``None`` reads it with :func:`find_resource`) only if it does not
    exist yet, watching ``watch_paths`` with the database in /var/lib/watcherd. Enabling and
    starting is left to the operator (``systemctl enable --now watcherd``). Idempotent.
    """
    actions: list[str] = []
    exe = watcherd_bin or default_watcherd_bin()
    version = systemd_version(run)  # systemctl --version works without a running systemd
    texts = render_units(exe, str(config_path), systemd_version=version,
                         web_listen=web_listen_of(config_path))

    for name in UNIT_FILES:
        _write(dest / name, texts[name], 0o644, actions)
    sysusers = sysusers_dir / SYSUSERS_FILE
    _write(sysusers, texts[SYSUSERS_FILE], 0o644, actions)
    if reload:
        had_user = _user_exists(USER)
        _run(run, ["systemd-sysusers", str(sysusers)])
        if not had_user:
            actions.append(f"created system user and group {USER}")

    if config_path.exists():
        actions.append(f"kept existing {config_path}")
    else:
        _write_config(config_path, example_config, watch_paths, actions)

    if reload:
        _run(run, ["systemctl", "daemon-reload"])
        actions.append("ran systemctl daemon-reload")
        _enable_workers_of_an_old_install(run, actions)
    return actions


def _write_config(config_path: Path, example_config: str | None, watch_paths: Sequence[str],
                  actions: list[str]) -> None:
    """The services' first config, from ``example_config`` (``None``: the packaged one)."""
    if example_config is None:
        example_config = find_resource("config.example.toml").read_text(encoding="utf-8")
    text = render_config(example_config, watch_paths=watch_paths)
    # 0640 root:watcherd: a broker URL may carry a password.
    try:
        gid: int | None = grp.getgrnam(USER).gr_gid
    except KeyError:
        gid = None
    _write(config_path, text, 0o640 if gid is not None else 0o644, actions)
    if gid is not None and os.geteuid() == 0:
        os.chown(config_path, 0, gid)
    actions.append(f"  watching {', '.join(watch_paths)}; database {DATABASE_PATH}")
    for p in watch_paths:
        if not Path(p).is_dir():
            actions.append(
                f"  note: {p} does not exist yet: create it or edit "
                f"[watch] paths in {config_path}"
            )


def _enable_workers_of_an_old_install(run: Runner, actions: list[str]) -> None:
    """Earlier units wanted the workers from watcherd.service itself (Wants=): an installation
    enabled then has no link for them, and would start no worker at boot."""
    if _enabled(run, "watcherd.service") and not any(_enabled(run, u) for u in WORKER_UNITS):
        _run(run, ["systemctl", "enable", *WORKER_UNITS])
        actions.append("enabled the workers: watcherd.service, enabled before, wants them "
                       "through their own [Install] now")


def _enabled(run: Runner, unit: str) -> bool:
    try:
        r = run(["systemctl", "is-enabled", unit], capture_output=True, text=True, check=False)
    except OSError:
        return False
    return r.stdout.strip() == "enabled"


def install_remote(
    dest: Path = Path("/etc/systemd/system"),
    *,
    watcherd_bin: str | None = None,
    config_path: Path = REMOTE_CONFIG_PATH,
    broker_addresses: Sequence[str] = (),
    reload: bool = True,
    run: Runner = subprocess.run,
) -> list[str]:
    """Install the remote embedding worker's unit on a machine that embeds for a photo server;
    return what was done, one line per action. Writes the unit into ``dest`` and
    ``config_path`` from ``systemd/remote.example.toml`` if it does not exist yet (0644: it holds
    no secret, the broker URL is a credential the unit loads from ``BROKER_URL_PATH``); with
    ``reload`` runs ``systemctl daemon-reload``. No system user: the unit uses DynamicUser=.
    Enabling and starting is left to the operator. Idempotent."""
    actions: list[str] = []
    exe = watcherd_bin or default_watcherd_bin()
    text = render_remote_unit(exe, str(config_path), broker_addresses=broker_addresses,
                              systemd_version=systemd_version(run))
    _write(dest / REMOTE_UNIT, text, 0o644, actions)
    if config_path.exists():
        actions.append(f"kept existing {config_path}")
    else:
        template = find_resource(REMOTE_CONFIG_TEMPLATE).read_text(encoding="utf-8")
        _write(config_path, template, 0o644, actions)
    if not BROKER_URL_PATH.exists():
        actions.append(f"  note: {BROKER_URL_PATH} does not exist yet: put the broker URL there "
                       "(mode 0600, root), e.g. amqps://watcherd:PASSWORD@nas.lan:5671//")
    if reload:
        _run(run, ["systemctl", "daemon-reload"])
        actions.append("ran systemctl daemon-reload")
    return actions
