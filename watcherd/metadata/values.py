"""Sanitising what a file says: strings trimmed, stripped of control characters and bounded;
numbers finite (a rational with a zero denominator is NaN in Pillow: it is dropped here)."""

from __future__ import annotations

import math
import re
from typing import Any

MAX_TEXT = 500  # characters kept of any string
MAX_KEYWORDS = 200

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def text(value: Any) -> str | None:
    """A clean, non-empty string (bytes decoded as UTF-8, else latin-1), or None."""
    if isinstance(value, tuple) and len(value) == 1:
        value = value[0]
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            value = value.decode("latin-1")
    if not isinstance(value, str):
        return None
    value = _CONTROL.sub("", value.replace("\r\n", "\n").replace("\t", " ")).strip()
    return value[:MAX_TEXT].rstrip() or None


def number(value: Any) -> float | None:
    """A finite float from a number, an IFD rational, a one-item tuple or an XMP ``'1/250'``
    or ``'4.0'``; None for anything else (NaN, inf, zero denominators, text)."""
    if isinstance(value, tuple) and len(value) == 1:
        value = value[0]
    if isinstance(value, str):
        num, slash, den = value.strip().partition("/")
        try:
            value = float(num) / float(den) if slash else float(num)
        except (ValueError, ZeroDivisionError):
            return None
    if isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None
    return out if math.isfinite(out) else None


def positive(value: Any) -> float | None:
    """A finite number above zero (focal length, f-number, exposure time), else None."""
    out = number(value)
    return out if out is not None and out > 0 else None


def integer(value: Any, low: int, high: int) -> int | None:
    """A whole number within [low, high] (``'4.0'`` → 4), else None."""
    out = number(value)
    if out is None or out != int(out) or not low <= out <= high:
        return None
    return int(out)


def unique_texts(values: list[Any]) -> tuple[str, ...]:
    """Clean strings, de-duplicated in their order, at most :data:`MAX_KEYWORDS`."""
    seen: dict[str, None] = {}
    for value in values:
        clean = text(value)
        if clean is not None and clean not in seen:
            seen[clean] = None
            if len(seen) >= MAX_KEYWORDS:
                break
    return tuple(seen)
