"""Install watcherd as systemd services: render the unit templates, write them, the sysusers.d
file and a first config, and reload systemd.

Pure functions in the house style: nothing here prints or exits (``cli.py`` does). ``install``
returns the human-readable list of what it did; errors raise :class:`InstallError`.

The templates live in ``systemd/`` (``@WATCHERD@`` is the absolute path of the ``watcherd``
executable, ``@CONFIG@`` the config file); the example config is ``config.example.toml``. Both
are looked up in the package first (``watcherd/data/``, where a wheel would ship them) and then
in the source checkout beside the package (editable installs), see :func:`find_resource`.
"""

from __future__ import annotations

import grp
import ipaddress
import os
import pwd
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from watcherd.config import WebConfig

__all__ = [
    "CONFIG_PATH",
    "DATABASE_PATH",
    "SYSUSERS_FILE",
    "UNIT_FILES",
    "InstallError",
    "default_watcherd_bin",
    "find_resource",
    "hidden_paths_needed",
    "install",
    "install_remote",
    "render_config",
    "render_remote_unit",
    "render_units",
    "systemd_version",
]

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


# ----------------------------------------------------------------------------- resources


def find_resource(name: str) -> Path:
    """``systemd/<unit>`` or ``config.example.toml``: from ``watcherd/data/`` when packaged,
    else from the source checkout that holds this package."""
    package = Path(__file__).resolve().parent
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


# ----------------------------------------------------------------------------- rendering


def _under(path: Path, dirs: Sequence[Path]) -> bool:
    return any(path == h or h in path.parents for h in dirs)


def _under_home(path: Path) -> bool:
    return _under(path, HOME_DIRS)


def _hidden(path: Path) -> bool:
    return _under(path, HOME_DIRS + TMP_DIRS)


def _interpreter(script: Path) -> Path | None:
    """The interpreter named in a console script's ``#!`` line."""
    try:
        with script.open("rb") as f:
            first = f.readline(4096)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    parts = first[2:].decode(errors="replace").split()
    return Path(parts[0]) if parts else None


def hidden_paths_needed(watcherd_bin: str) -> list[str]:
    """Folders under /home, /root, /run/user, /tmp or /var/tmp that the services need to see to
    run at all: the virtualenv, the interpreter's installation (pyenv, ``python -m venv`` from a
    home directory) and, for editable installs, the source checkout. ``ProtectHome=yes`` and
    ``PrivateTmp=yes`` would hide them; the units then get them as ``BindReadOnlyPaths=`` (with
    ``ProtectHome=tmpfs`` for those under a home directory)."""
    script = Path(watcherd_bin)
    candidates = [script.parent.parent]  # the venv (or prefix) holding bin/watcherd
    interp = _interpreter(script)
    if interp is not None:
        candidates.append(interp.parent.parent)
        real = interp.resolve()
        candidates.append(real.parent.parent)  # e.g. ~/.pyenv/versions/3.11.7
    here = Path(sys.executable).parent.parent
    if here.resolve() == script.parent.parent.resolve():  # rendering for this installation
        candidates += [Path(sys.prefix), Path(sys.base_prefix), Path(__file__).resolve().parents[1]]
    found: list[Path] = []
    for path in candidates:
        for p in {path, path.resolve()}:
            if _hidden(p) and p not in HOME_DIRS + TMP_DIRS and p not in found:
                found.append(p)
    # Drop folders inside another one on the list.
    kept = [p for p in found if not any(q != p and q in p.parents for q in found)]
    return sorted(str(p) for p in kept)


_UNSAFE = re.compile(r"[\s\"'\\;$]")


def _unit_path(value: str, what: str) -> str:
    if not value.startswith("/"):
        raise InstallError(f"{what} must be an absolute path, got {value!r}")
    if _UNSAFE.search(value):
        raise InstallError(
            f"{what} {value!r}: paths with spaces, quotes, backslashes, ';' or '$' "
            "are not supported in unit files; install to a plainer path"
        )
    return value.replace("%", "%%")  # systemd specifiers


