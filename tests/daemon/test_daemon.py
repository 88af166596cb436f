"""End to end: a real `watcherd run` (watcher + prefork thumbnail worker + solo embedding worker
as real processes) against each real broker, real inotify in tmp_path, a real SQLite file, and a
tiny open_clip model written by the tests and loaded through the production code path."""

from __future__ import annotations

import io
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

import watcherd.media.images  # noqa: F401 - registers the HEIF opener, for the reference embedding
from tests.helpers import (
    Daemon,
    all_final,
    photo,
    query,
    require_broker,
    rows_by_name,
    wait_for,
    write_config,
)

DONE_TIMEOUT = 90


def reference_embedding(model: str, path: Path) -> np.ndarray:
    import open_clip
    import torch

    m, _, preprocess = open_clip.create_model_and_transforms(model)
    m.eval()
    with torch.inference_mode():
        image = ImageOps.exif_transpose(Image.open(path))
        if image.mode == "RGBA":  # watcherd embeds transparent images as shown: on white
            image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image)
        v = m.encode_image(preprocess(image).unsqueeze(0))[0].numpy()
    return v / np.linalg.norm(v)


def slow_write(path: Path, data: bytes, chunks: int = 5, pause: float = 0.4) -> None:
    """A writer that keeps the file open and pauses between chunks (like a network copy)."""
    step = len(data) // chunks + 1
    with open(path, "wb") as f:
        for i in range(0, len(data), step):
            f.write(data[i:i + step])
            f.flush()
            time.sleep(pause)


