"""When is a file complete? The settle state machine, with an injectable clock and stat.

A file is taken at once when it is known to be complete (closed after writing, moved into the
tree); otherwise when its size and mtime have been still for ``settle_seconds`` (writers that
keep the file open, network copies, a scan that finds a file modified moments ago).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from watcherd.watch.files import FileInfo, regular_file


@dataclass
class _Candidate:
    size: int
    mtime: float
    changed_at: float  # clock time of the last size/mtime change seen
    ready: bool = False  # complete: take without waiting


class SettleTracker:
    def __init__(self, settle_seconds: float, *, clock: Callable[[], float] = time.monotonic,
                 stat: Callable[[str], FileInfo | None] = regular_file) -> None:
        self.settle_seconds = settle_seconds
        self.clock = clock
        self.stat = stat
        self._candidates: dict[str, _Candidate] = {}

    def __len__(self) -> int:
        return len(self._candidates)

    def __contains__(self, path: str) -> bool:
        return path in self._candidates

    def mark(self, path: str, *, ready: bool) -> None:
        """An event says ``path`` changed (``ready``: and is complete now)."""
        info = self.stat(path)
        if info is None:
            self._candidates.pop(path, None)
            return
        now = self.clock()
        c = self._candidates.get(path)
        if c is None:
            self._candidates[path] = _Candidate(info.size, info.mtime, now, ready)
            return
        if (c.size, c.mtime) != (info.size, info.mtime):
            c.size, c.mtime, c.changed_at = info.size, info.mtime, now
        c.ready = c.ready or ready

    def forget(self, path: str) -> None:
        self._candidates.pop(path, None)

    def forget_under(self, folder: str) -> None:
        self.pop_under(folder)

    def pop_under(self, folder: str) -> list[str]:
        """Forget every path below ``folder``; returns them."""
        prefix = folder.rstrip("/") + "/"
        paths = [p for p in self._candidates if p.startswith(prefix)]
        for p in paths:
            del self._candidates[p]
        return paths

    def due(self) -> list[str]:
        """Paths complete now (removed from the tracker); stats the ones still settling."""
        if not self._candidates:
            return []
        now = self.clock()
        out: list[str] = []
        for path, c in list(self._candidates.items()):
            if not c.ready:
                info = self.stat(path)
                if info is None:
                    del self._candidates[path]
                    continue
                if (info.size, info.mtime) != (c.size, c.mtime):
                    c.size, c.mtime, c.changed_at = info.size, info.mtime, now
                    continue
                if now - c.changed_at < self.settle_seconds:
                    continue
            del self._candidates[path]
            out.append(path)
        return out