def render_units(
    watcherd_bin: str,
    config_path: str = str(CONFIG_PATH),
    *,
    read_only_paths: Sequence[str] | None = None,
    systemd_version: int | None = None,
    web_listen: str = WebConfig.listen,
) -> dict[str, str]:
    """File name → text: the three units, and ``SYSUSERS_FILE`` for /etc/sysusers.d/.

    ``watcherd_bin`` is the absolute path of the ``watcherd`` executable the units run.
    ``read_only_paths`` are folders under /home, /root or /run/user the services must see (the
    interpreter, the virtualenv); ``None`` works them out (:func:`hidden_paths_needed`). With
    ``systemd_version`` ≥ 254 the restart delay grows exponentially (RestartSteps=).
    """
    exe, cfg, binds = _unit_paths(watcherd_bin, config_path, read_only_paths)
    out: dict[str, str] = {}
    for name in UNIT_FILES:
        text = _render_unit(name, exe, cfg, binds, systemd_version)
        if name == WEB_UNIT:
            text = _replace_line(text, "IPAddressAllow=localhost",
                                 "IPAddressAllow=" + " ".join(ip_allow(web_listen)))
        out[name] = _checked(name, text)
    out[SYSUSERS_FILE] = find_resource(f"systemd/{SYSUSERS_TEMPLATE}").read_text(encoding="utf-8")
    return out


def _unit_paths(watcherd_bin: str, config_path: str, read_only_paths: Sequence[str] | None
                ) -> tuple[str, str, list[str]]:
    """The executable, the config and the read-only binds (``None``: worked out), checked for
    use in a unit file."""
    exe = _unit_path(watcherd_bin, "the watcherd executable")
    cfg = _unit_path(config_path, "the config file")
    extra = hidden_paths_needed(watcherd_bin) if read_only_paths is None else list(read_only_paths)
    return exe, cfg, [_unit_path(p, "a read-only path") for p in extra]


def _render_unit(name: str, exe: str, cfg: str, binds: Sequence[str],
                 systemd_version: int | None) -> str:
    text = find_resource(f"systemd/{name}").read_text(encoding="utf-8")
    text = text.replace("@WATCHERD@", exe).replace("@CONFIG@", cfg)
    if binds:
        home = any(_under_home(Path(b)) for b in binds)
        text = _replace_line(
            text,
            "ProtectHome=yes",
            "# The interpreter or virtualenv lives where the sandbox hides it: show only it.\n"
            + ("ProtectHome=tmpfs" if home else "ProtectHome=yes")
            + "\nBindReadOnlyPaths=" + " ".join(binds),
        )
    if systemd_version is not None and systemd_version >= RESTART_STEPS_VERSION:
        text = _replace_line(
            text, "RestartSec=5s", "RestartSec=5s\nRestartSteps=5\nRestartMaxDelaySec=5min"
        )
    return text


def _checked(name: str, text: str) -> str:
    if re.search(r"@[A-Z_]+@", text):
        raise InstallError(f"systemd/{name}: unknown placeholder left after rendering")
    return text


def render_remote_unit(
    watcherd_bin: str,
    config_path: str = str(REMOTE_CONFIG_PATH),
    *,
    broker_addresses: Sequence[str] = (),
    read_only_paths: Sequence[str] | None = None,
    systemd_version: int | None = None,
) -> str:
    """The remote embedding worker's unit: as :func:`render_units` renders the others, and
    ``broker_addresses`` (IP addresses or networks: IPAddressAllow= takes no host names) added
    to what it may reach besides localhost."""
    exe, cfg, binds = _unit_paths(watcherd_bin, config_path, read_only_paths)
    for address in broker_addresses:
        try:
            ipaddress.ip_network(address, strict=False)
        except ValueError:
            raise InstallError(
                f"broker address {address!r} is not an IP address or network: systemd's "
                "IPAddressAllow= takes no host names (look it up: getent hosts NAME)") from None
    text = _render_unit(REMOTE_UNIT, exe, cfg, binds, systemd_version)
    if broker_addresses:
        text = _replace_line(text, "IPAddressAllow=localhost",
                             "IPAddressAllow=localhost " + " ".join(broker_addresses))
    return _checked(REMOTE_UNIT, text)


