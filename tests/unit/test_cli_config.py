"""``-c/--config FILE`` before or after the command name, on every command (issue 7, item 8)."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import click
from click.testing import CliRunner

from tests import requires
from tests.helpers import WATCHERD, write_config
from watcherd import command
from watcherd.cli import main

# What each command needs besides -c to get as far as reading its config.
ARGS = {"worker": ["thumbnails"], "scan": ["{photos}"]}
# Takes -c as the config file it writes, not one it reads: tested on its own below.
WRITES_CONFIG = {"install-systemd"}


def _bad_config(tmp_path: Path) -> Path:
    """A config that every command rejects with exit 2, naming the key and the file."""
    bad = tmp_path / "bad"
    bad.mkdir()
    return write_config(bad, thumbnails={"format": "gif"})


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "WATCHERD_CONFIG"}
    return subprocess.run([*WATCHERD, *args], capture_output=True, text=True, timeout=120,
                          env={**environ, **(env or {})})


def test_every_command_reads_config_given_after_its_name(tmp_path: Path) -> None:
    bad = _bad_config(tmp_path)
    photos = str(bad.parent / "photos")
    names = sorted(set(main.commands) - WRITES_CONFIG)
    assert {"run", "watch", "worker", "scan", "status", "retry", "migrate"} <= set(names)
    runner = CliRunner()
    for name in names:
        args = [a.format(photos=photos) for a in ARGS.get(name, [])]
        for argv in ([name, *args, "-c", str(bad)], [name, "--config", str(bad), *args]):
            result = runner.invoke(main, argv, env={"WATCHERD_CONFIG": ""})
            assert result.exit_code == 2, (argv, result.output)
            assert "thumbnails.format" in result.output and str(bad) in result.output, argv


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


def test_commands_added_later_take_config_after_their_name() -> None:
    """Any command added to the group, however it is made, and commands of nested groups."""
    seen: list[str | None] = []

    @click.group(cls=command.Group, config_envvar="WATCHERD_CONFIG")
    def root() -> None:
        pass

    @click.pass_context
    def record(ctx: click.Context) -> None:
        seen.append(ctx.obj.get(command.CONFIG_KEY))

    root.command("decorated")(record)
    root.add_command(click.Command("plain", callback=record))
    nested = root.group("nested")(lambda: None)
    nested.command("leaf")(record)

    runner = CliRunner()
    cases = [
        (["decorated", "-c", "after"], {}, "after"),
        (["plain", "-c", "after"], {}, "after"),
        (["-c", "before", "plain", "-c", "after"], {}, "after"),
        (["-c", "before", "plain"], {"WATCHERD_CONFIG": "env"}, "before"),
        (["plain"], {"WATCHERD_CONFIG": "env"}, "env"),
        (["plain", "-c", "after"], {"WATCHERD_CONFIG": "env"}, "after"),
        (["nested", "leaf", "-c", "after"], {}, "after"),
        (["-c", "before", "nested", "-c", "middle", "leaf"], {}, "middle"),
        (["-c", "before", "nested", "leaf"], {"WATCHERD_CONFIG": "env"}, "before"),
    ]
    for argv, env, expected in cases:
        seen.clear()
        result = runner.invoke(root, argv, env=env)
        assert result.exit_code == 0, (argv, result.output)
        assert seen == [expected], argv


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
