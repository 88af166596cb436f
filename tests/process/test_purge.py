"""`watcherd purge` as a real command."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import cli, query, write_config
from tests.libraries import REUSE
from tests.libraries import purge_library as library
from tests.libraries import purge_names as names
from watcherd.store import discovery, schema


def test_purge_removes_old_deleted_rows_and_their_blobs(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    db_path = tmp_path / "watcherd.db"
    ids = library(db_path)
    before = names(db_path)
    r = cli(config, "purge", "--older-than", "30")
    assert r.returncode == 0, r.stderr
    assert "removed 4 photos deleted more than 30 days ago, with 2 thumbnails and 2 embeddings"\
        in r.stdout, r.stdout
    retired = next(n for n in before if n.startswith("retired:"))
    # the newest row goes too: its id is never handed out again
    assert before - names(db_path) == {"old", "old_blobs", retired, "newest"}
    assert names(db_path) >= {"live", "recent", "retired"}
    assert query(db_path, "SELECT count(*) AS n FROM thumbnails")[0]["n"] == 0
    assert query(db_path, "SELECT count(*) AS n FROM embeddings")[0]["n"] == 0
    newest = max(ids.values())
    conn = schema.connect(db_path)
    assert discovery.record_file(conn, "/p/after.jpg", 1, 1.0, "after", REUSE).id == newest + 1
    conn.close()
    again = cli(config, "purge", "--older-than", "0", "--vacuum")
    assert again.returncode == 0 and "removed 1 photos" in again.stdout  # 'recent'
    assert "vacuumed" in again.stdout
    bad = cli(config, "purge", "--older-than", "-1")
    assert bad.returncode == 2 and "older-than" in bad.stderr
