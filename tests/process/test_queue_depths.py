"""`watcherd status` when a queue's depth cannot be read."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import cli, write_config
from tests.libraries import spool_folder_is_a_file as _spool_folder_is_a_file
from watcherd import config
from watcherd.broker.app import (
    queue_names,
)


def test_status_shows_an_unknown_depth(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    cfg = config.load(path)
    queue = queue_names(cfg)["thumbnail"]
    with _spool_folder_is_a_file(cfg):
        text = cli(path, "status")
        report = json.loads(cli(path, "status", "--json").stdout)
    assert text.returncode == 0, text.stderr
    assert "queue depths unknown" in text.stdout and queue in text.stdout, text.stdout
    assert "waiting in" not in text.stdout
    assert report["queues"] is None and queue in report["broker_error"]
