"""The click group that every ``watcherd`` command hangs off: ``-c/--config FILE`` before or
after the command name.

The group's own option (before the command) defaults to ``$WATCHERD_CONFIG``. Every command
added to the group (``@main.command()``, ``main.add_command``, nested groups and their
commands) gets the same option after its name, so a new command cannot forget it; given after
the name it wins over one given before it and over the environment. Both store the path in
``ctx.obj["config"]``, which is what the commands read.

A command that declares ``--config`` itself (``install-systemd``: the config file it writes) is
left alone.
"""

from __future__ import annotations

from typing import Any

import click

from watcherd.meta import ENV_VAR

CONFIG_KEY = "config"
#: True when ``-c`` was typed (before or after the command), False when it came from
#: ``$WATCHERD_CONFIG`` or was not given.
CONFIG_GIVEN_KEY = "config_given"
CONFIG_HELP = f"Config file (default: ${ENV_VAR}); before or after the command name."


def config_option(*, envvar: str | None) -> click.Option:
    """``-c/--config FILE``: the group's (with the environment as default) or a command's."""
    return click.Option(
        ["-c", "--config", "config_path"], envvar=envvar, metavar="FILE",
        type=click.Path(dir_okay=False), expose_value=False, callback=_store,
        help=CONFIG_HELP,
    )


def _store(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """Record the path for the commands. The group's option runs first (from the command line
    or ``$WATCHERD_CONFIG``); a command's runs after it, and only when it was given."""
    obj = ctx.ensure_object(dict)
    if value is None and CONFIG_KEY in obj:
        return  # not given after the command: keep what came before it
    obj[CONFIG_KEY] = value
    source = ctx.get_parameter_source(param.name or "")
    obj[CONFIG_GIVEN_KEY] = source is click.core.ParameterSource.COMMANDLINE


def _declares_config(command: click.Command) -> bool:
    return any("--config" in getattr(p, "opts", ()) for p in command.params)


def accept_config(command: click.Command) -> None:
    """Give ``command`` (and, for a group, the commands already in it) ``-c/--config``."""
    if not _declares_config(command):
        command.params.append(config_option(envvar=None))
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            accept_config(sub)


class Group(click.Group):
    """A group whose commands all take ``-c/--config`` after their name. The top-level group
    is made with ``config_envvar=ENV_VAR``; a nested one has no default of its own (it would
    otherwise replace a path given before it with the environment's)."""

    group_class = type  # groups made with @group.group() are of this class too

    def __init__(self, *args: Any, config_envvar: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not _declares_config(self):
            self.params.insert(0, config_option(envvar=config_envvar))

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        accept_config(cmd)
        super().add_command(cmd, name)
