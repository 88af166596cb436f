"""Peak memory of the real embedding worker for one batch of the biggest photos allowed.

    .venv/bin/python benchmarks/embed_memory.py [--photos 32] [--megapixels 100] [--png 8]

Starts ``watcherd worker embeddings`` (the tiny random-weight model, ``batch_size`` = the
number of photos, embedded broker, the same malloc settings as ``watcherd run`` and the systemd
unit), waits for its model, reads its RSS (the baseline), sends one batch of distinct photos at
``max_pixels`` (JPEGs, and ``--png`` PNGs, which have no drafted decode: each is decoded at full
size, 300 MB for 100 MP), waits until every one is embedded and reads the worker's peak RSS
(VmHWM). Then does the same with glibc's default malloc settings. Prints the peak over the
baseline, and what holding every decoded photo of the batch at once would take.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from watcherd import config  # noqa: E402
from watcherd.broker.app import make_app  # noqa: E402
from watcherd.dispatch.outbox import Outbox  # noqa: E402
from watcherd.fleet import procinfo  # noqa: E402
from watcherd.store import discovery, schema  # noqa: E402
from watcherd.supervisor import EMBEDDING_ENV, watcherd_argv  # noqa: E402
from watcherd.testing import write_model_dir  # noqa: E402


def status_kb(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(x.split()[1]) for x in f if x.startswith(key + ":"))


def make_photos(folder: Path, n: int, n_png: int, mp: int) -> list[Path]:
    side = int((mp * 1_000_000) ** 0.5)
    rng = np.random.default_rng(0)
    x = np.linspace(0, 1, side, dtype=np.float32)
    base = np.add.outer(x, x) * 100 + 60
    rgb = np.stack([np.clip(base + 30 * c + rng.normal(0, 12, (side, side)).astype(np.float32),
                            0, 255).astype(np.uint8) for c in range(3)], -1)
    im = Image.fromarray(rgb)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=92)
    jpeg = buf.getvalue()
    buf = io.BytesIO()
    im.save(buf, "PNG", compress_level=1)
    png = buf.getvalue()
    paths = []
    for i in range(n):
        if i < n_png:  # a distinct tEXt chunk before IEND: distinct bytes, the same pixels
            p = folder / f"p{i:02d}.png"
            chunk = b"n\0" + str(i).encode()
            data = png[:-12] + _png_chunk(b"tEXt", chunk) + png[-12:]
        else:  # a distinct COM segment after SOI
            p = folder / f"j{i:02d}.jpg"
            com = f"photo {i}".encode()
            data = jpeg[:2] + b"\xff\xfe" + (len(com) + 2).to_bytes(2, "big") + com + jpeg[2:]
        p.write_bytes(data)
        paths.append(p)
    return paths


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    import zlib

    return (len(data).to_bytes(4, "big") + kind + data
            + zlib.crc32(kind + data).to_bytes(4, "big"))


def run(work: Path, model: str, photos: list[Path], malloc_env: dict[str, str]) -> dict[str, float]:
    subprocess.run(["rm", "-rf", *map(str, work.glob("bench.db*"))], check=True)
    cfg_path = work / "bench.toml"
    cfg_path.write_text(
        f'[watch]\npaths = ["{photos[0].parent}"]\n[database]\npath = "bench.db"\n'
        f'[embeddings]\nmodel = "{model}"\npretrained = ""\ndevice = "cpu"\nprecision = "fp32"\n'
        f"batch_size = {len(photos)}\nmax_wait_ms = 5000\n"
        f'[log]\nlevel = "info"\nformat = "json"\n')
    cfg = config.load(cfg_path)
    conn = schema.connect(cfg.database.path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    log = open(work / "worker.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([*watcherd_argv(), "-c", str(cfg_path), "worker", "embeddings"],
                            env={**env, **malloc_env}, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while b"embedding model loaded" not in (work / "worker.log").read_bytes():
            assert proc.poll() is None and time.monotonic() < deadline, "the worker did not start"
            time.sleep(0.2)
        time.sleep(2)
        baseline = procinfo.rss_kb(proc.pid) / 1024
        reuse = discovery.Reuse("m", "p", (64,), "webp")
        for p in photos:
            data = p.read_bytes()
            discovery.record_file(conn, str(p), len(data), 1.0,
                                  hashlib.sha256(data).hexdigest(), reuse)
        started = time.monotonic()
        Outbox(make_app(cfg), conn, cfg).send_due()
        while conn.execute("SELECT count(*) FROM images WHERE embedding_status = 'pending'"
                           ).fetchone()[0]:
            assert proc.poll() is None, "the worker died"
            assert time.monotonic() - started < 600, "the batch took too long"
            time.sleep(0.2)
        took = time.monotonic() - started
        failed = conn.execute("SELECT count(*) FROM images WHERE embedding_status = 'failed'"
                              ).fetchone()[0]
        assert failed == 0, f"{failed} failed"
        return {"baseline_mb": baseline, "peak_mb": status_kb(proc.pid, "VmHWM") / 1024,
                "after_mb": status_kb(proc.pid, "VmRSS") / 1024, "batch_s": took}
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
        conn.close()


THUMB_CHILD = """
import sys
from watcherd.media.thumbnails import make_thumbnails
def hwm():  # VmHWM starts again at exec (ru_maxrss would carry the parent's peak over)
    with open("/proc/self/status") as f:
        return next(int(x.split()[1]) // 1024 for x in f if x.startswith("VmHWM:"))
data = open(sys.argv[1], "rb").read()
base = hwm()
make_thumbnails(data, (256, 1024), fmt="webp", quality=80, max_pixels=10**9)
print(base, hwm())
"""


def thumbnail_peak(path: Path) -> tuple[int, int]:
    """Peak RSS (MB) of a fresh process before and after one photo's thumbnails (a pool
    child's cost for that photo)."""
    out = subprocess.run([sys.executable, "-c", THUMB_CHILD, str(path)], capture_output=True,
                         text=True, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    before, after = out.stdout.split()
    return int(before), int(after)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=int, default=32)
    ap.add_argument("--megapixels", type=int, default=100)
    ap.add_argument("--png", type=int, default=8)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="watcherd-embed-mem-"))
    folder = work / "photos"
    folder.mkdir()
    model = write_model_dir(work / "model")
    t = time.perf_counter()
    photos = make_photos(folder, a.photos, a.png, a.megapixels)
    size = sum(p.stat().st_size for p in photos) / 1e6
    print(f"{a.photos} photos of {a.megapixels} MP ({a.png} PNG, {a.photos - a.png} JPEG), "
          f"{size:.0f} MB on disk, made in {time.perf_counter() - t:.0f} s")
    for p in (photos[0], photos[-1]):
        before, after = thumbnail_peak(p)
        print(f"thumbnails of {p.suffix[1:].upper()} {a.megapixels} MP in a fresh process: peak "
              f"{after} MB ({before} MB with the bytes read, +{after - before} MB)")
    decoded_all = a.photos * a.megapixels * 3  # MB: every photo decoded at once, RGB 8-bit
    for name, env in (("watcherd's malloc settings", EMBEDDING_ENV), ("glibc defaults", {})):
        r = run(work, model, photos, env)
        print(f"{name:28} RSS after model {r['baseline_mb']:6.0f} MB, peak {r['peak_mb']:6.0f} MB "
              f"(+{r['peak_mb'] - r['baseline_mb']:.0f} MB), after the batch "
              f"{r['after_mb']:6.0f} MB; batch {r['batch_s']:.1f} s")
    print(f"every decoded photo of the batch held at once would be {decoded_all} MB, plus "
          f"{size:.0f} MB of file bytes")
    subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    main()
