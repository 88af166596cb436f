"""Lane results become rows; results that went stale while their file was hashed are dropped
(a delete or a move handled by the main loop after the hash started), never resurrected."""

from __future__ import annotations

from pathlib import Path

from watcherd.store import discovery, schema
from watcherd.watch.ingest import Ingest
from watcherd.watch.lane import Hashed, Unreadable

REUSE = discovery.Reuse("m", "p", (64,), "webp")


class Clock:
    def __init__(self) -> None:
        self.now = 10.0

    def __call__(self) -> float:
        return self.now


def hashed(path: str, started: float, sha: str = "s") -> Hashed:
    return Hashed(path, 1, 1.0, sha + path, started, "live")


def test_rows_in_one_batch_and_stale_results_dropped(tmp_path: Path) -> None:
    conn = schema.connect(tmp_path / "w.db")
    clock = Clock()
    ingest = Ingest(conn, REUSE, clock=clock)
    ingest.went_away("/p/deleted.jpg")           # at 10.0
    ingest.folder_went_away("/p/gone")           # at 10.0
    ingest.folder_went_away("/p/old", moved_to="/p/new")
    results = [hashed("/p/a.jpg", 9.0), hashed("/p/deleted.jpg", 9.5),
               hashed("/p/gone/b.jpg", 9.0), hashed("/p/old/c.jpg", 9.9),
               hashed("/p/later.jpg", 11.0), hashed("/p/deleted.jpg", 10.5, "again"),
               Unreadable("/p/u.jpg", "read error: Input/output error", 9.0)]
    assert ingest.apply(results) == 3
    rows = {r[0]: r[1] for r in conn.execute("SELECT path, thumbnail_status FROM images")}
    assert rows == {"/p/a.jpg": "pending", "/p/later.jpg": "pending",
                    "/p/deleted.jpg": "pending", "/p/u.jpg": "failed"}
    assert ingest.stats["stale"] == 3
    assert ingest.retake == ["/p/new/c.jpg"]  # hashed under the old name: take it again
    clock.now += 1000
    ingest.prune()
    assert not ingest._stale("/p/deleted.jpg", 0.0)
