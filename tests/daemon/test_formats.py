"""RAWs, videos, JPEG XL and shots end to end, through a real `watcherd run` (embedded broker,
a tiny open_clip model): DNGs written from numpy data and tagged by exiftool, clips made by
Debian's ffmpeg, a JPEG XL by cjxl. Every file gets its thumbnails, its vector and its
metadata; a RAW beside its JPEG and a Live Photo's MOV beside its HEIC are one shot, shown
once by search and duplicates, whatever the order they arrive in; deleting or renaming a member
keeps the other whole; a broken RAW fails with LibRaw's reason.

Proprietary RAWs (CR2, NEF, ARW…) cannot be made here: the RAW path is tested with DNG."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pillow_heif
import pytest
from PIL import Image

from tests.helpers import Daemon, cli, photo, query, wait_for, write_config
from tests.rawfiles import make_dng
from tests.requires import tool
from tests.videofiles import make_clip
from tests.web.weblib import Serve, free_port, get

TIMEOUT = 120


def rows(db: Path) -> dict[str, dict[str, object]]:
    return {Path(r["path"]).name: dict(r) for r in query(
        db, "SELECT i.*, m.video_codec, m.fps, m.taken_at, m.taken_source, m.camera_make, "
            "m.country_code FROM images i LEFT JOIN metadata m ON m.image_id = i.id "
            "WHERE i.deleted_at IS NULL")}


def done(db: Path, names: set[str]) -> bool:
    got = rows(db)
    return names <= set(got) and all(
        got[n]["thumbnail_status"] != "pending" and got[n]["embedding_status"] != "pending"
        for n in names)


def face_of(got: dict[str, dict[str, object]], name: str) -> str | None:
    ids = {r["id"]: n for n, r in got.items()}
    shot = got[name]["shot_id"]
    return None if shot is None else ids.get(shot, f"#{shot}")


def heic(path: Path, seed: int) -> None:
    pillow_heif.register_heif_opener()
    Image.open(__import__("io").BytesIO(photo(320, 240, seed=seed))).save(path, format="HEIF")


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files, made once: DNGs (with a preview, without, tagged, broken), clips (H.264 with a
    black first second, a rotated phone clip, an iPhone MOV with QuickTime keys, an MKV, HEVC),
    a JPEG XL, a HEIC for the Live Photo."""
    tool("ffmpeg")
    tool("exiftool")
    tool("cjxl")
    out = tmp_path_factory.mktemp("formats")
    clips = tmp_path_factory.mktemp("clips")
    make_dng(out / "IMG_0001.DNG", width=640, height=480, preview_size=(640, 480), exif=True)
    (out / "IMG_0001.jpg").write_bytes(photo(640, 480, seed=11))
    make_dng(out / "bare.dng", width=320, height=240)  # no preview: demosaiced
    (out / "broken.dng").write_bytes((out / "bare.dng").read_bytes()[:2000])
    for name, target in (("black_start.mp4", "walk.mp4"), ("rotated_cw90.mp4", "phone.mp4"),
                         ("h264.mkv", "old.mkv"), ("iphone.mov", "IMG_0002.MOV")):
        shutil.copy(make_clip(clips, name), out / target)
    heic(out / "IMG_0002.HEIC", seed=12)
    png = out / "src.png"
    Image.open(__import__("io").BytesIO(photo(200, 150, seed=13))).save(png)
    subprocess.run(["cjxl", "--quiet", "-d", "1", str(png), str(out / "lake.jxl")], check=True,
                   capture_output=True)
    png.unlink()
    return out


