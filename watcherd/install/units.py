"""Rendering the unit files: the templates filled in with the executable and the config, the
sandbox opened just enough for an interpreter it would hide, the restart backoff of a recent
systemd, and the addresses the web unit and the remote worker's unit may reach.

Text in, text out: nothing here writes a file (``steps`` does).
"""

from __future__ import annotations

import ipaddress
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from watcherd.config import WebConfig
from watcherd.install.resources import (
    CONFIG_PATH,
    HOME_DIRS,
    LAN_NETWORKS,
    REMOTE_CONFIG_PATH,
    REMOTE_UNIT,
    RESTART_STEPS_VERSION,
    SYSUSERS_FILE,
    SYSUSERS_TEMPLATE,
    TMP_DIRS,
    UNIT_FILES,
    WEB_UNIT,
    InstallError,
    find_resource,
)


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
        candidates += [Path(sys.prefix), Path(sys.base_prefix),
                       Path(__file__).resolve().parents[2]]  # the checkout above watcherd/
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
