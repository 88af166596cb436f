"""XMP sidecars seen by the watcher: one written, renamed into place, or removed beside a
photo makes that photo's metadata due again (``metadata_due``; its pixels are not computed
again). The watcher never parses metadata: a thumbnail worker reads the sidecar with the
photo's own metadata, and the sidecar's fields win.

A sidecar changed while watcherd was stopped is not seen (a scan compares photos, not
sidecars); ``watcherd retry --metadata`` reads every photo's metadata again."""

from __future__ import annotations

import os
import sqlite3

from watcherd import logs
from watcherd.metadata import sidecar
from watcherd.store import metadata as stored
from watcherd.watch.rules import TEMP_SUFFIXES, Rules

log = logs.get("watcherd.watch.sidecars")


def is_sidecar(rules: Rules, path: str) -> bool:
    """A sidecar's name (``*.xmp``, any case; not hidden or temporary, not excluded), in a
    watched folder that is not excluded."""
    name = os.path.basename(path)
    if not name.lower().endswith(".xmp") or name.startswith(".") \
            or name.lower().endswith(TEMP_SUFFIXES) or rules.excluded_name(name):
        return False
    return not rules.excluded_folder(os.path.dirname(path))


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
