"""A watched folder that goes away and comes back: deleted and re-created, or a disk unmounted
and mounted again (with the watcher running, and with the watcher started while it is not
mounted). Real inotify (and polling), a real `watcherd watch` process, real mounts."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import Daemon, photo, query, wait_for, write_config

TIMEOUT = 30


def _rows(db_path: Path) -> dict[str, tuple[int, bool]]:
    """name → (id, deleted)"""
    return {Path(r["path"]).name: (r["id"], r["deleted_at"] is not None)
            for r in query(db_path, "SELECT id, path, deleted_at FROM images")}


@pytest.mark.parametrize("polling", [False, True], ids=["inotify", "polling"])
def test_watched_folder_deleted_and_recreated_is_watched_again(
        tmp_path: Path, daemons: list[Daemon], polling: bool) -> None:
    config = write_config(tmp_path, watch={"polling": polling, "polling_interval_seconds": 0.5})
    photos, db_path = tmp_path / "photos", tmp_path / "watcherd.db"
    (photos / "a.jpg").write_bytes(photo(64, 48, 1))
    watcher = Daemon(config, "watch").start()
    daemons.append(watcher)
    wait_for(lambda: "a.jpg" in _rows(db_path), TIMEOUT, "a.jpg recorded")

    shutil.rmtree(photos)
    wait_for(lambda: _rows(db_path)["a.jpg"][1], TIMEOUT, "a.jpg marked deleted")
    wait_for(lambda: "watched folder is gone" in watcher.log(), TIMEOUT, "the gone warning")

    photos.mkdir()
    (photos / "b.jpg").write_bytes(photo(64, 48, 2))
    wait_for(lambda: "b.jpg" in _rows(db_path), TIMEOUT, "b.jpg in the re-created folder")
    assert "watching folder again" in watcher.log()
    # Watched live again (the periodic scan is an hour away): a file added now is taken.
    (photos / "c.jpg").write_bytes(photo(64, 48, 3))
    wait_for(lambda: "c.jpg" in _rows(db_path), TIMEOUT, "c.jpg taken by the new watch")
    assert watcher.log().count('"scan done"') == 2  # at start, and once the folder was back
    assert watcher.stop() == 0


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


def _can_mount(tmp: Path) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    probe = tmp / "probe"
    probe.mkdir()
    try:
        _mount("-t", "tmpfs", "tmpfs", str(probe))
    except subprocess.CalledProcessError:
        return False
    subprocess.run(["umount", str(probe)], check=True)
    return True


def test_disk_unmounted_and_mounted_again_keeps_every_row(
        tmp_path: Path, daemons: list[Daemon]) -> None:
    """A photo disk that is unplugged is not a deleted library: its rows stay, while the
    watcher runs and when it starts with the disk missing; once mounted again, what was added
    meanwhile is taken and nothing else is touched."""
    if not _can_mount(tmp_path):
        pytest.skip("needs root and mount(2)")
    disk = tmp_path / "disk"  # stands for the disk's filesystem: a tmpfs bound onto photos
    disk.mkdir()
    config = write_config(tmp_path)
    photos, db_path = tmp_path / "photos", tmp_path / "watcherd.db"
    mounted: list[Path] = []
    try:
        _mount("-t", "tmpfs", "tmpfs", str(disk))
        mounted.append(disk)
        (disk / "sub").mkdir()
        for name in ("a.jpg", "b.jpg", "sub/c.jpg"):
            (disk / name).write_bytes(photo(64, 48, len(name) + ord(name[0])))
        _mount("--bind", str(disk), str(photos))
        mounted.append(photos)

        watcher = Daemon(config, "watch").start()
        daemons.append(watcher)
        wait_for(lambda: len(_rows(db_path)) == 3, TIMEOUT, "three rows")
        before = _rows(db_path)

        subprocess.run(["umount", str(photos)], check=True)
        mounted.remove(photos)
        wait_for(lambda: "folder not scanned" in watcher.log(), TIMEOUT,
                 "the scan of the bare mount point to hold back")
        assert _rows(db_path) == before  # nothing marked deleted

        (disk / "d.jpg").write_bytes(photo(64, 48, 99))
        _mount("--bind", str(disk), str(photos))
        mounted.append(photos)
        wait_for(lambda: "d.jpg" in _rows(db_path), TIMEOUT, "d.jpg once mounted again")
        assert {k: v for k, v in _rows(db_path).items() if k != "d.jpg"} == before
        assert watcher.stop() == 0

        # Started while the disk is not mounted: the start scan keeps the rows too.
        subprocess.run(["umount", str(photos)], check=True)
        mounted.remove(photos)
        watcher = Daemon(config, "watch").start()
        daemons.append(watcher)
        wait_for(lambda: "folder not scanned" in watcher.log(), TIMEOUT, "the start scan")
        assert not any(deleted for _, deleted in _rows(db_path).values())
        _mount("--bind", str(disk), str(photos))
        mounted.append(photos)
        (disk / "e.jpg").write_bytes(photo(64, 48, 100))
        wait_for(lambda: "e.jpg" in _rows(db_path), TIMEOUT, "e.jpg after mounting")
        assert not any(deleted for _, deleted in _rows(db_path).values())
        assert watcher.stop() == 0
    finally:
        for m in reversed(mounted):
            with contextlib.suppress(subprocess.CalledProcessError):
                subprocess.run(["umount", "-l", str(m)], check=True)
