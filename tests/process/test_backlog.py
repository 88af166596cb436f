"""The backlog seen from outside: `watcherd search` and `watcherd serve` as real processes
during a re-embed (the backlog's own logic is tested in-process in
tests/unit/test_backlog.py)."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import put_vectors, write_config
from watcherd import config
from watcherd.store import discovery, outcomes, schema, settings

REUSE = discovery.Reuse("x", "", [64], "webp")


def test_search_during_a_reembed_answers_with_the_old_model_and_says_so(tmp_path: Path) -> None:
    import json

    import numpy as np

    from tests.helpers import cli
    from watcherd.media.identity import identify
    from watcherd.testing import write_model_dir

    old = write_model_dir(tmp_path / "old", seed=1)
    new = write_model_dir(tmp_path / "new", seed=2)
    from tests.web.weblib import Serve, free_port, get

    config_path = write_config(tmp_path, model=new,
                               web={"listen": f"127.0.0.1:{free_port()}"})
    conn = schema.connect(config.load(config_path).database.path)
    ids = [discovery.record_file(conn, str(tmp_path / "photos" / f"{i}.jpg"), 1, 1.0, f"h{i}",
                                 REUSE).id for i in range(3)]
    rng = np.random.default_rng(0)
    for source, covered in ((old, ids), (new, ids[:1])):
        found = identify(source, "")
        settings.record_model(conn, found.model, found.pretrained, found.source)
        vecs = rng.normal(size=(len(covered), 32)).astype("<f4")
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        put_vectors(conn, found.model, found.pretrained, 32, [
            outcomes.EmbeddingRow(i, f"h{n}", v.tobytes()) for n, (i, v) in enumerate(
                zip(covered, vecs, strict=True))])
    old_key = identify(old, "")
    # the old model answers (its text tower loaded from where the models table says it lies)
    during = cli(config_path, "search", "a red car", "--json")
    assert during.returncode == 0, during.stderr
    assert len(json.loads(during.stdout)) == 3
    assert "note: the configured model 'local-dir' pretrained " in during.stderr
    assert f"searching with 'local-dir' pretrained '{old_key.pretrained}' (3 photos)" in \
        during.stderr
    # --model picks the new one explicitly: only what it covers so far, no note
    chosen = cli(config_path, "search", "a red car", "--json", "--model", new)
    assert chosen.returncode == 0, chosen.stderr
    assert len(json.loads(chosen.stdout)) == 1 and "note:" not in chosen.stderr
    # the web server says so too: the API's "note" and the page above the grid
    server = Serve(config_path).wait_ready()
    try:
        api = get(server.base + "/api/search?q=a+red+car").json()
        assert len(api["results"]) == 3 and "the configured model" in (api["note"] or "")
        page = get(server.base + "/?q=a+red+car").body.decode()
        assert 'id="note"' in page and "the configured model" in page
    finally:
        server.stop()
