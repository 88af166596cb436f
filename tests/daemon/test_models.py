"""Model and settings changes on a live library, through real `watcherd run` processes on the
embedded broker, checked in the database; nothing is queued by hand."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.helpers import Daemon, cli, photo, query, wait_for, write_config
from watcherd.store import outcomes
from watcherd.testing import write_model_dir

DONE_TIMEOUT = 90


def vectors(db_path: Path, pretrained: str) -> dict[int, str]:
    """image id -> created_at of this model's vectors."""
    return {r["image_id"]: r["created_at"] for r in query(
        db_path, "SELECT image_id, created_at FROM embeddings WHERE pretrained = ?",
        (pretrained,))}


def fingerprint(db_path: Path, source: Path) -> str:
    (row,) = query(db_path, "SELECT pretrained FROM models WHERE source = ?", (str(source),))
    return str(row["pretrained"])


def settled(db_path: Path, n: int, sizes: int) -> bool:
    """n live photos, every one embedded and with ``sizes`` thumbnails."""
    rows = query(db_path, "SELECT i.embedding_status AS e, i.thumbnail_status AS t, "
                 "(SELECT count(*) FROM thumbnails WHERE image_id = i.id) AS sizes "
                 "FROM images i WHERE i.deleted_at IS NULL")
    return len(rows) == n and all((r["e"], r["t"], r["sizes"]) == ("done", "done", sizes)
                                  for r in rows)


def run(config: Path, daemons: list[Daemon]) -> Daemon:
    daemon = Daemon(config).start()
    daemons.append(daemon)
    return daemon


def test_model_and_thumbnail_changes_on_a_live_library(tmp_path: Path,
                                                       daemons: list[Daemon]) -> None:
    model_a = tmp_path / "models" / "a"
    model_b = tmp_path / "models" / "b"
    write_model_dir(model_a, seed=1)
    write_model_dir(model_b, seed=2)
    photos, db_path = tmp_path / "photos", tmp_path / "watcherd.db"
    photos.mkdir()
    for i in range(4):
        (photos / f"p{i}.jpg").write_bytes(photo(200, 150, 10 + i))

    # 1. Model A, thumbnails at 64 px.
    daemon = run(write_config(tmp_path, model=f"local-dir:{model_a}",
                              thumbnails={"sizes": [64]}), daemons)
    wait_for(lambda: settled(db_path, 4, 1), DONE_TIMEOUT, "four photos done with model A")
    assert daemon.stop() == 0
    a = fingerprint(db_path, model_a)
    before_a = vectors(db_path, a)

    # 2. Model B and a 128 px size: a restart re-embeds and backfills on its own; a photo
    # added meanwhile is done too.
    config = write_config(tmp_path, model=f"local-dir:{model_b}",
                          thumbnails={"sizes": [64, 128]})
    daemon = run(config, daemons)
    (photos / "new.jpg").write_bytes(photo(200, 150, 20))
    wait_for(lambda: settled(db_path, 5, 2), DONE_TIMEOUT, "five photos done with model B")
    b = fingerprint(db_path, model_b)
    assert a != b and len(vectors(db_path, b)) == 5
    assert vectors(db_path, a) == before_a, "model A's vectors stay until purged"
    report = json.loads(cli(config, "status", "--json").stdout)
    stored = {m["pretrained"]: m for m in report["models"]["stored"]}
    assert (stored[b]["coverage"], stored[b]["configured"]) == (1.0, True)
    assert (stored[a]["photos"], stored[a]["configured"]) == (4, False)
    assert report["backfill"]["thumbnail"]["photos"] == 4
    assert report["backfill"]["embedding"]["photos"] == 4
    assert report["backfill"]["embedding"]["remaining"] == 0
    assert cli(config, "purge", "--model", "local-dir", "--pretrained", b).returncode == 2
    done = cli(config, "purge", "--model", "local-dir", "--pretrained", a)
    assert done.returncode == 0 and "removed 4 vectors" in done.stdout, done.stdout
    assert vectors(db_path, a) == {}
    assert daemon.stop() == 0

    # 3. Model B's folder moved: the same model, nothing re-embedded.
    before_b = vectors(db_path, b)
    moved = tmp_path / "elsewhere" / "renamed"
    moved.parent.mkdir()
    shutil.move(model_b, moved)
    daemon = run(write_config(tmp_path, model=f"local-dir:{moved}",
                              thumbnails={"sizes": [64, 128]}), daemons)
    (photos / "newer.jpg").write_bytes(photo(200, 150, 21))
    wait_for(lambda: settled(db_path, 6, 2), DONE_TIMEOUT, "the newer photo done")
    after_b = vectors(db_path, b)
    assert len(after_b) == 6 and {k: v for k, v in after_b.items() if k in before_b} == before_b
    assert query(db_path, "SELECT source FROM models WHERE pretrained = ?", (b,))[0][0] == str(
        moved)
    assert daemon.stop() == 0


