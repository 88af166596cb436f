"""What a camera RAW costs the thumbnail step (``watcherd.media.raw.decode_raw``), next to a JPEG
of the same pixels in the same run.

    .venv/bin/python benchmarks/raw.py [-n 9] [--runs 2] [--no-102]

1. Thumbnails through the embedded preview: a 24 MP DNG (6000x4000 Bayer sensor) whose preview
   is a full-size 6000x4000 JPEG, against that same JPEG as a file of its own. Both get the
   thumbnail step's work: decode with ``draft_size=1024`` (DCT scaling to 3000x2000), resize to
   1024 and then 256, sRGB, WebP. Runs alternate RAW and JPEG; p50 and min in ms. Goal: the
   RAW within 1.2x of the JPEG.
2. The half-size demosaic (no preview wanted): 24 MP and 102 MP (Fujifilm GFX100, 11648x8736)
   DNGs, each decoded ``--runs`` times, each time in a fresh process that reads the file,
   notes its RSS (the baseline: interpreter, imports and the file's bytes) and then decodes
   once; the peak is that process's VmHWM. The preview path and the JPEG are measured the
   same way for comparison, and the demosaic again with OMP_NUM_THREADS=1 (rawpy's LibRaw
   uses OpenMP; a prefork worker per core may want one thread each).

The DNGs are real ones (tests/rawfiles.py: tifffile, Pillow); the pictures are a noisy
gradient, so the JPEG has entropy like a photo's. The sensor data is stored uncompressed: a
camera's lossless-JPEG DNG costs LibRaw more to unpack.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout

from tests.rawfiles import jpeg, make_dng  # noqa: E402
from watcherd.media.colour import to_srgb  # noqa: E402
from watcherd.media.images import DecodedImage, decode  # noqa: E402
from watcherd.media.raw import decode_raw  # noqa: E402
from watcherd.media.thumbnails import fit, make_thumbnails  # noqa: E402

SIZES = (1024, 256)
MAX_PIXELS = 100_000_000  # [images] max_pixels' default
SENSORS = {"24 MP": (6000, 4000), "102 MP": (11648, 8736)}
ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # LibRaw's OpenMP loops on one thread


def photo(width: int, height: int) -> Image.Image:
    """A noisy gradient, 8-bit RGB, built row and column-wise (no full-size index arrays)."""
    rng = np.random.default_rng(1)
    x = (np.arange(width, dtype=np.uint16) * 255 // width).astype(np.uint8)
    y = (np.arange(height, dtype=np.uint16) * 255 // height).astype(np.uint8)
    pixels = np.empty((height, width, 3), np.uint8)
    pixels[:, :, 0] = x[None, :]
    pixels[:, :, 1] = y[:, None]
    pixels[:, :, 2] = (x[None, :] // 2 + y[:, None] // 2)
    pixels += rng.integers(0, 16, pixels.shape, dtype=np.uint8)
    return Image.fromarray(pixels)


def thumbnails(decoded: DecodedImage) -> int:
    """make_thumbnails' work after its decode: LANCZOS with reducing_gap 3, the ICC profile at
    the biggest size, WebP at quality 80. Returns the bytes written."""
    current, written = decoded.image, 0
    for size in SIZES:
        target = fit(decoded.width, decoded.height, size)
        if current.size != target:
            current = current.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)
        if size == max(SIZES):
            current = to_srgb(current, decoded.icc_profile)
        out = io.BytesIO()
        current.save(out, "WEBP", quality=80)
        written += out.tell()
    return written


def via_raw(data: bytes) -> int:
    decoded = decode_raw(data, file_type="DNG", max_pixels=MAX_PIXELS,
                         min_preview_side=max(SIZES), draft_size=max(SIZES), to_srgb_now=False)
    assert decoded.decode == "raw-preview", decoded.decode
    return thumbnails(decoded)


def via_jpeg(data: bytes) -> int:
    decoded = decode(data, max_pixels=MAX_PIXELS, draft_size=max(SIZES), to_srgb_now=False)
    return thumbnails(decoded)


def alternate(fns: dict[str, Callable[[], object]], n: int) -> dict[str, list[float]]:
    """Each function once to warm up, then ``n`` rounds, one call of each per round."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()
    for _ in range(n):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1000)
    return times


