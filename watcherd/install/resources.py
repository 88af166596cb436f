"""What an installation is made of and where it goes: the unit and config file names, the
paths on the target machine, the templates (``find_resource``), the ``watcherd`` executable and
the running systemd's version; and ``InstallError``, which every step raises.

The templates live in ``systemd/`` (``@WATCHERD@`` is the absolute path of the ``watcherd``
executable, ``@CONFIG@`` the config file); the example config is ``config.example.toml``. Both
are looked up in the package first (``watcherd/data/``, where a wheel would ship them) and then
in the source checkout beside the package (editable installs), see :func:`find_resource`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

UNIT_FILES = ("watcherd.service", "watcherd-thumbnails.service", "watcherd-embeddings.service",
              "watcherd-web.service")
WEB_UNIT = "watcherd-web.service"
#: Wanted by watcherd.service through their own [Install] (WantedBy=), enabled with it (Also=).
WORKER_UNITS = ("watcherd-thumbnails.service", "watcherd-embeddings.service")
#: The embedding worker of another machine than the photo server (docs/remote-workers.md): not
#: part of ``install``; ``install_remote`` writes it and its config.
REMOTE_UNIT = "watcherd-remote-embeddings.service"
REMOTE_CONFIG_PATH = Path("/etc/watcherd/remote.toml")
REMOTE_CONFIG_TEMPLATE = "systemd/remote.example.toml"
#: Where the remote unit's LoadCredential= takes the broker URL from.
BROKER_URL_PATH = Path("/etc/watcherd/broker-url")
#: Private, unique-local and link-local networks: "the LAN" when [web] listen is not loopback.
LAN_NETWORKS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "fc00::/7",
                "fe80::/10")
#: The sysusers.d file as installed (``/etc/sysusers.d/watcherd.conf``); its template is
#: ``systemd/watcherd.sysusers``.
SYSUSERS_FILE = "watcherd.conf"
SYSUSERS_TEMPLATE = "watcherd.sysusers"
CONFIG_PATH = Path("/etc/watcherd/watcherd.toml")
DATABASE_PATH = "/var/lib/watcherd/watcherd.db"
USER = "watcherd"
#: Directories that ``ProtectHome=`` hides from the services.
HOME_DIRS = (Path("/home"), Path("/root"), Path("/run/user"))
#: Directories that ``PrivateTmp=yes`` replaces with empty ones.
TMP_DIRS = (Path("/tmp"), Path("/var/tmp"))
#: systemd 254 added RestartSteps=/RestartMaxDelaySec= (exponential restart backoff).
RESTART_STEPS_VERSION = 254

Runner = Callable[..., "subprocess.CompletedProcess[str]"]


class InstallError(Exception):
    """Something an operator must fix (a missing file, a failing systemctl); the message says
    what."""


def find_resource(name: str) -> Path:
    """``systemd/<unit>`` or ``config.example.toml``: from ``watcherd/data/`` when packaged,
    else from the source checkout that holds this package."""
    package = Path(__file__).resolve().parents[1]  # watcherd/, above this subpackage
    for candidate in (package / "data" / name, package.parent / name):
        if candidate.is_file():
            return candidate
    raise InstallError(
        f"{name} not found in {package / 'data'} or {package.parent}: "
        "install watcherd from a source checkout (pip install -e .) or a complete package"
    )


def default_watcherd_bin() -> str:
    """The ``watcherd`` console script of this installation (beside this interpreter)."""
    script = Path(sys.executable).parent / "watcherd"
    if script.is_file() and os.access(script, os.X_OK):
        return str(script.absolute())
    raise InstallError(
        f"no watcherd executable beside {sys.executable}: install the package "
        "into this environment first (pip install watcherd)"
    )


def systemd_version(run: Runner = subprocess.run) -> int | None:
    """The running systemd's version (``systemctl --version``), or None without systemctl."""
    try:
        out = run(["systemctl", "--version"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return None
    m = re.match(r"systemd (\d+)", out or "")
    return int(m.group(1)) if m else None
