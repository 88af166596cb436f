"""The backlog against a real broker (Redis): what the feed counts when embeddings are remote
(the rest of the backlog is tested in-process in tests/unit/test_backlog.py)."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import write_config
from watcherd import config
from watcherd.broker.app import make_app, queue_names
from watcherd.dispatch.current_model import CurrentModel
from watcherd.dispatch.outbox import Outbox
from watcherd.store import schema

B = ("local-dir", "sha256:bbbb")  # as in tests/unit/test_backlog.py


def test_a_remote_backlog_counts_the_prepares_waiting_on_the_thumbnails_queue(
        tmp_path: Path) -> None:
    """With [embeddings] remote, backlog embeddings go out as prepare tasks on the thumbnails
    queue: that is where they wait ahead of new photos, so that is what the feed must see."""
    from tests.helpers import BROKERS
    from watcherd.broker.app import PREPARE_TASK

    cfg = config.load(write_config(tmp_path, broker_url=BROKERS["redis"],
                                   embeddings={"remote": True}))
    conn = schema.connect(cfg.database.path)
    app = make_app(cfg)
    thumbs = queue_names(cfg)["thumbnail"]
    try:
        for i in range(5):
            app.send_task(PREPARE_TASK, args=[i, "x", {}], queue=thumbs, routing_key=thumbs)
        assert Outbox(app, conn, cfg, model=CurrentModel(B))._depth("embedding") == 5
    finally:
        with app.connection_for_write() as c:
            for q in queue_names(cfg).values():
                c.default_channel.queue_delete(q)