def ip_allow(listen: str) -> list[str]:
    """``IPAddressAllow=`` for the web unit: the peers that may reach ``[web] listen``.

    Loopback: ``localhost`` only. Any other address (a LAN address, or 0.0.0.0 / ::): the local
    networks (private, unique-local and link-local ranges), plus the listen address's own /24 or
    /64 when it is a public one. Never ``any``: the page is not for the internet."""
    import ipaddress

    host = listen.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return ["localhost"]
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise InstallError(f"[web] listen {listen!r}: HOST must be an IP address or localhost "
                           "(the unit's IPAddressAllow= follows it)") from None
    if addr.is_loopback:
        return ["localhost"]
    allow = ["localhost", *LAN_NETWORKS]
    if not (addr.is_private or addr.is_unspecified or addr.is_link_local):
        allow.append(str(ipaddress.ip_network(f"{addr}/{24 if addr.version == 4 else 64}",
                                              strict=False)))
    return allow


def _replace_line(text: str, line: str, new: str) -> str:
    lines = text.splitlines(keepends=True)
    hits = [i for i, ln in enumerate(lines) if ln.rstrip("\n") == line]
    if len(hits) != 1:
        raise InstallError(f"unit template: expected one line {line!r}, found {len(hits)}")
    lines[hits[0]] = new + "\n"
    return "".join(lines)


def render_config(
    example_text: str,
    *,
    watch_paths: Sequence[str] = ("/srv/photos",),
    database: str = DATABASE_PATH,
) -> str:
    """The service's config: ``config.example.toml`` with absolute watched folders and the
    database under /var/lib/watcherd (the services' StateDirectory, the one place they may
    write). Everything else keeps the example's defaults and comments."""
    for p in watch_paths:
        if not p.startswith("/"):
            raise InstallError(f"watched folder {p!r} must be an absolute path")
    text, n_paths = re.subn(
        r"(?m)^paths = .*$", "paths = " + _toml_list(watch_paths), example_text, count=1
    )
    text, n_db = re.subn(r'(?m)^path = "[^"\n]*"', f"path = {_toml_str(database)}", text, count=1)
    if n_paths != 1 or n_db != 1:
        raise InstallError(
            "config.example.toml: cannot find the [watch] paths and [database] "
            "path lines to fill in"
        )
    try:
        parsed: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # pragma: no cover - the example is valid TOML
        raise InstallError(f"rendered config is not valid TOML: {exc}") from None
    if parsed["watch"]["paths"] != list(watch_paths) or parsed["database"]["path"] != database:
        raise InstallError("config.example.toml: filling in paths went wrong")
    return text


def _web_listen(config_path: Path) -> str:
    """``[web] listen`` of an existing config file (the default for a new one)."""
    try:
        raw = tomllib.loads(config_path.read_text(encoding="utf-8"))
        return str(raw.get("web", {}).get("listen", WebConfig.listen))
    except (OSError, tomllib.TOMLDecodeError, AttributeError):
        return WebConfig.listen


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _toml_list(values: Sequence[str]) -> str:
    return "[" + ", ".join(_toml_str(v) for v in values) + "]"


# ----------------------------------------------------------------------------- installing


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
                         web_listen=_web_listen(config_path))

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

    if reload:
        _run(run, ["systemctl", "daemon-reload"])
        actions.append("ran systemctl daemon-reload")
        # Earlier units wanted the workers from watcherd.service itself (Wants=): an
        # installation enabled then has no link for them, and would start no worker at boot.
        if _enabled(run, "watcherd.service") and not any(_enabled(run, u) for u in WORKER_UNITS):
            _run(run, ["systemctl", "enable", *WORKER_UNITS])
            actions.append("enabled the workers: watcherd.service, enabled before, wants them "
                           "through their own [Install] now")
    return actions


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