def test_a_model_that_appears_late_catches_up(tmp_path: Path, daemons: list[Daemon]) -> None:
    late = tmp_path / "models" / "late"
    photos, db_path = tmp_path / "photos", tmp_path / "watcherd.db"
    photos.mkdir()
    for i in range(3):
        (photos / f"p{i}.jpg").write_bytes(photo(200, 150, 30 + i))
    daemon = run(write_config(tmp_path, model=f"local-dir:{late}"), daemons)

    def failed_for_the_model() -> bool:
        rows = query(db_path, "SELECT embedding_status, embedding_error FROM images")
        return len(rows) == 3 and all(
            r[0] == "failed" and r[1].startswith(outcomes.MODEL_UNAVAILABLE) for r in rows)

    wait_for(failed_for_the_model, DONE_TIMEOUT, "embeddings failed: no model yet")
    write_model_dir(late, seed=3)  # the weights arrive (a mount, a download finishing)
    wait_for(lambda: settled(db_path, 3, 2), DONE_TIMEOUT, "the photos embedded once it loads")
    assert "embedding model loaded" in daemon.log()
    assert daemon.stop() == 0


def test_a_worker_running_another_model_refuses_the_tasks(tmp_path: Path,
                                                          daemons: list[Daemon]) -> None:
    model_a, model_b = tmp_path / "models" / "a", tmp_path / "models" / "b"
    write_model_dir(model_a, seed=1)
    write_model_dir(model_b, seed=2)
    config_a = write_config(tmp_path, model=f"local-dir:{model_a}")
    prefix = next(line.split('"')[1] for line in config_a.read_text().splitlines()
                  if line.startswith("queue_prefix"))
    photos, db_path = tmp_path / "photos", tmp_path / "watcherd.db"
    (tmp_path / "b").mkdir()
    config_b = write_config(tmp_path / "b", model=f"local-dir:{model_b}",
                            watch={"paths": [str(photos)]},
                            database={"path": str(db_path)}, broker={"queue_prefix": prefix})
    run_a = Daemon(config_a, "watch").start()
    daemons.append(run_a)
    worker_b = Daemon(config_b, "worker", "embeddings").start()
    daemons.append(worker_b)
    (photos / "a.jpg").write_bytes(photo(200, 150, 40))

    def refused() -> bool:
        rows = query(db_path, "SELECT message FROM workers WHERE role = 'embeddings'")
        return bool(rows) and "refusing tasks for model 'local-dir'" in (rows[0][0] or "")

    wait_for(refused, DONE_TIMEOUT, "the worker to say it refuses model A's tasks")
    assert "tasks refused" in worker_b.log()
    (row,) = query(db_path, "SELECT embedding_status FROM images")
    assert row[0] == "pending", "never marked done with another model's vector"
    assert query(db_path, "SELECT count(*) FROM embeddings")[0][0] == 0
    assert worker_b.stop() == 0 and run_a.stop() == 0
