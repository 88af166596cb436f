"""What a lane hands the watcher's main loop, through the loop's inbox: a file hashed, a file
that cannot be read, rows the scan found gone, the sidecars a scan listed, a scan finished, a
watched root that went away or came back. Plain frozen values: the lane thread makes them, the
main loop alone turns them into rows (``watch/recording``, ``watch/ingest``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from watcherd.watch.files import FileInfo
from watcherd.watch.scan import Progress


@dataclass(frozen=True)
class Hashed:
    path: str
    size: int
    mtime: float
    sha256: str
    started: float  # monotonic time the hash started
    source: Literal["live", "scan"]
    moved_from: tuple[int, str] | None = None  # a live row with this content whose file is gone
    duration_ms: float = 0.0  # reading and hashing the file


@dataclass(frozen=True)
class Sidecars:
    """XMP sidecars a scan listed (``watch/sidecars``)."""

    root: Path
    files: list[FileInfo]


@dataclass(frozen=True)
class Unreadable:
    path: str
    reason: str
    started: float


@dataclass(frozen=True)
class Gone:
    """Rows the scan found without their file (``paths``) or without their folder
    (``folders``: every row directly in them)."""

    root: Path
    before: str  # only rows not updated since then: newer ones come from live events
    paths: list[str] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ScanFinished:
    root: Path
    progress: Progress
    skipped: list[tuple[str, str]]
    duration_s: float


@dataclass(frozen=True)
class RootChanged:
    root: Path
    gone: bool  # the folder we watched is no longer there (deleted, unmounted, replaced)
    back: bool  # a folder is there to be watched anew


Result = Hashed | Unreadable | Gone | ScanFinished | RootChanged | Sidecars
