"""Reading one TOML table: typed values with their limits, paths resolved against the config's
folder, and the keys used, so that an unknown key is an error that names it.

Apart from ``loading`` so that the section rules there read as rules, not as type checks.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from watcherd.config.sections import FROM_CLASS, ConfigError, default_of


class SectionReader:
    """Reads typed values out of one TOML table and remembers which keys were used. A key
    absent from the table takes its dataclass field's default (``FROM_CLASS``)."""

    def __init__(self, name: str, table: Any, file: Path | None, base: Path) -> None:
        if not isinstance(table, Mapping):
            raise ConfigError("must be a table", key=name, file=file)
        self.name, self.table, self.file, self.base = name, dict(table), file, base
        self.used: set[str] = set()

    def err(self, key: str, message: str) -> ConfigError:
        return ConfigError(message, key=f"{self.name}.{key}", file=self.file)

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = FROM_CLASS) -> Any:
        self.used.add(key)
        if key not in self.table:
            return default_of(self.name, key) if default is FROM_CLASS else default
        value = self.table[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # bool is an int in Python; never accept it where a number is meant.
        if isinstance(value, bool) and bool not in kinds:
            raise self.err(key, f"expected {_kind_name(kinds)}, got {value!r}")
        if not isinstance(value, kinds):
            raise self.err(key, f"expected {_kind_name(kinds)}, got {value!r}")
        return value

    def number(self, key: str, default: Any = FROM_CLASS, *, minimum: float = 0.0) -> float:
        value = float(self.get(key, (int, float), default))
        if value < minimum:
            raise self.err(key, f"must be >= {minimum:g}, got {value:g}")
        return value

    def integer(self, key: str, default: Any = FROM_CLASS, *, minimum: int = 1) -> int:
        value = int(self.get(key, int, default))
        if value < minimum:
            raise self.err(key, f"must be >= {minimum}, got {value}")
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: Any = FROM_CLASS) -> str:
        value = str(self.get(key, str, default)).lower()
        if value not in choices:
            raise self.err(key, f"must be one of {', '.join(choices)}; got {value!r}")
        return value

    def path(self, key: str, default: str | None) -> Path | None:
        value = self.get(key, str, default)
        if value is None or value == "":
            return None
        return resolve_path(value, self.base)

    def check_unknown(self) -> None:
        for key in self.table:
            if key not in self.used:
                raise self.err(key, "unknown key (see config.example.toml for the valid keys)")


def _kind_name(kinds: tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
             list: "a list"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def resolve_path(value: str, base: Path) -> Path:
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else (base / path).resolve()
