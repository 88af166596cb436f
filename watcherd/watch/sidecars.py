"""XMP sidecars seen by the watcher: one written, renamed into place, or removed beside a
photo makes that photo's metadata due again (``metadata_due``; its pixels are not computed
again). The watcher never parses metadata: a thumbnail worker reads the sidecar with the
photo's own metadata, and the sidecar's fields win.

The reconcile scan lists sidecars too: one newer than its photos' metadata rows (written or
changed while watcherd was stopped) makes them due. A sidecar *removed* while watcherd was
stopped is not noticed; ``watcherd retry --metadata`` reads every photo's metadata again."""

from __future__ import annotations

import os
import sqlite3

from watcherd import logs
from watcherd.metadata import sidecar
from watcherd.store import metadata as stored
from watcherd.watch.files import FileInfo
from watcherd.watch.rules import Rules

log = logs.get("watcherd.watch.sidecars")


def is_sidecar(rules: Rules, path: str) -> bool:
    """A sidecar's name (``*.xmp``, any case; not hidden or temporary, not excluded), in a
    watched folder that is not excluded."""
    return rules.sidecar_name_ok(os.path.basename(path)) \
        and not rules.excluded_folder(os.path.dirname(path))


def changed(conn: sqlite3.Connection, path: str) -> int:
    """The sidecar at ``path`` appeared, changed or went away: its photos' metadata is due."""
    described = sidecar.photo_stems(path)
    if described is None:
        return 0
    ids = stored.photos_of_sidecar(conn, *described)
    n = stored.mark_due(conn, ids, stored.SIDECAR) if ids else 0
    if n:
        log.info("sidecar changed: metadata due", path=path, photos=n)
    return n


def seen_in_scan(conn: sqlite3.Connection, files: list[FileInfo]) -> int:
    """Sidecars a scan listed: photos whose metadata is older than their sidecar are due."""
    due: list[int] = []
    for f in files:
        described = sidecar.photo_stems(f.path)
        if described is None:
            continue
        ids = stored.photos_of_sidecar(conn, *described)
        due += stored.older_than(conn, ids, f.mtime) if ids else []
    n = stored.mark_due(conn, due, stored.SIDECAR) if due else 0
    if n:
        log.info("sidecars newer than their photos' metadata: metadata due", photos=n)
    return n
