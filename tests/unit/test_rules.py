"""One name rule for the watcher, the observer and the scan: extensions, temporary names,
[watch] exclude patterns on folder and file names, hidden folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from watcherd import config
from watcherd.watch.rules import Rules

ROOT = Path("/srv/photos")
RULES = Rules.of([ROOT], ("jpg", "heic"))


@pytest.mark.parametrize("rel", [
    "a.jpg", "A.JPG", "2024/05/IMG_1.HEIC", "x y/ü.jpg", "Summer.lrdata-not/a.jpg",
])
def test_taken(rel: str) -> None:
    assert RULES.is_candidate(f"{ROOT}/{rel}")


@pytest.mark.parametrize("rel", [
    "notes.txt", ".a.jpg", "a.jpg.part", "a.jpg~", "a.crdownload",
    ".hidden/a.jpg", "2024/.thumbs/a.jpg",            # hidden folders (item 3)
    "@eaDir/a.jpg/SYNOFILE_THUMB_XL.jpg",             # Synology
    "2024/@eaDir/IMG_1.jpg/SYNOFILE_THUMB_M.jpg",
    "#recycle/a.jpg", "#snapshot/x/a.jpg", ".@__thumb/a.jpg", "@Recycle/a.jpg",
    ".stversions/a.jpg", ".Trash-1000/files/a.jpg", "Catalog Previews.lrdata/0/a.jpg",
    "$RECYCLE.BIN/a.jpg", "lost+found/a.jpg",
])
def test_not_taken(rel: str) -> None:
    assert not RULES.is_candidate(f"{ROOT}/{rel}")


def test_outside_every_root_is_never_taken() -> None:
    assert not RULES.is_candidate("/srv/other/a.jpg")
    assert not RULES.is_candidate("/srv/photos2/a.jpg")  # a prefix, not a parent


def test_a_root_with_an_excluded_name_is_still_watched() -> None:
    rules = Rules.of([Path("/mnt/.photos")], ("jpg",))
    assert rules.is_candidate("/mnt/.photos/a.jpg")
    assert not rules.is_candidate("/mnt/.photos/.cache/a.jpg")


def test_custom_exclude_replaces_the_defaults() -> None:
    rules = Rules.of([ROOT], ("jpg",), ("Private", "tmp-*"))
    assert rules.is_candidate(f"{ROOT}/.hidden/a.jpg")  # '.*' is no longer in the list
    assert not rules.is_candidate(f"{ROOT}/Private/a.jpg")
    assert not rules.is_candidate(f"{ROOT}/x/tmp-123/a.jpg")
    assert not rules.is_candidate(f"{ROOT}/x/tmp-a.jpg")  # file names match too
    assert rules.is_candidate(f"{ROOT}/private/a.jpg")  # case-sensitive, like the filesystem


def test_nested_roots_use_the_deepest() -> None:
    rules = Rules.of([ROOT, ROOT / "@eaDir"], ("jpg",))
    assert rules.root_of(f"{ROOT}/@eaDir/a.jpg") == ROOT / "@eaDir"
    assert rules.is_candidate(f"{ROOT}/@eaDir/a.jpg")


def test_config_exclude(tmp_path: Path) -> None:
    base = {"watch": {"paths": [str(tmp_path)]}, "database": {"path": "w.db"}}
    assert config.from_dict(base).watch.exclude == config.DEFAULT_EXCLUDE
    base["watch"]["exclude"] = ["@eaDir", "Backup*"]
    assert config.from_dict(base).watch.exclude == ("@eaDir", "Backup*")
    for bad in (["a/b"], [""], [3], "x"):
        base["watch"]["exclude"] = bad
        with pytest.raises(config.ConfigError, match=r"watch\.exclude"):
            config.from_dict(base)
