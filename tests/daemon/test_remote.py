"""Embedding workers on another machine ([embeddings] remote = true), one machine playing two:
the remote worker runs in its own mount and UTS namespaces (``unshare -mu``), where a tmpfs hides
the photo server's folder (database, photos, config) and the host name is ``gpu-box``; it talks
to the photo server only through the local RabbitMQ or Redis.

One run per broker: photos are embedded by the remote worker; killed after its first batch, a
local embedding worker takes over and nothing is lost (the recovery time is printed); then a
second remote worker joins the local one (a mixed fleet) and new photos are embedded too; the
vectors equal the local worker's own computation at cosine >= 0.999; `status` lists the remote
worker with its host, model, device and rate.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import (
    WATCHERD,
    Daemon,
    cli,
    jpeg,
    kill_group,
    query,
    require_broker,
    wait_for,
    write_config,
)
from watcherd import config
from watcherd.media.embeddings import Embedder
from watcherd.media.identity import identify
from watcherd.media.images import decode

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="the remote worker's namespace (unshare -mu, mount) needs root")

REMOTE_HOST = "gpu-box"


class RemoteWorker:
    """`watcherd worker embeddings` that cannot see ``hidden`` (the photo server's folder)."""

    def __init__(self, config_path: Path, hidden: Path) -> None:
        self.log_path = config_path.parent / f"remote-{time.monotonic_ns()}.log"
        script = (f"hostname {REMOTE_HOST} && mount -t tmpfs -o size=1m tmpfs {hidden} && "
                  f"test ! -e {hidden}/watcherd.db && exec \"$@\"")
        self.log_file = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            ["unshare", "-mu", "sh", "-c", script, "sh", *WATCHERD, "-c", str(config_path),
             "worker", "embeddings"],
            stdout=self.log_file, stderr=subprocess.STDOUT, start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        kill_group(self.proc.pid)
        self.proc.wait(10)
        self.log_file.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(20)
        self.kill()


def _photos(folder: Path, start: int, n: int) -> set[str]:
    for i in range(start, start + n):
        (folder / f"p{i:03d}.jpg").write_bytes(jpeg(i, 96 + i % 5 * 40))
    return {f"p{i:03d}.jpg" for i in range(start, start + n)}


def _done(db_path: Path, names: set[str]) -> bool:
    rows = query(db_path, "SELECT path, embedding_status FROM images")
    status = {Path(r["path"]).name: r["embedding_status"] for r in rows}
    return names <= set(status) and all(status[n] == "done" for n in names)


@pytest.mark.parametrize("broker", ["amqp", "redis"])
def test_remote_worker_behind_the_broker_only(broker: str, tmp_path: Path, tiny_model: str) -> None:
    url = require_broker(broker)
    server = tmp_path / "server"
    server.mkdir()
    server_cfg = write_config(server, broker_url=url, model=tiny_model,
                              embeddings={"remote": True})
    prefix = config.load(server_cfg).broker.queue_prefix
    (tmp_path / "remote").mkdir()
    url_file = tmp_path / "remote" / "broker-url"
    url_file.write_text(url + "\n")
    remote_cfg = tmp_path / "remote" / "remote.toml"
    remote_cfg.write_text(
        f'[broker]\nurl_file = "{url_file}"\nqueue_prefix = "{prefix}"\n'
        f'[embeddings]\nmodel = "{tiny_model}"\npretrained = ""\nbatch_size = 8\n'
        'max_wait_ms = 100\n[log]\nformat = "json"\n')
    photos = server / "photos"
    daemons = [Daemon(server_cfg, "watch").start(),
               Daemon(server_cfg, "worker", "thumbnails").start()]
    remotes = [RemoteWorker(remote_cfg, server)]
    try:
        first = _photos(photos, 0, 40)
        wait_for(lambda: "embeddings sent" in remotes[0].log(), 90,
                 "the remote worker's first batch")
        remotes[0].kill()
        killed_at = time.monotonic()
        daemons.append(Daemon(server_cfg, "worker", "embeddings").start())
        wait_for(lambda: _done(server / "watcherd.db", first), 90,
                 "every photo embedded after the remote worker was killed")
        print(f"\n{broker}: remote worker killed after its first batch; every photo done "
              f"{time.monotonic() - killed_at:.1f} s later (a local worker took over)")

        first_name = f"embeddings@{REMOTE_HOST}:{remotes[0].proc.pid}"
        wait_for(lambda: any(w["name"] == first_name and w["liveness"] == "dead"
                             for w in _status(server_cfg)["workers"]), 30,
                 "the killed remote worker's row to read dead")
        remotes.append(RemoteWorker(remote_cfg, server))  # a mixed fleet: remote + local
        wait_for(lambda: any(w["host"] == REMOTE_HOST and w["liveness"] == "alive"
                             and w["state"] == "ready" for w in _status(server_cfg)["workers"]),
                 60, "the second remote worker ready in status")
        more = _photos(photos, 40, 12)
        wait_for(lambda: _done(server / "watcherd.db", first | more), 60, "the new photos")
        status = _status(server_cfg)
        remote_rows = [w for w in status["workers"]
                       if w["host"] == REMOTE_HOST and w["liveness"] == "alive"]
        assert len(remote_rows) == 1 and remote_rows[0]["remote"] is True, status["workers"]
        assert remote_rows[0]["role"] == "embeddings" and remote_rows[0]["device"] == "cpu", \
            status["workers"]
        tiny = identify(tiny_model, "")
        assert (remote_rows[0]["model"], remote_rows[0]["pretrained"]) == (
            tiny.model, tiny.pretrained) and "per_minute" in remote_rows[0]
        assert any(w["role"] == "embeddings" and not w["remote"] and w["liveness"] == "alive"
                   for w in status["workers"])
        assert status["counts"]["embedding"]["failed"] == 0
        text = cli(server_cfg, "status").stdout
        assert f"@{REMOTE_HOST}:" in text and "(remote)" in text
        assert "guest:guest" not in text
        _same_as_local(server / "watcherd.db", tiny_model)
        assert "guest:guest" not in remotes[0].log() + remotes[1].log()
    finally:
        for r in remotes:
            r.stop()
        for d in daemons:
            d.stop()


def _status(cfg: Path) -> dict:
    out = cli(cfg, "status", "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _same_as_local(db_path: Path, model: str) -> None:
    """What the local worker would store: the photo decoded drafted to the model's input, then
    open_clip's own preprocess and model."""
    embedder = Embedder(model)
    rows = query(db_path, "SELECT i.path, e.vector FROM images i JOIN embeddings e "
                          "ON e.image_id = i.id")
    assert rows
    for r in rows:
        decoded = decode(Path(r["path"]).read_bytes(), max_pixels=10**8,
                         draft_size=embedder.input_size)
        ref = embedder.encode([embedder.preprocess(decoded.image)])[0]
        got = np.frombuffer(r["vector"], "<f4")
        cos = float(ref @ got / np.linalg.norm(ref) / np.linalg.norm(got))
        assert cos >= 0.999, (r["path"], cos)


def test_a_worker_of_another_model_refuses_and_says_why(tmp_path: Path, tiny_model: str) -> None:
    """A remote worker configured with another model takes no photo: it gives its messages
    back and stops taking work, says why in its log and in status; the right worker does all."""
    from watcherd.testing import write_model_dir

    url = require_broker("amqp")
    server = tmp_path / "server"
    server.mkdir()
    server_cfg = write_config(server, broker_url=url, model=tiny_model,
                              embeddings={"remote": True})
    prefix = config.load(server_cfg).broker.queue_prefix
    other_model = write_model_dir(tmp_path / "other-model", seed=1)
    wrong_cfg = tmp_path / "wrong.toml"
    wrong_cfg.write_text(
        f'[broker]\nurl = "{url}"\nqueue_prefix = "{prefix}"\n[embeddings]\n'
        f'model = "{other_model}"\npretrained = ""\nbatch_size = 4\n[log]\nformat = "json"\n')
    wrong = Daemon(wrong_cfg, "worker", "embeddings").start()
    daemons = [wrong, Daemon(server_cfg, "watch").start(),
               Daemon(server_cfg, "worker", "thumbnails").start()]
    try:
        other = identify(other_model, "")
        wait_for(lambda: any(w["pretrained"] == other.pretrained and w["state"] == "ready"
                             for w in _status(server_cfg)["workers"]), 60,
                 "the wrong worker ready")
        daemons.append(Daemon(server_cfg, "worker", "embeddings").start())
        names = _photos(server / "photos", 0, 24)
        wait_for(lambda: _done(server / "watcherd.db", names), 90, "every photo embedded")
        row = wait_for(lambda: next((w for w in _status(server_cfg)["workers"]
                                     if w["state"] == "refusing"), None), 30,
                       "the refusing worker's row")
        assert row["pretrained"] == other.pretrained and "wants model" in row["message"]
        assert "refusing work" in wrong.log() and wrong.proc is not None \
            and wrong.proc.poll() is None
        assert f"{row['message']}" in cli(server_cfg, "status").stdout
        assert query(server / "watcherd.db",
                     "SELECT count(*) AS n FROM embeddings WHERE pretrained = ?",
                     (other.pretrained,))[0]["n"] == 0
    finally:
        for d in daemons:
            d.stop()
