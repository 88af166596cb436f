"""Query-string validation: every parameter is checked here, and a bad one raises
:class:`BadRequest` with a reason (the routes answer 400 with it, never a 500).

Imports no starlette (its types are annotations only): :mod:`watcherd.web.client` reads the
limits below on the CLI's fast path."""

from __future__ import annotations

import math
import os
from collections.abc import Sized
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.datastructures import QueryParams

MAX_N = 1000
MAX_TEXT = 1000  # characters of one query text
MAX_PARTS = 16  # texts and photos in one query
MAX_ID = 2**63 - 1


class BadRequest(ValueError):
    pass


def only(params: QueryParams, allowed: tuple[str, ...]) -> None:
    for name in params:
        if name not in allowed:
            raise BadRequest(f"unknown parameter {name!r} (allowed: {', '.join(allowed)})")


def integer(value: str, name: str, lo: int, hi: int) -> int:
    try:
        n = int(value, 10)
    except ValueError:
        raise BadRequest(f"{name} must be an integer, got {value[:40]!r}") from None
    if not lo <= n <= hi:
        raise BadRequest(f"{name} must be within {lo}..{hi}, got {n}")
    return n


def image_id(value: str, name: str = "image id") -> int:
    return integer(value, name, 1, MAX_ID)


def opt_int(params: QueryParams, name: str, default: int, lo: int, hi: int) -> int:
    value = params.get(name)
    return default if value is None or value == "" else integer(value, name, lo, hi)


def score(params: QueryParams, name: str) -> float | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    try:
        s = float(value)
    except ValueError:
        raise BadRequest(f"{name} must be a number, got {value[:40]!r}") from None
    if not math.isfinite(s) or not -1.0 <= s <= 1.0:
        raise BadRequest(f"{name} is a cosine, within -1..1; got {value[:40]!r}")
    return s


def texts(params: QueryParams, name: str) -> list[str]:
    out = []
    for value in params.getlist(name):
        if len(value) > MAX_TEXT:
            raise BadRequest(f"{name} is longer than {MAX_TEXT} characters")
        if "\x00" in value:
            raise BadRequest(f"{name} contains a NUL character")
        if value.strip():
            out.append(value)
    return out


def folder(params: QueryParams, name: str = "under") -> str | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if len(value) > 4096 or "\x00" in value:
        raise BadRequest(f"{name} is not a folder name")
    if not value.startswith("/"):
        raise BadRequest(f"{name} must be an absolute folder, got {value[:80]!r}")
    return os.path.normpath(value)


def model(params: QueryParams, name: str = "model") -> str | None:
    """``model`` (or ``pretrained``): a stored model's name as the CLI's --model takes it."""
    value = params.get(name)
    if value is None or value == "":
        return None
    if len(value) > 1000 or "\x00" in value:
        raise BadRequest(f"{name} is not a model name")
    return value


def check_parts(*groups: Sized) -> None:
    if sum(len(g) for g in groups) > MAX_PARTS:
        raise BadRequest(f"at most {MAX_PARTS} texts and photos in one query")
