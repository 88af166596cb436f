"""``-c/--config FILE`` before or after the command name, on every command (issue 7, item 8)."""

from __future__ import annotations

from pathlib import Path

import click
from click.testing import CliRunner

from tests.helpers import write_config
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


