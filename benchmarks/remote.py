"""Remote embedding ([embeddings] remote = true): what each end pays per photo, and what travels.

    flock /tmp/watcherd-cpu.lock .venv/bin/python benchmarks/remote.py [--photos 24]

Photo server, per photo:
  prepare   decode drafted to the model's input, resize + crop (Pillow), lossless WebP: what the
            thumbnail worker does for a remote worker (watcherd.worker.remote_prepare);
  baseline  the same photo's thumbnails ([thumbnails] defaults: 256 and 1024 px WebP), what the
            thumbnail worker does anyway, and the local embedding worker's own prepare step
            (decode drafted + open_clip's preprocess), measured in the same run;
  apply     the watcher writing results (parse + outcomes.save_vectors, 32 per message) into a
            real SQLite file, versus the local worker's save (the same writer), same batch size.
Remote worker, per photo: reading the pixels back (WebP decode + preprocess) versus the local
worker's prepare.
On the wire: the task message's JSON (base64 pixels) and the result's share per photo; the
cosine of the remote path's vector to the local worker's, for ViT-B-32 (random weights, fp32:
the tensors are bit-identical, so any difference is the model's own arithmetic).
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from watcherd.dispatch import remote
from watcherd.media import clipinput
from watcherd.media.embeddings import Embedder, to_blob
from watcherd.media.images import decode
from watcherd.media.thumbnails import make_thumbnails
from watcherd.store import discovery, outcomes, schema
from watcherd.testing import write_model_dir

SIZES = [(4000, 3000), (6000, 4000), (1600, 1200), (3024, 4032)]


def photo(width: int, height: int, seed: int) -> bytes:
    """A camera-like JPEG: smooth gradients, edges and sensor noise (compresses like a photo)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 64 + 1, width // 64 + 1, 3), dtype=np.uint8)
    base = Image.fromarray(small, "RGB").resize((width, height), Image.Resampling.BICUBIC)
    arr = np.asarray(base, dtype=np.int16) + rng.normal(0, 6, (height, width, 3)).astype(np.int16)
    out = io.BytesIO()
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(out, "JPEG", quality=90)
    return out.getvalue()


