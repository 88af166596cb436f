"""Files replaced (new content, same name) or deleted while their tasks are queued or running:
the final row describes the file as it finally is — the final content's sha256 and thumbnails
(checked by pixel colour) — or is marked deleted. Never a stale thumbnail."""

from __future__ import annotations

import hashlib
import io
import os
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.helpers import Daemon, query, require_broker, wait_for
from tests.reliability.conftest import (
    assert_clean,
    jpeg,
    record,
    start_running,
    wait_settled,
)

RED, BLUE, GREEN = (220, 20, 20), (20, 20, 220), (20, 200, 20)


def _close(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    return all(abs(x - y) <= 40 for x, y in zip(a, b, strict=False))


@pytest.mark.parametrize("broker", ["embedded", "amqp"])
def test_replaced_and_deleted_while_processing(broker: str, tmp_path: Path, tiny_model: str,
                                               daemons: list[Daemon]) -> None:
    daemon, photos, db_path = start_running(tmp_path, require_broker(broker), tiny_model,
                                            daemons)
    n = 60
    for i in range(n):
        (photos / f"p{i:03d}.jpg").write_bytes(jpeg(i, size=600, colour=RED))
    # As soon as work has started, change the files under the workers' feet.
    wait_for(lambda: query(db_path, "SELECT 1 FROM images WHERE thumbnail_status != 'pending' "
                           "OR embedding_status != 'pending' LIMIT 1"), 60, "work to start")
    final: dict[str, tuple[int, int, int] | None] = {}
    for i in range(n):
        name = f"p{i:03d}.jpg"
        if i % 3 == 0:  # rewritten in place (truncate + write, like an editor saving)
            (photos / name).write_bytes(jpeg(1000 + i, size=600, colour=BLUE))
            final[name] = BLUE
        elif i % 3 == 1:  # replaced atomically (written to a temporary name, renamed over)
            tmp = photos / f".{name}.tmp"
            tmp.write_bytes(jpeg(2000 + i, size=600, colour=GREEN))
            os.replace(tmp, photos / name)
            final[name] = GREEN
        else:  # deleted before (or while) its task runs
            (photos / name).unlink()
            final[name] = None
    started = time.monotonic()
    s = wait_settled(db_path, photos, 120, "every file as it finally is",
                     expect_files=sum(1 for c in final.values() if c))
    took = time.monotonic() - started
    assert_clean(s)
    rows = {Path(r["path"]).name: r for r in query(db_path, "SELECT * FROM images")}
    stale = 0
    for name, colour in final.items():
        r = rows.get(name)
        if colour is None:
            assert r is None or r["deleted_at"] is not None, dict(r or {})
            continue
        assert r is not None and r["deleted_at"] is None
        data = (photos / name).read_bytes()
        assert r["sha256"] == hashlib.sha256(data).hexdigest(), name
        assert (r["thumbnail_status"], r["embedding_status"]) == ("done", "done"), dict(r)
        thumbs = query(db_path, "SELECT size, data FROM thumbnails WHERE image_id = ?",
                       (r["id"],))
        assert sorted(t["size"] for t in thumbs) == [64, 256]
        for t in thumbs:
            pixel = Image.open(io.BytesIO(t["data"])).convert("RGB").getpixel((10, 10))
            if not _close(pixel, colour):
                stale += 1
        assert len(query(db_path, "SELECT 1 FROM embeddings WHERE image_id = ?",
                         (r["id"],))) == 1
    assert stale == 0, f"{stale} stale thumbnails"
    log = daemon.log()
    assert daemon.stop() == 0
    # How often the race was really hit: a task found the file changed, or its result was stale.
    raced = log.count("file changed since discovery") + log.count("stale, dropped")
    record(fault="files replaced / deleted while processing", broker=broker, files=n,
           replaced=sum(1 for c in final.values() if c), deleted=n - s["files"],
           done=s["done"], failed=s["failed"], lost=s["lost"],
           stale_thumbnails=stale, tasks_that_saw_a_change=raced, settled_s=round(took, 1))
