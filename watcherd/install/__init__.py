"""Install watcherd as systemd services: render the unit templates, write them, the sysusers.d
file and a first config, and reload systemd.

Pure functions in the house style: nothing here prints or exits (the ``install-systemd``
command does). ``install`` returns the human-readable list of what it did; errors raise
:class:`InstallError`.

The package's face: the command and the tests import ``watcherd.install``, whose modules are
split by concern only: ``resources`` (names, paths, templates, the executable), ``units`` (the
unit files rendered), ``config_file`` (the first config rendered), ``steps`` (writing them and
running systemd's tools).

Must not import: celery, kombu, click, nor the daemon's packages (``broker``, ``dispatch``,
``fleet``, ``worker``, ``watch``, ``web``), the CLI or the supervisor; it reads ``config``.
"""

from __future__ import annotations

from watcherd.install.config_file import render_config
from watcherd.install.resources import (
    BROKER_URL_PATH,
    CONFIG_PATH,
    DATABASE_PATH,
    LAN_NETWORKS,
    REMOTE_CONFIG_PATH,
    REMOTE_UNIT,
    SYSUSERS_FILE,
    UNIT_FILES,
    WORKER_UNITS,
    InstallError,
    default_watcherd_bin,
    find_resource,
    systemd_version,
)
from watcherd.install.steps import install, install_remote
from watcherd.install.units import hidden_paths_needed, ip_allow, render_remote_unit, render_units

__all__ = [
    "BROKER_URL_PATH",
    "CONFIG_PATH",
    "DATABASE_PATH",
    "LAN_NETWORKS",
    "REMOTE_CONFIG_PATH",
    "REMOTE_UNIT",
    "SYSUSERS_FILE",
    "UNIT_FILES",
    "WORKER_UNITS",
    "InstallError",
    "default_watcherd_bin",
    "find_resource",
    "hidden_paths_needed",
    "install",
    "install_remote",
    "ip_allow",
    "render_config",
    "render_remote_unit",
    "render_units",
    "systemd_version",
]
