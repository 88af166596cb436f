"""The README's shot and video recipes, run as written against a real watcherd database made
through the store's own writers."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import readme_block
from watcherd.metadata.fields import Metadata
from watcherd.store import discovery, outcomes, schema

REUSE = discovery.Reuse("m", "p", (64,), "webp")
THUMBS = [outcomes.ThumbRow(64, 1, 1, "webp", b"x")]


def test_the_readme_shot_and_video_recipes(tmp_path: Path) -> None:
    conn = schema.connect(tmp_path / "watcherd.db")
    files = {"/p/IMG_1.CR2": None, "/p/IMG_1.JPG": None, "/p/IMG_2.HEIC": None,
             "/p/IMG_2.MOV": (3.0, "hevc", 30.0), "/p/clip.mp4": (61.5, "h264", 29.97),
             "/p/alone.dng": None, "/p/IMG_3.NEF": None, "/p/IMG_3.JPG": None}
    for i, (path, video) in enumerate(files.items()):
        image_id = discovery.record_file(conn, path, 1, 1.0, f"h{i}", REUSE).id
        md = Metadata(video_codec=video[1], fps=video[2]) if video else Metadata()
        outcomes.save_thumbnails(conn, image_id, f"h{i}", 1, 1, "X", THUMBS, md.row(),
                                 duration=video[0] if video else None)
    discovery.mark_deleted(conn, ["/p/IMG_3.JPG"])  # its RAW stands alone now
    conn.row_factory = None
    run = [tuple(r) for r in conn.execute(readme_block("shots"))]
    assert run == [("/p/IMG_1.JPG", "/p/IMG_1.CR2"), ("/p/IMG_2.HEIC", "/p/IMG_2.MOV")]
    videos = [tuple(r) for r in conn.execute(readme_block("videos"))]
    assert videos == [("/p/clip.mp4", 61.5, "h264", 29.97), ("/p/IMG_2.MOV", 3.0, "hevc", 30.0)]
    shown = conn.execute(readme_block("what-to-show")).fetchone()[0]
    assert shown == 5  # IMG_1.JPG, IMG_2.HEIC, clip.mp4, alone.dng, IMG_3.NEF
