"""XMP sidecars on the watcher's side, in-process on real files and a real SQLite file: which
names are sidecars, which photos a sidecar marks due, and the scan that finds sidecars written
while watcherd was stopped (newer than their photos' metadata)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from watcherd.metadata.fields import Metadata
from watcherd.store import discovery, schema
from watcherd.store import metadata as stored
from watcherd.watch import scan, sidecars
from watcherd.watch.rules import Rules

REUSE = discovery.Reuse("m", "p", (64,), "webp")


def _due(conn: object) -> list[int]:
    return sorted(int(r[0]) for r in conn.execute(  # type: ignore[attr-defined]
        "SELECT image_id FROM metadata_due"))


def test_which_names_are_sidecars(tmp_path: Path) -> None:
    rules = Rules.of([tmp_path], ["jpg"], ["@eaDir", "*.tmp"])
    ok = [tmp_path / "IMG_1.xmp", tmp_path / "IMG_1.CR2.XMP", tmp_path / "a" / "b.Xmp"]
    not_ok = [tmp_path / ".IMG_1.xmp", tmp_path / "IMG_1.jpg", tmp_path / "x.xmp.tmp",
              tmp_path / "@eaDir" / "IMG_1.xmp", tmp_path / ".xmp", Path("/elsewhere/a.xmp")]
    assert [sidecars.is_sidecar(rules, str(p)) for p in ok] == [True] * 3
    assert [sidecars.is_sidecar(rules, str(p)) for p in not_ok] == [False] * 6
    assert not rules.is_candidate(str(tmp_path / "IMG_1.xmp"))  # never a photo itself


def test_a_sidecar_event_marks_its_photos_due(tmp_path: Path) -> None:
    conn = schema.connect(tmp_path / "a.db")
    jpg = discovery.record_file(conn, "/p/IMG_1.JPG", 1, 1.0, "h1", REUSE).id
    cr2 = discovery.record_file(conn, "/p/IMG_1.CR2", 1, 1.0, "h2", REUSE).id
    discovery.record_file(conn, "/p/IMG_2.JPG", 1, 1.0, "h3", REUSE)
    assert sidecars.changed(conn, "/p/IMG_1.CR2.xmp") == 1
    assert _due(conn) == [cr2]
    assert sidecars.changed(conn, "/p/IMG_1.xmp") == 2
    assert _due(conn) == sorted([jpg, cr2])
    assert sidecars.changed(conn, "/p/IMG_9.xmp") == 0


def test_the_scan_finds_sidecars_newer_than_their_photos_metadata(tmp_path: Path) -> None:
    conn = schema.connect(tmp_path / "a.db")
    root = tmp_path / "photos"
    root.mkdir()
    ids = {}
    for name in ("old", "new", "none"):
        (root / f"{name}.jpg").write_bytes(b"x")
        ids[name] = discovery.record_file(conn, str(root / f"{name}.jpg"), 1, 1.0, name,
                                          REUSE).id
        (root / f"{name}.xmp").write_bytes(b"<x/>")
    stored.save(conn, ids["old"], "old", Metadata().row())  # read after its sidecar was written
    stored.save(conn, ids["new"], "new", Metadata().row())
    hour_ago, later = time.time() - 3600, time.time() + 3600
    os.utime(root / "old.xmp", (hour_ago, hour_ago))
    os.utime(root / "new.xmp", (later, later))  # written after the row (watcherd was stopped)
    s = scan.Scan(conn, root, Rules.of([root], ["jpg"]))
    found = []
    while (diff := s.step()) is not None:
        found += diff.sidecars
        assert all(not f.path.endswith(".xmp") for f in diff.take)
    assert sorted(Path(f.path).name for f in found) == ["new.xmp", "none.xmp", "old.xmp"]
    assert sidecars.seen_in_scan(conn, found) == 2
    assert _due(conn) == sorted([ids["new"], ids["none"]])
