"""Which names watcherd takes: one rule for the watcher, the observer and the scan.

- A folder whose own name matches a ``[watch] exclude`` pattern is not watched, not scanned, and
  nothing below it is taken (NAS thumbnail folders, recycle bins, sync-tool version folders,
  hidden folders through the ``.*`` pattern).
- A file is taken when its extension is one of ``[watch] extensions`` (any case), its name is
  not a temporary name (``.*``, ``*.part`` …: taken once renamed) and matches no exclude pattern,
  and no folder between its watched root and itself is excluded.

Patterns are shell globs (``fnmatch``, case-sensitive) on one name, never on a path.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from watcherd import config

TEMP_SUFFIXES = (".part", ".tmp", "~", ".crdownload", ".partial", ".swp")

# What NAS systems, sync tools and desktops put into photo folders; ``.*`` covers every hidden
# folder (the dot-named ones are listed too, so that removing ``.*`` keeps them out):
# Synology @eaDir (a thumbnail folder per photo), #recycle, #snapshot; QNAP @Recycle,
# @Recently-Snapshot, .@__thumb; Syncthing .stversions; desktop trash .Trash-*; Windows
# $RECYCLE.BIN; fsck's lost+found; Lightroom's *.lrdata previews.
DEFAULT_EXCLUDE = config.DEFAULT_EXCLUDE


@dataclass(frozen=True)
class Rules:
    roots: tuple[Path, ...]
    extensions: tuple[str, ...]
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE

    @classmethod
    def of(cls, roots: Iterable[Path], extensions: Sequence[str],
           exclude: Sequence[str] = DEFAULT_EXCLUDE) -> Rules:
        return cls(tuple(roots), tuple(e.lower().lstrip(".") for e in extensions),
                   tuple(exclude))

    def excluded_name(self, name: str) -> bool:
        return any(fnmatchcase(name, p) for p in self.exclude)

    def root_of(self, path: str) -> Path | None:
        """The watched root that holds ``path`` (the deepest one, if roots nest)."""
        best: Path | None = None
        for root in self.roots:
            r = str(root)
            if (path == r or path.startswith(r.rstrip("/") + "/")) and (
                    best is None or len(r) > len(str(best))):
                best = root
        return best

    def excluded_folder(self, path: str) -> bool:
        """A folder at or below an excluded folder (relative to its root), or outside every
        root. A watched root itself is never excluded."""
        root = self.root_of(path)
        if root is None:
            return True
        rel = path[len(str(root)):].strip("/")
        return bool(rel) and any(self.excluded_name(part) for part in rel.split("/"))

    def file_name_ok(self, name: str) -> bool:
        """The file-name part of the rule: extension, not a temporary name, not excluded."""
        if not name or name.startswith(".") or name.lower().endswith(TEMP_SUFFIXES):
            return False
        if self.excluded_name(name):
            return False
        ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
        return ext in self.extensions

    def sidecar_name_ok(self, name: str) -> bool:
        """An XMP sidecar's name (``*.xmp``, any case; not hidden, temporary or excluded):
        never taken as a photo, but it marks its photos' metadata due (``watch/sidecars``)."""
        return (name.lower().endswith(".xmp") and len(name) > 4 and not name.startswith(".")
                and not self.excluded_name(name))

    def is_candidate(self, path: str) -> bool:
        """A file path watcherd takes (its name and every folder above it, up to its root)."""
        return self.file_name_ok(os.path.basename(path)) and not self.excluded_folder(
            os.path.dirname(path))