def test_raws_videos_jxl_and_shots_end_to_end(tmp_path: Path, tiny_model: str, staged: Path,
                                              daemons: list[Daemon]) -> None:
    config = write_config(tmp_path, model=tiny_model, web={"listen": f"127.0.0.1:{free_port()}"})
    photos, db = tmp_path / "photos", tmp_path / "watcherd.db"
    d = Daemon(config).start()
    daemons.append(d)
    # The RAW before its JPEG, the clip before its still: the face is found either way.
    order = ["IMG_0001.DNG", "IMG_0002.MOV", "bare.dng", "broken.dng", "walk.mp4",
             "phone.mp4", "old.mkv", "lake.jxl", "IMG_0001.jpg", "IMG_0002.HEIC"]
    for name in order:
        shutil.copy(staged / name, photos / name)
    wait_for(lambda: done(db, set(order)), TIMEOUT, "every file processed")
    got = rows(db)

    raw = got["IMG_0001.DNG"]
    assert (raw["format"], raw["decode"], raw["media_type"]) == ("DNG", "raw-preview", "photo")
    assert (raw["thumbnail_status"], raw["embedding_status"]) == ("done", "done")
    assert raw["camera_make"] is not None and raw["taken_source"] == "DateTimeOriginal"
    assert got["bare.dng"]["decode"] == "raw-demosaic"
    broken = got["broken.dng"]
    assert broken["thumbnail_status"] == "failed"
    assert str(broken["thumbnail_error"]).startswith("RAW unreadable")

    walk = got["walk.mp4"]
    assert (walk["media_type"], walk["format"], walk["decode"]) == ("video", "MP4", "poster")
    assert walk["embedding_status"] == "done" and walk["video_codec"] == "h264"
    assert 3.5 < float(walk["duration"]) < 4.5 and walk["fps"] == 15
    phone = got["phone.mp4"]
    assert (phone["width"], phone["height"]) == (120, 160)  # turned upright
    mov = got["IMG_0002.MOV"]
    assert (mov["taken_source"], mov["country_code"]) == ("QuickTime:CreationDate", "FR")
    assert got["old.mkv"]["thumbnail_status"] == "done"
    assert got["lake.jxl"]["format"] == "JXL" and got["lake.jxl"]["embedding_status"] == "done"

    # Shots: the JPEG is the RAW's face, the HEIC the clip's.
    assert face_of(got, "IMG_0001.DNG") == face_of(got, "IMG_0001.jpg") == "IMG_0001.jpg"
    assert face_of(got, "IMG_0002.MOV") == face_of(got, "IMG_0002.HEIC") == "IMG_0002.HEIC"
    assert face_of(got, "walk.mp4") is None and face_of(got, "bare.dng") is None

    served(config, got)
    found = json.loads(cli(config, "search", "--local", "--image", str(photos / "IMG_0001.jpg"),
                           "-n", "50", "--json").stdout)
    names = [Path(h["path"]).name for h in found]
    assert "IMG_0001.DNG" not in names and "IMG_0002.MOV" not in names
    assert names.count("IMG_0001.jpg") == 1
    first = next(h for h in found if h["path"].endswith("IMG_0001.jpg"))
    assert [Path(m["path"]).name for m in first["shot"]] == ["IMG_0001.DNG"]
    # A RAW and a clip that are not in the library, as queries: embedded as the workers do.
    for outside, inside in (("bare.dng", "bare.dng"), ("walk.mp4", "walk.mp4")):
        top = json.loads(cli(config, "search", "--local", "--image", str(staged / outside),
                             "-n", "1", "--json").stdout)
        assert Path(top[0]["path"]).name == inside and top[0]["score"] > 0.999, top
    dups = json.loads(cli(config, "duplicates", "--local", "--threshold", "-1",
                          "--json").stdout)
    listed = {Path(p["path"]).name: p for g in dups["near"] for p in g["photos"]}
    assert "IMG_0001.DNG" not in listed and "IMG_0001.jpg" in listed
    assert [Path(m["path"]).name for m in listed["IMG_0001.jpg"]["shot"]] == ["IMG_0001.DNG"]

    # Deleting the JPEG keeps the RAW whole, its own face now; renaming the clip frees it.
    (photos / "IMG_0001.jpg").unlink()
    (photos / "IMG_0002.MOV").rename(photos / "other.MOV")
    wait_for(lambda: face_of(rows(db), "IMG_0001.DNG") is None
             and "other.MOV" in rows(db) and face_of(rows(db), "other.MOV") is None
             and face_of(rows(db), "IMG_0002.HEIC") is None, TIMEOUT,
             "the RAW and the clip standing alone")
    got = rows(db)
    assert got["IMG_0001.DNG"]["embedding_status"] == "done"
    found = json.loads(cli(config, "search", "--local", "--image",
                           str(photos / "IMG_0001.DNG"), "-n", "50", "--json").stdout)
    assert "IMG_0001.DNG" in [Path(h["path"]).name for h in found]
    assert d.stop() == 0


def served(config: Path, got: dict[str, dict[str, object]]) -> None:
    """The page and /original over that library: a video a browser plays is served inline with
    its video type (range requests too), one it cannot is a download; ▶ and the duration on a
    video's tile, the RAW+JPEG badge on a shot's face, a player on a video's page."""
    server = Serve(config).wait_ready()
    try:
        walk, mkv = got["walk.mp4"]["id"], got["old.mkv"]["id"]
        reply = get(f"{server.base}/original/{walk}", {"Range": "bytes=0-99"})
        assert reply.status == 206 and reply.headers["content-type"] == "video/mp4"
        assert "attachment" not in reply.headers.get("content-disposition", "")
        reply = get(f"{server.base}/original/{mkv}")
        assert reply.status == 200 and "attachment" in reply.headers["content-disposition"]
        page = get(server.base + "/").body.decode()
        assert "▶ 0:04" in page and "RAW+JPEG" in page and "LIVE" in page
        assert page.count(f'href="/photo/{got["IMG_0001.DNG"]["id"]}"') == 0  # by its face
        face = get(f"{server.base}/photo/{got['IMG_0002.HEIC']['id']}").body.decode()
        assert "IMG_0002.MOV" in face  # the shot's other file, linked
        still = get(f"{server.base}/api/images/{got['IMG_0002.HEIC']['id']}").json()
        assert still["shot_id"] == still["id"] and still["media_type"] == "photo"
        assert [Path(m["path"]).name for m in still["shot"]] == ["IMG_0002.MOV"]
        clip = get(f"{server.base}/api/images/{walk}").json()
        assert (clip["media_type"], clip["decode"], clip["format"]) == ("video", "poster", "MP4")
        assert 3.5 < clip["duration"] < 4.5 and clip["metadata"]["video_codec"] == "h264"
        video_page = get(f"{server.base}/photo/{walk}").body.decode()
        assert f'<video id="player" controls preload="metadata" src="/original/{walk}"' \
            in video_page
    finally:
        server.stop()
