"""How long one photo at the largest size ``[images] max_pixels`` allows takes: prints figures
that size the thumbnail task's time limits and the embedding worker's step limit.

    .venv/bin/python benchmarks/time_limits.py [--megapixels 100] [--repeat 2]

For each kind of file (a 100 MP JPEG, a 100 MP 16-bit TIFF, a 100 MP PNG, a 100 MP HEIC when
pillow-heif is installed), in this process, one at a time:
- ``thumbnails``: ``make_thumbnails`` at the default sizes (what a thumbnail task computes);
- ``embedding prepare``: ``decode`` drafted to the model's input + ``Embedder.preprocess`` (the
  embedding worker's per-photo step; the tiny model: preprocessing does not depend on the model).
The slowest time of each step, and the default limits against it (the margin: how many times
slower a CPU may be before a healthy photo times out).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from watcherd.config import EmbeddingsConfig, ThumbnailsConfig  # noqa: E402
from watcherd.fleet import procinfo  # noqa: E402
from watcherd.media.images import ImageError, decode  # noqa: E402
from watcherd.media.thumbnails import make_thumbnails  # noqa: E402
from watcherd.testing import write_model_dir  # noqa: E402


def photo_like(side: int, seed: int = 0) -> np.ndarray:
    """A smooth picture with grain (compresses like a photo, unlike pure noise)."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, side, dtype=np.float32)
    base = np.add.outer(x, x) * 100 + 60
    out = np.empty((side, side, 3), np.uint8)
    for c in range(3):
        grain = rng.normal(0, 12, (side, side)).astype(np.float32)
        out[..., c] = np.clip(base + 30 * c + grain, 0, 255).astype(np.uint8)
    return out


def files(mp: int) -> dict[str, bytes]:
    side = int((mp * 1_000_000) ** 0.5)
    rgb = photo_like(side)
    out: dict[str, bytes] = {}
    im = Image.fromarray(rgb)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=92)
    out[f"JPEG {side}x{side} q92"] = buf.getvalue()
    buf = io.BytesIO()
    im.save(buf, "PNG", compress_level=6)
    out[f"PNG {side}x{side} RGB"] = buf.getvalue()
    grey16 = (rgb[..., 1].astype(np.uint16) * 257)
    buf = io.BytesIO()
    Image.fromarray(grey16).save(buf, "TIFF")  # I;16, uncompressed
    out[f"TIFF {side}x{side} 16-bit"] = buf.getvalue()
    buf = io.BytesIO()
    Image.fromarray(grey16).save(buf, "TIFF", compression="tiff_deflate")
    out[f"TIFF {side}x{side} 16-bit deflate"] = buf.getvalue()
    del grey16
    try:
        import pillow_heif

        pillow_heif.register_heif_opener()
        buf = io.BytesIO()
        im.save(buf, "HEIF", quality=80)
        out[f"HEIC {side}x{side}"] = buf.getvalue()
        buf = io.BytesIO()  # a 48 MP phone's size (8064 x 6048)
        Image.fromarray(photo_like(8064)[:6048]).save(buf, "HEIF", quality=80)
        out["HEIC 8064x6048"] = buf.getvalue()
    except ImportError:
        print("pillow-heif not installed: no HEIC")
    return out


def timed(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    best = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best.append(time.perf_counter() - t)
    return max(best)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--megapixels", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args()
    from watcherd.media.embeddings import Embedder

    tmp = Path(tempfile.mkdtemp())
    emb = Embedder(write_model_dir(tmp / "m"), None,
                   "cpu", "fp32")
    t, max_px = ThumbnailsConfig(), a.megapixels * 1_000_000 + 1
    t0 = time.perf_counter()
    made = files(a.megapixels)
    print(f"made the files in {time.perf_counter() - t0:.0f} s")
    thumb_max = prep_max = 0.0
    print(f"{'file':32} {'MB':>6} {'thumbnails s':>13} {'embedding prepare s':>20}")
    for name, data in made.items():
        try:
            decode(data, max_pixels=max_px, draft_size=224)
        except ImageError as exc:
            print(f"{name:32} {len(data) / 1e6:6.1f} not decodable: {exc}")
            continue
        th = timed(lambda d=data: make_thumbnails(d, t.sizes, fmt=t.format, quality=t.quality,
                                                  max_pixels=max_px), a.repeat)
        pr = timed(lambda d=data: emb.preprocess(decode(d, max_pixels=max_px,
                                                        draft_size=emb.input_size).image),
                   a.repeat)
        thumb_max, prep_max = max(thumb_max, th), max(prep_max, pr)
        print(f"{name:32} {len(data) / 1e6:6.1f} {th:13.2f} {pr:20.2f}   "
              f"RSS after {procinfo.rss_kb(os.getpid()) // 1024} MB")
    soft, hard = ThumbnailsConfig().soft_time_limit_seconds, ThumbnailsConfig().time_limit_seconds
    step = EmbeddingsConfig().step_time_limit_seconds
    print(f"slowest thumbnails {thumb_max:.2f} s: soft limit {soft:g} s = "
          f"{soft / thumb_max:.0f}x, hard limit {hard:g} s = {hard / thumb_max:.0f}x")
    print(f"slowest embedding prepare {prep_max:.2f} s: step limit {step:g} s = "
          f"{step / prep_max:.0f}x")


if __name__ == "__main__":
    main()
