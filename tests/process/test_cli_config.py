"""`-c/--config` after the command's name, through real `watcherd` processes (the option's
placement on every command is checked in-process in tests/unit/test_cli_config.py)."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from tests import requires
from tests.helpers import WATCHERD, write_config


def _bad_config(tmp_path: Path) -> Path:
    """A config that every command rejects with exit 2, naming the key and the file."""
    bad = tmp_path / "bad"
    bad.mkdir()
    return write_config(bad, thumbnails={"format": "gif"})



def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "WATCHERD_CONFIG"}
    return subprocess.run([*WATCHERD, *args], capture_output=True, text=True, timeout=120,
                          env={**environ, **(env or {})})



def test_status_with_config_after_the_command(tmp_path: Path) -> None:
    """The issue's example, through the real console entry."""
    good = write_config(tmp_path)
    r = _run("status", "-c", str(good))
    assert r.returncode == 0, r.stderr
    assert f"database    {tmp_path / 'watcherd.db'}" in r.stdout
    r = _run("worker", "thumbnails", "-c", str(_bad_config(tmp_path)))
    assert r.returncode == 2 and "thumbnails.format" in r.stderr



def test_the_config_after_the_command_wins(tmp_path: Path) -> None:
    good, bad = write_config(tmp_path), _bad_config(tmp_path)
    assert _run("-c", str(bad), "migrate", "-c", str(good)).returncode == 0
    r = _run("-c", str(good), "migrate", "-c", str(bad))
    assert r.returncode == 2 and str(bad) in r.stderr
    assert _run("migrate", "-c", str(good), env={"WATCHERD_CONFIG": str(bad)}).returncode == 0
    r = _run("migrate", env={"WATCHERD_CONFIG": str(bad)})  # the environment is the default
    assert r.returncode == 2 and str(bad) in r.stderr



def _in_private_etc(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``watcherd install-systemd`` with /etc overlaid in a private mount namespace: it writes
    /etc/sysusers.d, which must not touch this machine."""
    requires.private_mount_namespace()
    upper, work = Path(tempfile.mkdtemp(dir=tmp_path)), Path(tempfile.mkdtemp(dir=tmp_path))
    argv = " ".join(f"'{a}'" for a in [*WATCHERD, *args])
    script = (f"mount -t overlay overlay -o lowerdir=/etc,upperdir={upper},workdir={work} /etc "
              f"|| exit 99; exec {argv}")
    r = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True,
                       timeout=60)
    if r.returncode == 99:
        requires.cannot(f"cannot overlay /etc here: {r.stderr.strip()}")
    return r



def test_install_systemd_takes_its_config_file_before_or_after(tmp_path: Path) -> None:
    common = ["--no-reload", "--dest", str(tmp_path / "units"), "--watch", str(tmp_path)]
    after, before = tmp_path / "after.toml", tmp_path / "before.toml"
    r = _in_private_etc(tmp_path, "install-systemd", *common, "-c", str(after))
    assert r.returncode == 0, r.stderr
    unit = (tmp_path / "units" / "watcherd.service").read_text()
    assert after.is_file() and f"-c {after} watch" in unit
    r = _in_private_etc(tmp_path, "-c", str(before), "install-systemd", *common)
    assert r.returncode == 0, r.stderr
    assert before.is_file() and f"wrote {before}" in r.stdout
