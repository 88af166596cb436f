"""Model and settings changes on a live library, through real `watcherd run` processes on the
embedded broker, checked in the database; nothing is queued by hand."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.conftest import Daemon, query, wait_for, write_config
from tests.integration.test_daemon import photo
from watcherd.testing import write_model_dir

DONE_TIMEOUT = 90


def vectors(db_path: Path) -> dict[tuple[int, str, str], str]:
    """(image id, model, pretrained) -> created_at."""
    return {(r["image_id"], r["model"], r["pretrained"]): r["created_at"]
            for r in query(db_path, "SELECT image_id, model, pretrained, created_at "
                                    "FROM embeddings")}


def embedded(db_path: Path, n: int) -> bool:
    rows = query(db_path, "SELECT embedding_status FROM images WHERE deleted_at IS NULL")
    return len(rows) == n and all(r["embedding_status"] == "done" for r in rows)


def test_a_moved_weights_folder_is_not_a_new_model(tmp_path: Path,
                                                    daemons: list[Daemon]) -> None:
    model = write_model_dir(tmp_path / "models" / "tiny", seed=1)
    config = write_config(tmp_path, model=model)
    photos, db_path = tmp_path / "photos", tmp_path / "watcherd.db"
    for i in range(3):
        (photos / f"p{i}.jpg").write_bytes(photo(200, 150, 10 + i))
    daemon = Daemon(config).start()
    daemons.append(daemon)
    wait_for(lambda: embedded(db_path, 3), DONE_TIMEOUT, "three photos embedded")
    assert daemon.stop() == 0
    before = vectors(db_path)
    assert {(m, p[:7]) for _, m, p in before} == {("local-dir", "sha256:")}

    moved = tmp_path / "elsewhere" / "renamed"
    moved.parent.mkdir()
    shutil.move(tmp_path / "models" / "tiny", moved)
    config = write_config(tmp_path, model=f"local-dir:{moved}")
    daemon = Daemon(config).start()
    daemons.append(daemon)
    (photos / "new.jpg").write_bytes(photo(200, 150, 20))
    wait_for(lambda: embedded(db_path, 4), DONE_TIMEOUT, "the new photo embedded")
    after = vectors(db_path)
    assert len(after) == 4, "one vector per photo: the moved model is the same model"
    assert {k: v for k, v in after.items() if k in before} == before, "nothing re-embedded"
    (source,) = query(db_path, "SELECT source FROM models")
    assert source["source"] == str(moved)
    assert daemon.stop() == 0