def per_photo_ms(fn: Callable[[bytes], Any], photos: list[bytes]) -> float:
    fn(photos[0])
    t0 = time.perf_counter()
    for p in photos:
        fn(p)
    return (time.perf_counter() - t0) * 1000 / len(photos)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=int, default=24)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="watcherd-remote-bench-"))
    photos = [photo(*SIZES[i % len(SIZES)], seed=i) for i in range(args.photos)]
    print(f"{len(photos)} JPEGs, {statistics.mean(len(p) for p in photos) / 1e6:.1f} MB on "
          f"average, sizes {sorted(set(SIZES))}")
    embedder = Embedder(write_model_dir(tmp / "b32", arch="ViT-B-32"), precision="fp32")
    spec = embedder.input_spec()
    assert spec is not None
    print(f"ViT-B-32 input spec: {spec.to_json()}")

    def prepare(data: bytes) -> bytes:
        d = decode(data, max_pixels=10**8, draft_size=spec.draft)
        return clipinput.to_wire(clipinput.prepare(d.image, spec))

    def local_prepare(data: bytes) -> Any:
        return embedder.preprocess(decode(data, max_pixels=10**8, draft_size=spec.draft).image)

    def thumbnails(data: bytes) -> Any:
        return make_thumbnails(data, (256, 1024), fmt="webp", quality=80, max_pixels=10**8)

    wires = [prepare(p) for p in photos]

    def remote_read(i: int) -> Any:
        return embedder.preprocess(clipinput.from_wire(wires[i], spec))

    t_prepare = per_photo_ms(prepare, photos)
    t_local = per_photo_ms(local_prepare, photos)
    t_thumbs = per_photo_ms(thumbnails, photos)
    idx = list(range(len(photos)))
    t0 = time.perf_counter()
    for i in idx:
        remote_read(i)
    t_read = (time.perf_counter() - t0) * 1000 / len(idx)
    print("\nphoto server, per photo (ms):")
    print(f"  prepare for a remote worker  {t_prepare:7.1f}")
    print(f"  baseline: thumbnails         {t_thumbs:7.1f}   prepare / thumbnails = "
          f"{t_prepare / t_thumbs:.2f}")
    print(f"  baseline: local prepare      {t_local:7.1f}   prepare / local = "
          f"{t_prepare / t_local:.2f}")
    print(f"remote worker, per photo (ms):\n  pixels -> tensor             {t_read:7.1f}   "
          f"/ local prepare = {t_read / t_local:.3f}")

    cfg_job = {"v": remote.PROTOCOL, "model": ["ViT-B-32", "laion2b_s34b_b79k"],
               "spec": spec.to_json()}
    messages = [json.dumps({"args": [123456, "f" * 64], "kwargs": {"remote": remote.with_pixels(
        cfg_job, w, 4000, 3000, "JPEG")}}) for w in wires]
    sizes = [len(w) for w in wires]
    msg = [len(m) for m in messages]
    vectors = embedder.encode([remote_read(i) for i in idx])
    local_vectors = embedder.encode([local_prepare(p) for p in photos])
    cos = (vectors * local_vectors).sum(axis=1)
    result = remote.Result("w", ("ViT-B-32", "x"), embedder.dim, "fp32", tuple(
        remote.Done(i, "f" * 64, to_blob(v), 4000, 3000, "JPEG") for i, v in
        enumerate(vectors[:32])))
    per_result = len(json.dumps(remote.result_json(result))) / len(result.done)
    print("\non the wire, per photo:")
    print(f"  WebP lossless pixels    mean {statistics.mean(sizes) / 1e3:6.1f} KB, max "
          f"{max(sizes) / 1e3:6.1f} KB (raw RGB {3 * spec.crop[0] * spec.crop[1] / 1e3:.1f} KB)")
    print(f"  task message (JSON)     mean {statistics.mean(msg) / 1e3:6.1f} KB, max "
          f"{max(msg) / 1e3:6.1f} KB (limit 200 KB)")
    print(f"  result (JSON)           {per_result / 1e3:6.2f} KB")
    print(f"  cosine remote vs local  min {cos.min():.6f}")

    n = 2048
    conn = schema.connect(tmp / "a.db")
    reuse = discovery.Reuse("m", "p", (256,), "webp")
    ids = [discovery.record_file(conn, f"/p/{i}.jpg", 1, 1.0, f"h{i}", reuse).id
           for i in range(2 * n)]
    blob = to_blob(vectors[0])
    rows = [outcomes.EmbeddingRow(i, f"h{k}", blob, 4000, 3000, "JPEG") for k, i in enumerate(ids)]
    t0 = time.perf_counter()
    for s in range(0, n, 32):
        outcomes.save_vectors(conn, [outcomes.Vectors("m", "p", embedder.dim, "fp32",
                                                      rows[s:s + 32])], configured=("m", "p"))
    t_save = (time.perf_counter() - t0) * 1000 / n
    t0 = time.perf_counter()
    for s in range(n, 2 * n, 32):
        body = remote.result_json(remote.Result("w", ("m", "p"), embedder.dim, "fp32", tuple(
            remote.Done(r.image_id, r.sha256, r.vector, 4000, 3000, "JPEG")
            for r in rows[s:s + 32])))
        r = remote.parse_result(json.loads(json.dumps(body)))
        outcomes.save_vectors(conn, [outcomes.Vectors("m", "p", r.dim, r.precision, [
            outcomes.EmbeddingRow(d.image_id, d.sha256, d.vector, d.width, d.height, d.format)
            for d in r.done])], configured=("m", "p"))
    t_apply = (time.perf_counter() - t0) * 1000 / n
    print(f"\nwatcher applying results ({n} photos, 32 per message, parse + write):")
    print(f"  apply {t_apply:.3f} ms/photo   baseline local save {t_save:.3f} ms/photo   "
          f"ratio {t_apply / t_save:.2f}")


if __name__ == "__main__":
    main()