@pytest.mark.parametrize("broker", ["embedded", "amqp", "redis"])
def test_run_end_to_end(broker: str, tmp_path: Path, tiny_model: str,
                        daemons: list[Daemon]) -> None:
    url = require_broker(broker)
    config = write_config(tmp_path, broker_url=url, model=tiny_model)
    photos, db_path = tmp_path / "photos", tmp_path / "watcherd.db"
    (photos / "old.jpg").write_bytes(photo(320, 240, 1))  # there before the daemon starts
    daemon = Daemon(config).start()
    daemons.append(daemon)

    # Files arriving while it runs: cp-like write, a rotated JPEG, a nested folder, a PNG,
    # a slow writer, a temporary name renamed at the end, and a corrupt file.
    (photos / "a.jpg").write_bytes(photo(640, 480, 2))
    (photos / "rotated.JPG").write_bytes(photo(600, 400, 3, orientation=6))
    (photos / "nested" / "deeper").mkdir(parents=True)
    Image.new("RGBA", (300, 200), (0, 128, 255, 100)).save(photos / "nested" / "deeper" / "p.png")
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    (photos / "download.jpg.part").write_bytes(photo(200, 200, 4))
    slow_write(photos / "slow.jpg", photo(800, 600, 5))
    (photos / "download.jpg.part").rename(photos / "download.jpg")
    (photos / "notes.txt").write_text("not an image")
    # What an iPhone writes: HEIC, upper-case extension.
    Image.open(io.BytesIO(photo(400, 300, 6))).save(photos / "IMG_0001.HEIC", "HEIF", quality=90)
    names = {"old.jpg", "a.jpg", "rotated.JPG", "p.png", "broken.jpg", "slow.jpg", "download.jpg",
             "IMG_0001.HEIC"}
    wait_for(lambda: all_final(db_path, names), DONE_TIMEOUT, "every file to reach a final status")

    rows = rows_by_name(db_path)
    assert set(rows) == names, "temporary names and non-images must not get rows"
    for name in names - {"broken.jpg"}:
        assert (rows[name]["thumbnail_status"], rows[name]["embedding_status"]) == ("done", "done")
    broken = rows["broken.jpg"]
    assert broken["thumbnail_status"] == "failed" and broken["thumbnail_error"]
    assert broken["embedding_status"] == "failed" and broken["embedding_error"]
    heic = rows["IMG_0001.HEIC"]
    assert (heic["format"], heic["width"], heic["height"]) == ("HEIF", 400, 300)
    # EXIF orientation 6: the stored size is the upright one, and so are the thumbnails.
    assert (rows["rotated.JPG"]["width"], rows["rotated.JPG"]["height"]) == (400, 600)
    thumbs = query(db_path, "SELECT size, width, height, format, data FROM thumbnails "
                   "WHERE image_id = ? ORDER BY size", (rows["rotated.JPG"]["id"],))
    assert [(t["size"], t["width"], t["height"], t["format"]) for t in thumbs] == [
        (64, 43, 64, "webp"), (256, 171, 256, "webp")]
    upright = Image.open(io.BytesIO(thumbs[1]["data"])).convert("RGB")
    r, g, b = upright.getpixel((upright.width - 5, 5))  # red corner rotated to the top right
    assert r > 180 and g < 90 and b < 90
    # The slow writer's file was taken once complete: its hash is of the final content.
    import hashlib
    assert rows["slow.jpg"]["sha256"] == hashlib.sha256((photos / "slow.jpg").read_bytes()
                                                        ).hexdigest()
    assert rows["slow.jpg"]["size"] == (photos / "slow.jpg").stat().st_size

    # Embeddings equal open_clip's own encode_image(preprocess(image)), L2-normalised.
    for name, path in [("a.jpg", photos / "a.jpg"), ("rotated.JPG", photos / "rotated.JPG"),
                       ("p.png", photos / "nested" / "deeper" / "p.png"),
                       ("IMG_0001.HEIC", photos / "IMG_0001.HEIC")]:
        (row,) = query(db_path, "SELECT model, pretrained, dim, vector FROM embeddings "
                       "WHERE image_id = ?", (rows[name]["id"],))
        stored = np.frombuffer(row["vector"], "<f4")
        assert row["dim"] == stored.size == 32 and row["model"] == "local-dir"
        assert abs(np.linalg.norm(stored) - 1) < 1e-4
        cosine = float(stored @ reference_embedding(tiny_model, path))
        assert cosine >= 0.999, f"{name}: cosine {cosine}"

    # Rename and move keep the row and do not reprocess; a delete sets deleted_at.
    before = rows["a.jpg"]
    created = query(db_path, "SELECT created_at FROM thumbnails WHERE image_id = ?",
                    (before["id"],))
    (photos / "nested" / "a-renamed.jpg").write_bytes(b"")  # an empty file: fails, stays apart
    os.rename(photos / "a.jpg", photos / "nested" / "deeper" / "a-moved.jpg")
    (photos / "old.jpg").unlink()
    wait_for(lambda: (rows_by_name(db_path).get("a-moved.jpg") is not None
                      and rows_by_name(db_path)["old.jpg"]["deleted_at"] is not None),
             30, "the move and the delete to be recorded")
    moved = rows_by_name(db_path)["a-moved.jpg"]
    assert moved["id"] == before["id"] and moved["thumbnail_status"] == "done"
    assert moved["path"] == str(photos / "nested" / "deeper" / "a-moved.jpg")
    assert query(db_path, "SELECT created_at FROM thumbnails WHERE image_id = ?",
                 (before["id"],)) == created
    wait_for(lambda: all_final(db_path, {"a-renamed.jpg"}), 30, "the empty file to fail")
    assert "empty" in rows_by_name(db_path)["a-renamed.jpg"]["thumbnail_error"]

    # Stop; files added while stopped are found by the start-up scan.
    assert daemon.stop() == 0
    assert "Traceback" not in daemon.log(), daemon.log()[-3000:]
    (photos / "while-down.jpg").write_bytes(photo(320, 240, 9))
    shutil.copy(photos / "slow.jpg", photos / "nested" / "copy-of-slow.jpg")
    daemon2 = Daemon(config).start()
    daemons.append(daemon2)
    wait_for(lambda: all_final(db_path, {"while-down.jpg", "copy-of-slow.jpg"}), DONE_TIMEOUT,
             "files added while stopped to be processed")
    rows = rows_by_name(db_path)
    assert rows["while-down.jpg"]["embedding_status"] == "done"
    # Identical content: the copy reuses the embedding instead of recomputing it.
    vectors = {r["image_id"]: r["vector"] for r in query(
        db_path, "SELECT image_id, vector FROM embeddings")}
    assert vectors[rows["copy-of-slow.jpg"]["id"]] == vectors[rows["slow.jpg"]["id"]]
    assert daemon2.stop() == 0
    # Every row exactly once per path, no duplicates, nothing left pending.
    paths = [r["path"] for r in query(db_path, "SELECT path FROM images")]
    assert len(paths) == len(set(paths))
    assert not query(db_path, "SELECT id FROM images WHERE deleted_at IS NULL AND "
                     "(thumbnail_status = 'pending' OR embedding_status = 'pending')")