def thumbnail_rows(raw_data: bytes, jpeg_data: bytes, n: int) -> None:
    same = make_thumbnails(jpeg_data, SIZES, max_pixels=MAX_PIXELS)
    assert via_jpeg(jpeg_data) == sum(len(t.data) for t in same.thumbnails)  # the same work
    print(f"\n1. thumbnails {'/'.join(map(str, SIZES))} (WebP), {n} rounds: 24 MP DNG "
          f"({len(raw_data) / 1e6:.1f} MB) with a full-size JPEG preview vs that JPEG "
          f"({len(jpeg_data) / 1e6:.1f} MB)")
    times = alternate({"DNG preview": lambda: via_raw(raw_data),
                       "JPEG": lambda: via_jpeg(jpeg_data)}, n)
    base = statistics.median(times["JPEG"])
    print(f"{'':<14}{'p50 ms':>8}{'min ms':>8}{'p50 / JPEG':>12}")
    for name, ms in times.items():
        print(f"{name:<14}{statistics.median(ms):>8.1f}{min(ms):>8.1f}"
              f"{statistics.median(ms) / base:>11.2f}x")


# --- one decode in a fresh process ---

def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)


def child(way: str, path: str) -> None:
    """Run in a fresh process: read the file, note RSS, decode once, print JSON."""
    data = Path(path).read_bytes()
    before = _status_kb("VmRSS")
    start = time.perf_counter()
    if way == "jpeg":
        decoded = decode(data, max_pixels=MAX_PIXELS, draft_size=max(SIZES))
    else:
        decoded = decode_raw(data, file_type="DNG", max_pixels=MAX_PIXELS,
                             min_preview_side=max(SIZES), prefer_preview=way == "raw-preview",
                             draft_size=max(SIZES))
        assert decoded.decode == way, decoded.decode
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "before_kb": before, "peak_kb": _status_kb("VmHWM"),
                      "size": list(decoded.image.size), "full": [decoded.width, decoded.height],
                      "file_mb": len(data) / 1e6}))


def in_fresh_process(way: str, path: Path, env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--child", way, str(path)], check=True,
                         capture_output=True, text=True, env={**os.environ, **env}).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def memory_rows(label: str, way: str, path: Path, runs: int,
                env: dict[str, str] | None = None) -> None:
    results = [in_fresh_process(way, path, env or {}) for _ in range(runs)]
    secs = [r["seconds"] for r in results]
    before = max(r["before_kb"] for r in results) / 1024
    peak = max(r["peak_kb"] for r in results) / 1024
    first = results[0]
    size, full = "x".join(map(str, first["size"])), "x".join(map(str, first["full"]))
    print(f"{label:<20}{way:<14}{first['file_mb']:>8.1f}{full:>13}{size:>11}"
          f"{min(secs) * 1000:>9.0f}{statistics.median(secs) * 1000:>9.0f}"
          f"{before:>9.0f}{peak:>9.0f}{peak - before:>9.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("-n", type=int, default=9, help="thumbnail rounds (RAW and JPEG each)")
    ap.add_argument("--runs", type=int, default=2, help="fresh processes per memory row")
    ap.add_argument("--no-102", action="store_true", help="skip the 102 MP DNG (200 MB)")
    ap.add_argument("--child", nargs=2, metavar=("WAY", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return

    import rawpy

    print(f"{os.cpu_count()} CPUs; rawpy {rawpy.__version__}, LibRaw "
          f"{'.'.join(map(str, rawpy.libraw_version))}, OpenMP "
          f"{bool(rawpy.flags and rawpy.flags.get('OPENMP'))}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        width, height = SENSORS["24 MP"]
        picture = photo(width, height)
        jpeg_path = folder / "preview.jpg"
        jpeg_path.write_bytes(jpeg(picture, quality=90))
        dng24 = make_dng(folder / "24.dng", width=width, height=height,
                         preview_size=(width, height), preview_image=picture)
        del picture
        thumbnail_rows(dng24.read_bytes(), jpeg_path.read_bytes(), args.n)

        print(f"\n2. one decode per fresh process (draft_size {max(SIZES)}), {args.runs} "
              "processes per row; RSS in MiB (base: after imports and reading the file)")
        print(f"{'file':<20}{'way':<14}{'MB':>8}{'full size':>13}{'decoded':>11}{'min ms':>9}"
              f"{'p50 ms':>9}{'base':>9}{'peak':>9}{'+peak':>9}")
        memory_rows("6000x4000 JPEG", "jpeg", jpeg_path, args.runs)
        memory_rows("24 MP DNG", "raw-preview", dng24, args.runs)
        memory_rows("24 MP DNG", "raw-demosaic", dng24, args.runs)
        memory_rows("24 MP DNG, 1 thread", "raw-demosaic", dng24, args.runs, ONE_THREAD)
        dng24.unlink()
        if not args.no_102:
            width, height = SENSORS["102 MP"]
            dng102 = make_dng(folder / "102.dng", width=width, height=height)
            memory_rows("102 MP DNG (GFX100)", "raw-demosaic", dng102, args.runs)
            memory_rows("102 MP, 1 thread", "raw-demosaic", dng102, args.runs, ONE_THREAD)


if __name__ == "__main__":
    main()
