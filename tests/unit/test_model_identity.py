"""A model's identity is what it computes (name + fingerprint of its weights), not where its
files lie; vectors stored under the old path-based key are relabelled; a worker refuses tasks
that expect another model."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.helpers import put_vectors, write_config
from watcherd import config, models
from watcherd.media.identity import LOCAL_DIR, identify
from watcherd.store import discovery, outcomes, schema, settings
from watcherd.store.vectors import ModelKey
from watcherd.worker.unacked import by_model


def model_dir(path: Path, weights: bytes = b"weights-a") -> Path:
    path.mkdir(parents=True)
    (path / "open_clip_config.json").write_text('{"model_cfg": {}}')
    (path / "open_clip_model.safetensors").write_bytes(weights)
    return path


def test_a_moved_folder_keeps_its_identity_and_new_weights_get_a_new_one(tmp_path: Path) -> None:
    a = identify(f"local-dir:{model_dir(tmp_path / 'a')}", "")
    moved = tmp_path / "elsewhere" / "b"
    moved.parent.mkdir()
    shutil.move(tmp_path / "a", moved)
    b = identify(f"local-dir:{moved}", "")
    assert (b.model, b.pretrained) == (a.model, a.pretrained) == (LOCAL_DIR, a.pretrained)
    assert a.pretrained.startswith("sha256:") and len(a.pretrained) == len("sha256:") + 16
    assert (a.source, b.source) == (str(tmp_path / "a"), str(moved))
    other = identify(f"local-dir:{model_dir(tmp_path / 'c', b'weights-c')}", "")
    assert other.pretrained != a.pretrained


def test_checkpoints_tags_and_hub_models(tmp_path: Path) -> None:
    ckpt = tmp_path / "b32.pt"
    ckpt.write_bytes(b"checkpoint")
    first = identify("ViT-B-32", str(ckpt))
    ckpt.rename(tmp_path / "renamed.pt")
    again = identify("ViT-B-32", str(tmp_path / "renamed.pt"))
    assert (first.model, first.pretrained) == (again.model, again.pretrained)
    assert first.model == "ViT-B-32" and first.pretrained.startswith("sha256:")
    tag = identify("ViT-B-32", "laion2b_s34b_b79k")
    assert (tag.model, tag.pretrained, tag.source) == ("ViT-B-32", "laion2b_s34b_b79k", "")
    assert identify("hf-hub:org/repo", "").model == "hf-hub:org/repo"
    with pytest.raises(OSError):
        identify(f"local-dir:{tmp_path / 'missing'}", "")


def test_fingerprints_are_cached_by_path_size_and_mtime(tmp_path: Path) -> None:
    conn = schema.connect(tmp_path / "w.db")
    folder = model_dir(tmp_path / "m")
    first = identify(f"local-dir:{folder}", "", settings.Fingerprints(conn))
    assert conn.execute("SELECT count(*) FROM fingerprints").fetchone()[0] == 2
    # Same size and mtime, other bytes: the cache answers without reading the file.
    weights = folder / "open_clip_model.safetensors"
    st = weights.stat()
    weights.write_bytes(b"weights-z")
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert identify(f"local-dir:{folder}", "", settings.Fingerprints(conn)) == first
    assert identify(f"local-dir:{folder}", "") != first  # without the cache: read again


def test_vectors_under_the_old_path_key_are_relabelled(tmp_path: Path) -> None:
    folder = model_dir(tmp_path / "model")
    cfg = config.load(write_config(tmp_path, model=f"local-dir:{folder}"))
    conn = schema.connect(cfg.database.path)
    rec = discovery.record_file(conn, str(tmp_path / "photos" / "a.jpg"), 1, 1.0, "h1",
                         discovery.Reuse("x", "", [], "webp"))
    legacy = ModelKey(cfg.embeddings.model, "")  # what watcherd before schema 6 stored
    put_vectors(conn, legacy.model, "", 2,
                             [outcomes.EmbeddingRow(rec.id, "h1", b"v" * 8)])
    # Before the watcher relabels them, search still finds them under the old key...
    assert models.configured_key(cfg, conn) == legacy
    identity = models.adopt(conn, cfg)
    assert identity is not None
    # ...after, under the identity; where the weights lie is in the models table.
    key = models.configured_key(cfg, conn)
    assert key == ModelKey(LOCAL_DIR, identity.pretrained)
    assert [tuple(r) for r in conn.execute("SELECT model, pretrained FROM embeddings")] == [
        (key.model, key.pretrained)]
    assert settings.model_sources(conn) == {(key.model, key.pretrained): str(folder)}
    assert models.loadable(cfg, conn, key) == (cfg.embeddings.model, "")


def request(*args: object) -> SimpleNamespace:
    return SimpleNamespace(args=list(args), kwargs={})


def test_a_worker_keeps_only_tasks_for_its_own_model() -> None:
    mine = ("local-dir", "sha256:aaaa")
    same, other, untagged = (request(1, "h1", *mine), request(2, "h2", "ViT-B-32", "openai"),
                             request(3, "h3"))
    ours, refused = by_model([same, other, untagged], mine)
    assert ours == [same, untagged]
    assert refused == {("ViT-B-32", "openai"): 1}
    # a worker whose model is not known yet refuses nothing (it fails or waits on its own)
    assert by_model([same, other], None) == ([same, other], {})
