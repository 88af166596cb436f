"""A queue depth that cannot be read is unknown, never 0 (issue 7, item 9): the outbox does not
re-send (``queue_depths`` raising on each broker: tests/integration/test_queue_depths.py;
``watcherd status`` saying so: tests/process/test_queue_depths.py)."""

from __future__ import annotations

from pathlib import Path

import structlog.testing

from tests.helpers import write_config
from tests.libraries import spool_folder_is_a_file as _spool_folder_is_a_file
from watcherd import config
from watcherd.broker.app import (
    make_app,
    queue_names,
)
from watcherd.config import Config
from watcherd.dispatch.outbox import Outbox
from watcherd.store import discovery, schema


def _stale_row(cfg: Config) -> int:
    """A pending row whose thumbnail task was sent long ago: due for a re-send if (and only if)
    its queue is empty."""
    conn = schema.connect(cfg.database.path)
    reuse = discovery.Reuse(model="m", pretrained="p", thumbnail_sizes=[64],
                            thumbnail_format="webp")
    image_id = discovery.record_file(conn, str(tmp_photo(cfg)), 1, 1.0, "a" * 64, reuse).id
    conn.execute("UPDATE images SET thumbnail_queued_at = '2000-01-01T00:00:00.000Z', "
                 "embedding_queued_at = '2999-01-01T00:00:00.000Z' WHERE id = ?", [image_id])
    conn.commit()
    return image_id


def tmp_photo(cfg: Config) -> Path:
    return cfg.watch.paths[0] / "a.jpg"


def _queued_at(cfg: Config, image_id: int) -> str:
    conn = schema.connect(cfg.database.path)
    return str(conn.execute("SELECT thumbnail_queued_at FROM images WHERE id = ?",
                            [image_id]).fetchone()[0])


def test_the_outbox_does_not_resend_to_a_queue_of_unknown_depth(tmp_path: Path) -> None:
    cfg = config.load(write_config(tmp_path, broker={"resend_after_seconds": 1}))
    image_id = _stale_row(cfg)
    outbox = Outbox(make_app(cfg), schema.connect(cfg.database.path), cfg)
    queue = queue_names(cfg)["thumbnail"]
    with structlog.testing.capture_logs() as events, _spool_folder_is_a_file(cfg):
        sent = outbox.send_due(resend_stale=True)
        again = outbox.send_due(resend_stale=True)
    assert sent == again == {"thumbnail": 0, "embedding": 0}
    assert outbox.broker_ok  # no send was even tried
    assert _queued_at(cfg, image_id).startswith("2000-")
    warnings = [e for e in events if e["event"].startswith("queue depth unknown")]
    assert len(warnings) == 1, events  # once, not every tick
    assert warnings[0]["queue"] == queue and "NotADirectoryError" in warnings[0]["error"]
    # The queue readable again (and empty): the stale row is sent again.
    assert outbox.send_due(resend_stale=True) == {"thumbnail": 1, "embedding": 0}
    assert not _queued_at(cfg, image_id).startswith("2000-")


