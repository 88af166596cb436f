"""Re-embedding an existing library after a model change, next to its first import.

    .venv/bin/python benchmarks/reembed.py                     # 400 photos, ViT-B-32 random weights
    .venv/bin/python benchmarks/reembed.py --arch tiny --photos 2000   # the pipeline, not the model

1. First import: N photos (640x480 JPEGs) on disk, `watcherd run` (embedded broker) with model
   A; every photo gets thumbnails and a vector.
2. Re-embed: the config names model B (same architecture, other random weights) and watcherd
   starts again: every photo is re-embedded from the backlog, fed in slices behind new photos.

Embedding throughput is read from the rows (embeddings.created_at): photos / (last vector -
first vector) of each model, so model loading and the scan are not counted; the wall time from
the start of `watcherd run` until the last vector is printed too. The first import also makes
thumbnails on the same cores, so the re-embed may be faster than it.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def jpeg(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    im = Image.fromarray(small).resize((640, 480), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def write_config(work: Path, photos: Path, model: str) -> Path:
    cfg = work / "watcherd.toml"
    cfg.write_text(
        f'[watch]\npaths = ["{photos}"]\n'
        f'[database]\npath = "{work / "watcherd.db"}"\n'
        f'[broker]\noutbox_interval_seconds = 1.0\n'
        f'[embeddings]\nmodel = "{model}"\npretrained = ""\nbatch_size = 32\n'
        f'[thumbnails]\nsizes = [256]\nconcurrency = 1\n'
        f'[log]\nformat = "json"\nlevel = "warning"\n')
    return cfg


def ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def query(db: Path, sql: str, params: tuple[object, ...] = ()) -> tuple[object, ...] | None:
    try:
        with sqlite3.connect(db, timeout=30) as c:
            return tuple(c.execute(sql, params).fetchone())
    except sqlite3.Error:
        return None


def run_until(cfg: Path, done: object, log: Path, timeout: float = 3600) -> float:
    """Start `watcherd run`, wait for ``done()``, stop it; the start time (epoch seconds)."""
    t0 = time.time()
    with open(log, "wb") as f:
        proc = subprocess.Popen([sys.executable, "-m", "watcherd", "-c", str(cfg), "run"],
                                stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while not done():  # type: ignore[operator]
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"not done; see {log}")
            time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return t0


def rate(db: Path, pretrained: str, n: int, t0: float) -> dict[str, float]:
    row = query(db, "SELECT count(*), min(created_at), max(created_at) FROM embeddings "
                    "WHERE pretrained = ?", (pretrained,))
    assert row is not None and row[0] == n, row
    first, last = ts(str(row[1])), ts(str(row[2]))
    return {"img_s": (n - 1) / max(last - first, 1e-9), "wall_s": last - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--photos", type=int, default=400)
    ap.add_argument("--arch", default="ViT-B-32", help="'tiny' or a built-in open_clip name")
    ap.add_argument("--work", type=Path, help="working folder (default: a temporary one)")
    args = ap.parse_args()
    from watcherd.testing import write_model_dir

    work = args.work or Path(tempfile.mkdtemp(prefix="watcherd-reembed-"))
    work.mkdir(parents=True, exist_ok=True)
    photos = work / "library"
    shutil.rmtree(photos, ignore_errors=True)
    old = time.time() - 3600
    for i in range(args.photos):
        sub = photos / f"{i // 100:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"IMG_{i:05d}.jpg").write_bytes(jpeg(i))
        os.utime(sub / f"IMG_{i:05d}.jpg", (old, old))
    for p in work.glob("watcherd.db*"):
        p.unlink()
    model_a = write_model_dir(work / "model-a", arch=args.arch, seed=1)
    model_b = write_model_dir(work / "model-b", arch=args.arch, seed=2)
    db, n = work / "watcherd.db", args.photos

    def covered(key: str) -> bool:
        row = query(db, "SELECT count(*) FROM embeddings e JOIN models m ON m.model = e.model "
                        "AND m.pretrained = e.pretrained WHERE m.source = ?", (key,))
        return row is not None and row[0] == n

    t0 = run_until(write_config(work, photos, model_a), lambda: covered(model_a[10:]),
                   work / "import.log")
    a = str(query(db, "SELECT pretrained FROM models WHERE source = ?", (model_a[10:],))[0])  # type: ignore[index]
    first = rate(db, a, n, t0)
    t1 = run_until(write_config(work, photos, model_b), lambda: covered(model_b[10:]),
                   work / "reembed.log")
    b = str(query(db, "SELECT pretrained FROM models WHERE source = ?", (model_b[10:],))[0])  # type: ignore[index]
    again = rate(db, b, n, t1)
    print(f"library: {n} photos (640x480 JPEG), model {args.arch} (random weights), "
          f"batch 32, {os.cpu_count()} CPUs, embedded broker")
    print(f"{'':<22}{'img/s':>9}{'wall s':>9}")
    print(f"{'first import':<22}{first['img_s']:>9.1f}{first['wall_s']:>9.1f}")
    print(f"{'re-embed (backlog)':<22}{again['img_s']:>9.1f}{again['wall_s']:>9.1f}")
    print(f"re-embed / first import: {again['img_s'] / first['img_s']:.2f}x img/s")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
