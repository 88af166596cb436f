"""A real systemd to run the units under: a throw-away ``systemd-nspawn`` container.

The container boots the host's own /usr (``-D / --volatile=yes``: an empty tmpfs root with the
host's /usr read-only, so /etc, /var and /run start empty and vanish with it), sees the checkout
and the interpreter read-only at the same paths, and one host folder read-write at
``/srv/wtest`` (photos and the tiny model). ``--private-network``: no RabbitMQ or Redis inside,
so the tests use the embedded broker. ``--register=no`` because there is no machined here.

``nsenter -a -t <container PID 1>`` runs commands inside (systemctl, journalctl). Teardown
always runs: ``systemctl poweroff`` inside, then SIGKILL to the container's PID 1 (which kills
its whole PID namespace) and to nspawn if they are not gone in time.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.requires import cannot

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
WATCHERD_BIN = str(VENV_BIN / "watcherd")
BOOT_TIMEOUT_S = 60.0
SHARED = "/srv/wtest"  # the host folder's path inside the container
UNITS = ("watcherd", "watcherd-thumbnails", "watcherd-embeddings")


def require_tool(tool: str, package: str) -> str:
    """The path of ``tool``; when missing, ``apt-get install package`` (as root), else skip (or
    fail under CI)."""
    found = shutil.which(tool)
    if found:
        return found
    if os.geteuid() != 0:
        cannot(f"{tool} is missing (apt-get install {package}) and we are not root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    argv = ["apt-get", "install", "-y", "-q", "--no-install-recommends", package]
    apt = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if apt.returncode != 0:  # a stale package list: update once and retry
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env, check=False)
        apt = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    found = shutil.which(tool)
    if found is None:
        cannot(
            f"{tool} missing and `apt-get install {package}` failed: "
            f"{(apt.stderr or apt.stdout).strip()[-500:]}"
        )
    assert found is not None
    return found


def require_nspawn() -> str:
    if os.geteuid() != 0:
        cannot("the systemd tests boot a systemd-nspawn container: they need root")
    return require_tool("systemd-nspawn", "systemd-container")


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie counts as gone
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] != "Z"
    return False


class Container:
    """One booted systemd-nspawn container."""

    def __init__(self, nspawn: str, shared: Path, log_path: Path) -> None:
        self.name = f"watcherd-test-{uuid.uuid4().hex[:8]}"
        self.shared = shared
        self.log_path = log_path
        binds_ro = {str(REPO)}
        for prefix in (Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()):
            # the virtualenv (unless inside the checkout) and the interpreter (unless Debian's
            # own under /usr, which the container has anyway: e.g. pyenv under /root)
            if REPO not in (prefix, *prefix.parents) and Path("/usr") not in prefix.parents:
                binds_ro.add(str(prefix))
        self.argv = [
            nspawn,
            "-D",
            "/",
            "--volatile=yes",
            "-b",
            "--private-network",
            "--register=no",
            "--keep-unit",
            "-M",
            self.name,
            "--console=pipe",
            # IPAddressDeny=/DevicePolicy= need BPF on a cgroup v2 hierarchy: nspawn otherwise
            # gives a hybrid hierarchy here and forbids bpf(), and systemd silently skips them.
            "--system-call-filter=bpf",
            *[f"--bind-ro={p}" for p in sorted(binds_ro)],
            f"--bind={shared}:{SHARED}",
        ]
        self.proc: subprocess.Popen[bytes] | None = None
        self.leader = 0
        self.boot_s = 0.0

    # ------------------------------------------------------------------ lifecycle

    def boot(self) -> None:
        started = time.monotonic()
        log = self.log_path.open("wb")
        env = {**os.environ, "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1"}
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
        log.close()
        deadline = started + BOOT_TIMEOUT_S
        state = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"systemd-nspawn exited {self.proc.returncode}: {self.log_tail()}"
                )
            if not self._is_init(self.leader):  # nspawn's first child may be a helper
                self.leader = next((k for k in _children(self.proc.pid) if self._is_init(k)), 0)
            if self.leader:
                r = self.sh("systemctl", "is-system-running", check=False, timeout=10)
                state = r.stdout.strip()
                # degraded: host units that cannot run in here (databases, brokers) failed.
                if state in ("running", "degraded"):
                    self.boot_s = time.monotonic() - started
                    return
            time.sleep(0.2)
        raise RuntimeError(
            f"container did not boot in {BOOT_TIMEOUT_S:.0f}s (state {state!r}): {self.log_tail()}"
        )

    @staticmethod
    def _is_init(pid: int) -> bool:
        """Is ``pid`` the container's systemd (PID 1 in its namespace)?"""
        if not pid:
            return False
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return False
        fields = dict(ln.split(":", 1) for ln in status.splitlines() if ":" in ln)
        return fields.get("NSpid", "").split()[-1:] == ["1"]

    def log_tail(self, n: int = 2000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-n:]
        return ""

    def teardown(self) -> None:
        """Always leaves nothing running: poweroff, then SIGKILL what is left."""
        if self.proc is None:
            return
        if self.leader and _alive(self.leader):
            with contextlib.suppress(Exception):
                self.sh("systemctl", "poweroff", "--no-block", check=False, timeout=10)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and self.proc.poll() is None:
                time.sleep(0.2)
        if self.leader and _alive(self.leader):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.leader, signal.SIGKILL)  # PID 1 of the namespace: takes all with it
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)

    # ------------------------------------------------------------------ inside

    def sh(
        self, *argv: str, check: bool = True, timeout: float = 60, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(
            ["nsenter", "-a", "-t", str(self.leader), *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            check=False,
        )
        if check and r.returncode != 0:
            raise AssertionError(
                f"in container: {' '.join(argv)} exited {r.returncode}\n"
                f"stdout: {r.stdout[-3000:]}\nstderr: {r.stderr[-3000:]}"
            )
        return r

    def path(self, inside: str) -> Path:
        """A path inside the container, as seen from the host (root only)."""
        return Path(f"/proc/{self.leader}/root") / inside.lstrip("/")

    def systemctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.sh("systemctl", "--no-pager", *args, check=check)

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.systemctl("show", unit, *[f"-p{p}" for p in props]).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def python(self, code: str, *args: str, user: str | None = None, timeout: float = 60) -> str:
        """Run this virtualenv's Python in the container (as ``user``: setpriv, because runuser
        needs PAM configuration the empty /etc lacks)."""
        argv = [str(VENV_BIN / "python"), "-c", code, *args]
        if user:
            argv = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--", *argv]
        return self.sh(*argv, timeout=timeout).stdout

    def query(self, db: str, sql: str, params: Sequence[Any] = ()) -> list[list[Any]]:
        """Rows from the service's SQLite file, read as the service user (so no file it needs
        ends up owned by root)."""
        code = (
            "import json, sqlite3, sys; c = sqlite3.connect(sys.argv[1], timeout=10); "
            "print(json.dumps(c.execute(sys.argv[2], json.loads(sys.argv[3])).fetchall()))"
        )
        out = self.python(code, db, sql, json.dumps(list(params)), user="watcherd")
        return list(json.loads(out))

    def pids(self, pattern: str) -> list[str]:
        """``pid command line`` of every process in the container whose command line contains
        ``pattern`` (read from /proc inside: no dependency on procps)."""
        code = (
            "import os, sys\n"
            "me = str(os.getpid())\n"
            "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
            "    try:\n"
            "        raw = open(f'/proc/{pid}/cmdline', 'rb').read()\n"
            "    except OSError:\n"
            "        continue\n"
            "    cmd = raw.replace(b'\\0', b' ').decode(errors='replace').strip()\n"
            "    if pid != me and sys.argv[1] in cmd:\n"
            "        print(pid, cmd)\n"
        )
        return self.python(code, pattern).splitlines()


@pytest.fixture(scope="module")
def container() -> Iterator[Container]:
    nspawn = require_nspawn()
    shared = Path(tempfile.mkdtemp(prefix="watcherd-systemd-"))
    shared.chmod(0o755)
    c = Container(nspawn, shared, shared.parent / f"{shared.name}.nspawn.log")
    # A CI timeout sends SIGTERM: turn it into KeyboardInterrupt so the finally below still
    # powers the container off (only SIGKILL of pytest can leave it running).
    previous = signal.getsignal(signal.SIGTERM)
    if previous in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        try:
            c.boot()
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            cannot(f"systemd-nspawn cannot boot a container here: {exc}")
        yield c
    finally:
        c.teardown()
        if previous in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        shutil.rmtree(shared, ignore_errors=True)
        with contextlib.suppress(OSError):
            c.log_path.unlink()
