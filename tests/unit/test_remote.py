"""Remote embedding without a broker: the worker-only config, the broker password kept out of
output and logs, the messages' shapes, a worker's refusals, and the writer's rules on a real
SQLite file (idempotent; changed, deleted or done photos dropped)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from watcherd import config, logs
from watcherd.config import ConfigError
from watcherd.dispatch import remote
from watcherd.media import clipinput
from watcherd.media.clipinput import InputSpec
from watcherd.redact import mask_text
from watcherd.store import discovery, outcomes, schema
from watcherd.worker.remote_embed import Refused, check

SPEC = InputSpec(draft=64, resize=64, interpolation="bicubic", crop=(64, 64))
REUSE = discovery.Reuse("m", "p", (64,), "webp")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "w.toml"
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------------ config


def test_a_remote_worker_needs_only_broker_and_embeddings(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("amqp://watcherd:s3cret@nas.lan:5672//\n")
    path = _write(tmp_path, '[broker]\nurl_file = "secret"\n[embeddings]\nmodel = "ViT-B-32"\n')
    cfg = config.load(path, remote=True)
    assert not cfg.local and cfg.broker.url == "amqp://watcherd:s3cret@nas.lan:5672//"
    assert cfg.broker.shown_url == "amqp://watcherd:****@nas.lan:5672//"
    assert "s3cret" not in repr(cfg)
    with pytest.raises(ConfigError, match=r"\[database\] required"):
        _ = cfg.database
    with pytest.raises(ConfigError, match=r"watch.paths: required"):
        config.load(path)  # any other command still needs them


def test_a_remote_worker_on_the_embedded_broker_is_a_clear_error(tmp_path: Path) -> None:
    path = _write(tmp_path, '[embeddings]\nmodel = "ViT-B-32"\n')
    with pytest.raises(ConfigError, match=r"broker.url: .*embedded broker .* local only"):
        config.load(path, remote=True)


@pytest.mark.parametrize("broker,match", [
    ('url = "amqp://a:b@h//"\nurl_file = "f"', "url or url_file, not both"),
    ('url_file = "missing"', "broker.url_file: cannot read"),
    ('url = "ftp://u:topsecret@h"', "must be empty"),
    ('url = "amqp://h//"\nca_file = "w.toml"', "only used with amqps://"),
    ('url = "amqps://h//"\nca_file = "nope.pem"', "is not a file"),
])
def test_bad_broker_settings_name_the_key(tmp_path: Path, broker: str, match: str) -> None:
    path = _write(tmp_path, f"[broker]\n{broker}\n[embeddings]\n")
    with pytest.raises(ConfigError, match=match) as err:
        config.load(path, remote=True)
    assert "topsecret" not in str(err.value)


def test_passwords_are_masked_in_every_log_line(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        logs.setup("info", "json")
        logs.get("t").warning("broker unreachable",
                              error="cannot connect to redis://:pw1@h:6379/0")
        logging.getLogger("kombu.connection").error("Connection to amqp://u:pw2@h// refused")
        try:
            raise OSError("amqps://u:pw3@h:5671// handshake failed")
        except OSError:
            logging.getLogger("celery").exception("broken")
    finally:  # the handler writes to capsys' stream, closed after this test
        root.handlers[:], root.level = handlers, level
    err = capsys.readouterr().err
    assert "pw1" not in err and "pw2" not in err and "pw3" not in err
    assert err.count("****") >= 3
    assert mask_text("amqp://guest:p@ss@h//") == "amqp://guest:****@h//"


# ---------------------------------------------------------------------------------- messages


def test_job_and_result_round_trip(tmp_path: Path) -> None:
    pixels = clipinput.to_wire(clipinput.prepare(Image.new("RGB", (80, 64), (9, 8, 7)), SPEC))
    raw = remote.with_pixels(remote.job(("M", "P"), SPEC), pixels, 800, 640, "JPEG")
    job = remote.parse_job(raw, need_pixels=True)
    assert (job.model, job.spec, job.pixels, job.width, job.format) == (("M", "P"), SPEC, pixels,
                                                                        800, "JPEG")
    vec = np.arange(4, dtype="<f4").tobytes()
    r = remote.Result("w", ("M", "P"), 4, "fp16", (remote.Done(1, "s", vec, 8, 6, "PNG"),),
                      (remote.Failed(2, "t", "bad"),))
    assert remote.parse_result(remote.result_json(r)) == r


@pytest.mark.parametrize("body,match", [
    ({"type": "embeddings", "v": 99}, "protocol 99"),
    ({"type": "embeddings", "v": 1, "worker": "w", "model": ["m", ""], "dim": 4,
      "done": [[1, "s", "AAAA", 1, 1, "PNG"]]}, "3 bytes, 4 float32"),
    ({"type": "heartbeat"}, "not an embeddings result"),
])
def test_bad_results_are_named(body: dict, match: str) -> None:
    with pytest.raises(remote.BadMessage, match=match):
        remote.parse_result(body)


def test_a_worker_refuses_another_model_protocol_or_input() -> None:
    class Model:  # what check() reads of an Embedder
        def input_spec(self) -> InputSpec:
            return SPEC

    key = ("ViT-B-32", "laion2b_s34b_b79k")
    mine = remote.Job(key, SPEC)
    check(Model(), key, None, mine)  # type: ignore[arg-type]
    with pytest.raises(Refused, match=r"wants model 'ViT-L-14'.* has 'ViT-B-32'"):
        check(Model(), key, None,  # type: ignore[arg-type]
              remote.Job(("ViT-L-14", "openai"), SPEC))
    other = InputSpec(draft=224, resize=224, interpolation="bicubic", crop=(224, 224))
    with pytest.raises(Refused, match="prepares input"):
        check(Model(), key, None, remote.Job(key, other))  # type: ignore[arg-type]
    with pytest.raises(Refused, match="could not be loaded: no weights"):
        check(None, None, "no weights", mine)
    with pytest.raises(remote.BadMessage, match="protocol 2, this worker speaks 1"):
        remote.parse_job({"v": 2}, need_pixels=True)


# ------------------------------------------------------------------------------------ writer


def test_results_are_applied_once_and_only_to_the_same_pending_photo(tmp_path: Path) -> None:
    conn = schema.connect(tmp_path / "a.db")
    ids = [discovery.record_file(conn, f"/p/{n}.jpg", 10, 1.0, f"h{n}", REUSE).id for n in range(4)]
    discovery.mark_deleted(conn, ["/p/2.jpg"])
    discovery.record_file(conn, "/p/3.jpg", 11, 2.0, "h3-new", REUSE)  # changed since it was sent
    vec = np.ones(4, dtype="<f4").tobytes()
    rows = [outcomes.EmbeddingRow(i, f"h{n}", vec, 8, 6, "JPEG") for n, i in enumerate(ids)]
    batch = [outcomes.Vectors("m", "p", 4, "fp32", rows)]
    first = outcomes.save_vectors(conn, batch, configured=("m", "p"),
                                  failures=[(ids[1], "h1", "pixels damaged")])
    assert (first.saved, first.failed, first.dropped) == (2, 0, 3)
    again = outcomes.save_vectors(conn, batch, configured=("m", "p"))
    assert (again.saved, again.dropped) == (0, 4)
    status = {r["path"]: r["embedding_status"] for r in conn.execute(
        "SELECT path, embedding_status FROM images")}
    assert status == {"/p/0.jpg": "done", "/p/1.jpg": "done", "/p/2.jpg": "pending",
                      "/p/3.jpg": "pending"}
    assert conn.execute("SELECT count(*) FROM embeddings").fetchone()[0] == 2


# ------------------------------------------------------------------------------------ outbox


def test_the_outbox_prepares_remote_embeddings_once_a_worker_said_its_input(
        tmp_path: Path) -> None:
    """On the embedded broker, in-process: nothing is sent before a worker of the model said
    what it takes; then prepare tasks go to the thumbnails queue, at most remote_in_flight."""
    from watcherd.broker.app import make_app, queue_depths, queue_names
    from watcherd.dispatch.current_model import CurrentModel
    from watcherd.dispatch.outbox import Outbox

    (tmp_path / "photos").mkdir()
    cfg = config.from_dict({"watch": {"paths": [str(tmp_path / "photos")]},
                            "database": {"path": str(tmp_path / "w.db")},
                            "embeddings": {"remote": True, "remote_in_flight": 5}})
    conn = schema.connect(cfg.database.path)
    for n in range(12):
        discovery.record_file(conn, f"/p/{n}.jpg", 10, 1.0, f"h{n}", REUSE)
    conn.execute("UPDATE images SET thumbnail_status = 'done'")
    spec: list[InputSpec] = []
    app = make_app(cfg)
    outbox = Outbox(app, conn, cfg, input_spec=lambda: spec[0] if spec else None,
                    model=CurrentModel(("m", "")))
    assert outbox.send_due() == {"thumbnail": 0, "embedding": 0}
    spec.append(SPEC)
    assert outbox.send_due() == {"thumbnail": 0, "embedding": 5}
    assert outbox.send_due()["embedding"] == 0  # five in flight already
    conn.execute("UPDATE images SET embedding_status = 'done' WHERE id IN (1, 2)")
    assert outbox.send_due()["embedding"] == 2
    names = queue_names(cfg)
    assert queue_depths(app, cfg) == {names["thumbnail"]: 7, names["embedding"]: 0}
