"""Every route of a real ``watcherd serve`` over a database written by a real ``watcherd run``
whose workers are alive: worker rows, scans, models and settings as the daemon writes them, not
as a fixture builds them (the library of tests/web/weblib.py has no worker rows, and /metrics
once answered 500 whenever one existed)."""

from __future__ import annotations

import json
import time
import urllib.parse
from pathlib import Path

from tests.helpers import Daemon, all_final, photo, query, wait_for, write_config
from tests.web.weblib import Serve, free_port, get

NAMES = {f"r{i}.jpg" for i in range(4)}


def test_every_route_answers_over_a_live_run(tmp_path: Path, tiny_model: str,
                                             daemons: list[Daemon]) -> None:
    config = write_config(tmp_path, model=tiny_model,
                          web={"listen": f"127.0.0.1:{free_port()}"})
    db_path = tmp_path / "watcherd.db"
    daemons.append(Daemon(config).start())
    for i, name in enumerate(sorted(NAMES)):
        (tmp_path / "photos" / name).write_bytes(photo(320, 240, 70 + i))
    wait_for(lambda: all_final(db_path, NAMES), 120, "the photos to be done")
    wait_for(lambda: len(query(db_path, "SELECT 1 FROM workers WHERE state = 'ready'")) == 2,
             30, "both workers' rows ready")
    image_id = query(db_path, "SELECT id FROM images ORDER BY id LIMIT 1")[0]["id"]

    server = Serve(config).wait_ready()
    try:
        base = server.base
        for route in ("/", "/?q=" + urllib.parse.quote("a red corner"), f"/?like={image_id}",
                      f"/photo/{image_id}", "/status", "/api/search?q=red",
                      f"/api/search?image={image_id}&not=blue", f"/api/images/{image_id}",
                      f"/api/similar/{image_id}?n=2", "/api/status", f"/thumb/{image_id}/64",
                      f"/original/{image_id}", "/metrics", "/api/duplicates?threshold=0.5",
                      "/timeline", "/?taken=2000..2100", "/api/search?q=red&taken=2000..2100"):
            reply = get(base + route)
            assert reply.status == 200, (route, reply.status, reply.body[:500], server.log())
        status = get(base + "/api/status").json()
        roles = {w["role"]: w for w in status["workers"]}
        assert roles["embeddings"]["alive"] and roles["thumbnails"]["alive"], roles
        assert status["alerts"] == [], status["alerts"]  # the live workers do the work
        page = get(base + "/status").body.decode()
        assert "embeddings@" in page and "thumbnails@" in page
        metrics = get(base + "/metrics").body.decode()
        assert 'watcherd_workers_alive{role="embeddings"} 1.0' in metrics, metrics
        assert 'watcherd_workers_alive{role="thumbnails"} 1.0' in metrics, metrics
        assert 'watcherd_images{kind="embedding",status="done"} 4.0' in metrics, metrics
        assert 'watcherd_alert{kind="embeddings_wait"} 0.0' in metrics, metrics
        hits = get(base + "/api/search?q=red&n=10").json()["results"]
        assert {Path(h["path"]).name for h in hits} == NAMES, json.dumps(hits)
        # metadata the worker wrote: no tags, so the file's date, in the server's zone
        assert 'watcherd_metadata_photos{field="with_metadata"} 4.0' in metrics, metrics
        year = time.localtime().tm_year
        listed = get(base + f"/api/search?taken={year - 1}..{year + 1}").json()["results"]
        assert {Path(h["path"]).name for h in listed} == NAMES, json.dumps(listed)
        assert all(h["score"] is None and h["taken_at"] for h in listed)
    finally:
        server.stop()
