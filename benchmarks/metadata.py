"""What reading a photo's metadata costs (``watcherd.metadata.extract``), per format, next to a
full decode of the same file (``Image.open(...).load()``, what thumbnails and embeddings pay).

    .venv/bin/python benchmarks/metadata.py [-n 300] [--decodes 8] [--size 2000x1500]

Each file is a Pillow image (a noisy gradient) with the research's tag set written by exiftool
(EXIF, GPS, XMP, and IPTC where exiftool puts it); the 12 MP JPEG is 4000x3000 with the same
tags. Both are timed from the bytes in memory, after one warm-up call; p50 and p95 in ms.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from io import BytesIO
from pathlib import Path

import numpy as np
import pillow_heif
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from tests.metadatafiles import FULL
from watcherd.metadata.extract import extract

pillow_heif.register_heif_opener()

FORMATS = {"JPEG": "jpg", "PNG": "png", "WebP": "webp", "TIFF": "tif", "HEIC": "heic",
           "AVIF": "avif", "GIF": "gif"}


def photo(width: int, height: int) -> Image.Image:
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:height, 0:width]
    a = np.stack([x * 255 // width, y * 255 // height, (x + y) * 255 // (width + height)], -1)
    a = a.astype(np.int16) + rng.integers(-12, 12, a.shape)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def make(folder: Path, size: tuple[int, int]) -> dict[str, Path]:
    """The files, tagged by one exiftool run."""
    files: dict[str, Path] = {}
    small, big = photo(*size), photo(4000, 3000)
    for label, ext in FORMATS.items():
        files[label] = folder / f"t.{ext}"
        (small.convert("P") if ext == "gif" else small).save(
            files[label], format={"jpg": "JPEG", "tif": "TIFF", "heic": "HEIF"}.get(
                ext, ext.upper()))
    files["JPEG 12 MP"] = folder / "big.jpg"
    big.save(files["JPEG 12 MP"], quality=90)
    subprocess.run(["exiftool", "-q", "-q", "-m", "-overwrite_original", "-n", *FULL,
                    *map(str, files.values())], check=True)
    return files


def timed(fn: Callable[[], object], n: int) -> tuple[float, float]:
    fn()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.95))]


def decode(data: bytes) -> None:
    with Image.open(BytesIO(data)) as im:
        im.load()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("-n", type=int, default=300, help="extractions per file")
    ap.add_argument("--decodes", type=int, default=8, help="full decodes per file")
    ap.add_argument("--size", default="2000x1500", help="of every file but the 12 MP JPEG")
    args = ap.parse_args()
    if not shutil.which("exiftool"):
        raise SystemExit("exiftool(1) is needed to write the tags")
    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        files = make(Path(tmp), (width, height))
        print(f"extract: {args.n} runs per file, decode: {args.decodes}; {os.cpu_count()} CPUs; "
              f"{width}x{height} unless said")
        print(f"{'file':<12}{'MB':>7}{'extract p50':>13}{'p95':>8}{'decode p50':>12}{'p95':>8}"
              f"{'decode/extract':>16}")
        for label, path in files.items():
            data = path.read_bytes()
            md = extract(data, mtime=0)
            assert md.camera_make == "Canon" or label == "GIF", (label, md)
            e50, e95 = timed(lambda data=data: extract(data, mtime=0), args.n)
            d50, d95 = timed(lambda data=data: decode(data), args.decodes)
            print(f"{label:<12}{len(data) / 1e6:>7.2f}{e50:>13.3f}{e95:>8.3f}{d50:>12.1f}"
                  f"{d95:>8.1f}{d50 / e50:>15.0f}x")


if __name__ == "__main__":
    main()
