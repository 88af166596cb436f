"""The CLI contract: exit codes, messages naming key and file, migrate, status, scan."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from tests.helpers import cli, query, write_config
from watcherd.store.migrations import SCHEMA_VERSION


def test_bad_config_exits_2_naming_key_and_file(tmp_path: Path) -> None:
    config = write_config(tmp_path, thumbnails={"format": "gif"})
    for command in (["run"], ["watch"], ["worker", "thumbnails"], ["status"], ["migrate"]):
        result = cli(config, *command)
        assert result.returncode == 2, (command, result.stderr)
        assert "thumbnails.format" in result.stderr and str(config) in result.stderr


def test_missing_watched_folder_is_a_clear_error(tmp_path: Path) -> None:
    config = write_config(tmp_path, watch={"paths": [str(tmp_path / "nope")]})
    result = cli(config, "run")
    assert result.returncode == 2
    assert "watch.paths" in result.stderr and "does not exist" in result.stderr


def test_no_config_and_bad_usage(tmp_path: Path) -> None:
    import subprocess
    import sys

    env = {"PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-m", "watcherd", "status"], capture_output=True,
                       text=True, env=env)
    assert r.returncode == 2 and "WATCHERD_CONFIG" in r.stderr
    r = subprocess.run([sys.executable, "-m", "watcherd", "worker", "bogus"], capture_output=True,
                       text=True, env=env)
    assert r.returncode == 2


def test_migrate_status_scan_retry(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    db_path = tmp_path / "watcherd.db"
    first = cli(config, "migrate")
    assert first.returncode == 0 and f"schema version 0 -> {SCHEMA_VERSION}" in first.stdout
    again = cli(config, "migrate")
    assert again.returncode == 0 and "current" in again.stdout

    Image.new("RGB", (50, 40), "blue").save(tmp_path / "photos" / "a.png")
    (tmp_path / "photos" / "sub").mkdir()
    Image.new("RGB", (50, 40), "red").save(tmp_path / "photos" / "sub" / "b.jpg")
    scan = cli(config, "scan")
    assert scan.returncode == 0, scan.stderr
    assert "2 new or changed" in scan.stdout and "queued 2 thumbnail and 2 embedding" in scan.stdout
    rows = query(db_path, "SELECT path, thumbnail_status, thumbnail_queued_at FROM images")
    assert len(rows) == 2 and all(r["thumbnail_queued_at"] for r in rows)
    rescan = cli(config, "scan", str(tmp_path / "photos" / "sub"))
    assert "0 new or changed, 1 unchanged" in rescan.stdout
    outside = cli(config, "scan", str(tmp_path))
    assert outside.returncode == 2 and "not under a watched folder" in outside.stderr

    status = cli(config, "status", "--json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["counts"]["thumbnail"] == {"pending": 2, "done": 0, "failed": 0}
    assert report["queues"] == {f"{_prefix(config)}thumbnails": 2,
                                f"{_prefix(config)}embeddings": 2}
    text = cli(config, "status").stdout
    assert "0 done, 2 pending, 0 failed" in text and "2 waiting in" in text

    retry = cli(config, "retry")
    assert retry.returncode == 0 and "re-queued 2 thumbnail and 2 embedding" in retry.stdout


def _prefix(config: Path) -> str:
    import tomllib

    return str(tomllib.loads(config.read_text())["broker"]["queue_prefix"])
