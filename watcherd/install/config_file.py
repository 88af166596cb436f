"""Rendering the services' first config from ``config.example.toml`` (absolute watched folders,
the database in the services' state directory), and reading ``[web] listen`` back from an
existing one, which the web unit's allowed addresses follow.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from watcherd.config import WebConfig
from watcherd.install.resources import DATABASE_PATH, InstallError


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


def web_listen_of(config_path: Path) -> str:
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
