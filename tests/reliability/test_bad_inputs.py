"""Bad inputs through the real running daemon (embedded broker): every one gets its documented
outcome, the workers stay up (same PIDs at the end) and retries stay bounded."""

from __future__ import annotations

import io
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import (
    WATCHERD,
    Daemon,
    png_claiming,
    query,
    require_broker,
    rows_by_name,
    wait_for,
)
from tests.reliability.conftest import (
    all_children,
    assert_clean,
    jpeg,
    record,
    reliability_config,
    wait_settled,
)

SETTLE_TIMEOUT = 90


def encode(im: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


def bad_inputs() -> dict[str, tuple[bytes, str, str]]:
    """name → (bytes, expected thumbnail status, expected reason/format substring)."""
    noise = Image.fromarray(np.random.default_rng(3).integers(0, 256, (120, 160, 3), np.uint8))
    good = encode(noise, "JPEG", quality=90)  # noisy: half the file is half the pixel data
    png = encode(noise, "PNG")
    palette = Image.new("P", (40, 20), 1)
    palette.putpalette([0, 0, 0, 255, 0, 0])
    palette.paste(0, (0, 0, 20, 20))
    frames = [Image.new("RGB", (32, 24), c) for c in ((0, 255, 0), (255, 0, 0), (0, 0, 255))]
    grey16 = Image.fromarray((np.arange(64 * 32).reshape(32, 64) * 31).astype(np.uint16))
    return {
        "zero-byte.jpg": (b"", "failed", "empty file"),
        "truncated.jpg": (good[: len(good) // 2], "failed", "truncated"),
        "truncated.png": (png[: len(png) // 2], "failed", "truncated"),
        "random-bytes.jpg": (np.random.default_rng(7).bytes(5000), "failed", "not an image"),
        "png-named.jpg": (png, "done", "PNG"),
        "bomb.png": (png_claiming(30000, 30000), "failed", "too many pixels"),
        "grey16.png": (encode(grey16, "PNG"), "done", "PNG"),
        "cmyk.jpg": (encode(Image.new("CMYK", (40, 40), (0, 255, 255, 0)), "JPEG"), "done",
                     "JPEG"),
        "palette-transparent.png": (encode(palette, "PNG", transparency=0), "done", "PNG"),
        "animated.gif": (encode(frames[0], "GIF", save_all=True, append_images=frames[1:],
                                duration=100, loop=0), "done", "GIF"),
        "animated.webp": (encode(frames[0], "WEBP", save_all=True, append_images=frames[1:],
                                 duration=100, loop=0, lossless=True), "done", "WEBP"),
        "фото 日本 ü.jpg": (jpeg(1), "done", "JPEG"),
        "with  spaces .jpg": (jpeg(2), "done", "JPEG"),
        "x" * 196 + ".jpg": (jpeg(3), "done", "JPEG"),
    }


def test_bad_inputs_through_the_running_daemon(tmp_path: Path, tiny_model: str,
                                               daemons: list[Daemon]) -> None:
    config = reliability_config(tmp_path, "", tiny_model)
    photos, db_path = tmp_path / "photos", tmp_path / "watcherd.db"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "elsewhere.jpg").write_bytes(jpeg(4))
    daemon = Daemon(config).start()
    daemons.append(daemon)
    assert daemon.proc is not None
    kids = all_children(daemon.proc.pid)
    wait_for(lambda: "embedding model loaded" in daemon.log(), 60, "the model to load")

    cases = bad_inputs()
    for name, (data, _, _) in cases.items():
        (photos / name).write_bytes(data)
    # Never followed, never a row: a symlink loop, links out of the tree, a folder named .jpg.
    (photos / "loop.jpg").symlink_to("loop.jpg")
    (photos / "loopdir").symlink_to(".")
    (photos / "outside.jpg").symlink_to(outside / "elsewhere.jpg")
    (photos / "outside-dir").symlink_to(outside)
    (photos / "folder.jpg").mkdir()
    (photos / "folder.jpg" / "notes.txt").write_text("not an image")

    s = wait_settled(db_path, photos, SETTLE_TIMEOUT, "every bad input to a final status",
                     expect_files=len(cases))
    rows = rows_by_name(db_path)
    assert set(rows) == set(cases), "links, loops and folders must not get rows"
    for name, (_, status, expected) in cases.items():
        r = rows[name]
        if status == "done":
            assert (r["thumbnail_status"], r["embedding_status"], r["format"]) == (
                "done", "done", expected), dict(r)
        else:
            assert r["thumbnail_status"] == r["embedding_status"] == "failed", dict(r)
            assert expected in r["thumbnail_error"] and expected in r["embedding_error"], dict(r)
        assert max(r["thumbnail_attempts"], r["embedding_attempts"]) <= 3, dict(r)
    failed = sum(1 for _, status, _ in cases.values() if status == "failed")
    assert_clean(s, failed=failed)
    assert all_children(daemon.proc.pid) == kids, "the workers must stay up (same PIDs)"
    assert daemon.stop() == 0
    for name in cases:
        r = rows[name]
        record(input=name if len(name) < 40 else f"{len(name)}-character name",
               thumbnail=r["thumbnail_status"], embedding=r["embedding_status"],
               reason=r["thumbnail_error"] or r["format"])
    record(input="symlink loop, links out of the tree, folder named .jpg", rows=0)


def _nobody() -> tuple[int, int] | None:
    try:
        pw = pwd.getpwnam("nobody")
    except KeyError:
        return None
    return pw.pw_uid, pw.pw_gid


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None or _nobody() is None,
                    reason="needs root, setpriv and a 'nobody' user (to run the watcher "
                           "unprivileged)")
def test_unreadable_file_as_unprivileged_watcher(tiny_model: str, daemons: list[Daemon]) -> None:
    """Root reads any file, so the watcher runs as nobody here (`watcherd run` cannot: its
    children re-exec the venv's python, which links into root's 0700 home; the workers run as
    root beside it). A chmod 000 file gets a row, failed with the reason, instead of no row; once
    readable again, the next scan takes it. RabbitMQ broker: the embedded spool's files would be
    owned by two users here."""
    uid, gid = _nobody()  # type: ignore[misc]
    base = Path(tempfile.mkdtemp(prefix="watcherd-nobody-"))
    try:
        base.chmod(0o755)
        # A server broker: the embedded spool's files would be owned by two users here.
        config = reliability_config(base, require_broker("amqp"), tiny_model)
        photos, db_path = base / "photos", base / "watcherd.db"
        for p in [base, *base.rglob("*")]:
            os.chown(p, uid, gid)
        (photos / "readable.jpg").write_bytes(jpeg(5))
        (photos / "secret.jpg").write_bytes(jpeg(6))
        os.chown(photos / "readable.jpg", uid, gid)
        (photos / "secret.jpg").chmod(0)

        class UnprivilegedWatcher(Daemon):
            def start(self) -> Daemon:
                self.log_file = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
                self.proc = subprocess.Popen(
                    ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                     *WATCHERD, "-c", str(self.config), "watch"],
                    stdout=self.log_file, stderr=subprocess.STDOUT, start_new_session=True,
                    env={**os.environ, "HOME": str(base)}, cwd=base)
                return self

        def start_all() -> list[Daemon]:
            watcher = UnprivilegedWatcher(config).start()
            daemons.append(watcher)
            # The watcher (nobody) creates the database, its WAL files and the spool first.
            wait_for(lambda: "scan done" in watcher.log(), 30, f"the watcher: {watcher.log()}")
            workers = [Daemon(config, "worker", "thumbnails").start(),
                       Daemon(config, "worker", "embeddings").start()]
            daemons.extend(workers)
            return [watcher, *workers]

        def wait_secret(condition: str, what: str) -> None:
            wait_for(lambda: query(db_path, "SELECT 1 FROM images WHERE path LIKE "
                                   f"'%secret.jpg' AND {condition}"), SETTLE_TIMEOUT, what)

        def stop_all() -> None:
            for d in running:
                assert d.stop() == 0

        done = "thumbnail_status = 'done' AND embedding_status = 'done'"
        running = start_all()
        try:
            s = wait_settled(db_path, photos, SETTLE_TIMEOUT, "both files to a final status",
                             expect_files=2)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{running[0].log()[-3000:]}") from None
        rows = rows_by_name(db_path)
        assert (rows["readable.jpg"]["thumbnail_status"],
                rows["readable.jpg"]["embedding_status"]) == ("done", "done")
        secret = rows["secret.jpg"]
        assert secret["thumbnail_status"] == secret["embedding_status"] == "failed", dict(secret)
        assert "unreadable" in secret["thumbnail_error"], dict(secret)
        assert_clean(s, failed=1)
        record(input="chmod 000 (watcher as nobody)", thumbnail=secret["thumbnail_status"],
               embedding=secret["embedding_status"], reason=secret["thumbnail_error"])
        # Made readable while the watcher runs (inotify IN_ATTRIB): taken within seconds, not
        # at the next periodic scan (an hour away by default), same row.
        (photos / "secret.jpg").chmod(0o644)
        wait_secret(done, "the file to be processed once chmod made it readable")
        assert running[0].log().count("scan done") == 1, "taken by a rescan, not by the event"
        assert rows_by_name(db_path)["secret.jpg"]["id"] == secret["id"]
        stop_all()
        record(input="chmod 644 afterwards, watcher running",
               thumbnail="done", embedding="done", reason="taken on the attribute change")
        # Unreadable again while stopped, readable at the next start: the start scan takes it
        # (its row carries no size/mtime, so a chmod without a content change still counts).
        (photos / "secret.jpg").chmod(0)
        (photos / "secret.jpg").write_bytes(jpeg(7))
        running = start_all()
        wait_secret("thumbnail_error LIKE 'unreadable%'", "the changed file to be failed again")
        stop_all()
        (photos / "secret.jpg").chmod(0o644)
        running = start_all()
        wait_secret(done, "the file to be processed at start once readable")
        stop_all()
    finally:
        shutil.rmtree(base, ignore_errors=True)
