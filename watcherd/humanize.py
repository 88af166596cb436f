"""Figures as a person reads them in status lines: durations and sizes."""

from __future__ import annotations


def duration(seconds: float) -> str:
    """``42 s``, ``12 min``, ``3.5 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def size(n: float | None) -> str:
    """``12 MB``, ``480 kB``, or ``size unknown``."""
    if n is None:
        return "size unknown"
    return f"{n / 1e6:.0f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"
