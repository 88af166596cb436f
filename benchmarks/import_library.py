"""First import of a library that is already on disk, and the watcher's memory per row.

    .venv/bin/python benchmarks/import_library.py                 # 20,000 photos, 100,000 rows
    .venv/bin/python benchmarks/import_library.py --photos 2000 --rows 10000   # quicker

(e) N photos on disk (small JPEGs in folders of 100) before `watcherd run` starts (embedded
    broker, tiny random-weight model, so the workers are not the bottleneck): seconds from the
    start until the first thumbnail is stored, until every row exists, until every photo is
    done; next to the baseline, the scan alone (`watcherd scan` on an empty database: walk, hash
    and record every file, which is when the watcher of watcherd <= 0.1 sent its first task).
(f) The watcher alone (`watcherd watch`) over R files: its RSS before the first row and after
    the last, and the growth per row.

Times are read from the rows themselves (discovered_at, thumbnails.created_at, updated_at).
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


def small_jpeg(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    im = Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=80)
    return buf.getvalue()


def library(folder: Path, n: int, *, jpeg: bool) -> Path:
    """n distinct files in folders of 100, older than any settle time; cached between runs."""
    done = folder / f".complete-{n}"
    if done.exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    old = time.time() - 3600
    for i in range(n):
        sub = folder / f"{i // 10_000:02d}" / f"{i // 100:04d}"
        sub.mkdir(parents=True, exist_ok=True)
        p = sub / f"IMG_{i:06d}.jpg"
        p.write_bytes(small_jpeg(i) if jpeg else b"\xff\xd8\xff" + i.to_bytes(8, "big") * 64)
        os.utime(p, (old, old))
    done.touch()
    return folder


def write_config(work: Path, photos: Path, model: str) -> Path:
    cfg = work / "watcherd.toml"
    cfg.write_text(
        f'[watch]\npaths = ["{photos}"]\n'
        f'[database]\npath = "{work / "watcherd.db"}"\n'
        f'[embeddings]\nmodel = "{model}"\npretrained = ""\nbatch_size = 32\n'
        f'[thumbnails]\nsizes = [64]\nconcurrency = 2\n'
        f'[log]\nformat = "json"\nlevel = "warning"\n')
    return cfg


def fresh(work: Path) -> None:
    for p in work.glob("watcherd.db*"):
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink()


def ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def query1(db: Path, sql: str) -> object:
    try:
        with sqlite3.connect(db, timeout=30) as c:
            return c.execute(sql).fetchone()[0]
    except sqlite3.Error:
        return None


def wait(cond: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise TimeoutError(what)


def start(cfg: Path, *args: str, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as f:
        return subprocess.Popen([sys.executable, "-m", "watcherd", "-c", str(cfg), *args],
                                stdout=f, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def first_import(work: Path, n: int) -> dict[str, float]:
    from watcherd.testing import write_model_dir

    photos = library(work / "library", n, jpeg=True)
    model = write_model_dir(work / "tiny-model", arch="tiny")
    cfg = write_config(work, photos, model)
    db = work / "watcherd.db"

    # Baseline: the scan alone, nothing else running.
    fresh(work)
    t0 = time.time()
    subprocess.run([sys.executable, "-m", "watcherd", "-c", str(cfg), "scan"], check=True,
                   capture_output=True)
    scan_alone = time.time() - t0

    fresh(work)
    t0 = time.time()
    proc = start(cfg, "run", log=work / "run.log")
    try:
        wait(lambda: query1(db, "SELECT count(*) FROM images WHERE thumbnail_status != "
                                "'pending' AND embedding_status != 'pending'") == n,
             3600, "every photo done")
    finally:
        stop(proc)
    first_thumb = ts(str(query1(db, "SELECT min(created_at) FROM thumbnails")))
    last_row = ts(str(query1(db, "SELECT max(discovered_at) FROM images")))
    all_done = ts(str(query1(db, "SELECT max(updated_at) FROM images")))
    return {"photos": n, "scan_alone_s": scan_alone, "first_thumbnail_s": first_thumb - t0,
            "every_row_s": last_row - t0, "all_done_s": all_done - t0}


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def watcher_memory(work: Path, rows: int) -> dict[str, float]:
    photos = library(work / f"flat-{rows}", rows, jpeg=False)
    cfg = write_config(work, photos, "local-dir:/nonexistent")
    db = work / "watcherd.db"
    fresh(work)
    proc = start(cfg, "watch", log=work / "watch.log")
    try:
        wait(lambda: query1(db, "SELECT count(*) FROM scans WHERE state = 'scanning'") == 1,
             60, "the scan to start")
        before = rss_kb(proc.pid)
        peak = before
        t0 = time.time()

        def all_rows() -> bool:
            nonlocal peak
            peak = max(peak, rss_kb(proc.pid))
            return query1(db, "SELECT count(*) FROM scans WHERE state = 'done'") == 1

        wait(all_rows, 3600, "the scan to finish")
        took = time.time() - t0
        after = rss_kb(proc.pid)
    finally:
        stop(proc)
    n = int(query1(db, "SELECT count(*) FROM images") or 0)  # type: ignore[call-overload]
    return {"rows": n, "rss_before_mb": before / 1024, "rss_after_mb": after / 1024,
            "rss_peak_mb": peak / 1024, "bytes_per_row": (peak - before) * 1024 / max(n, 1),
            "scan_s": took}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--photos", type=int, default=20_000)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--work", type=Path,
                    default=Path(tempfile.gettempdir()) / "watcherd-bench-import")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"cores: {os.cpu_count()}; work folder {args.work}\n")

    e = first_import(args.work, args.photos)
    print(f"(e) first import of {e['photos']} photos already on disk (`watcherd run`, embedded "
          "broker, tiny model)")
    print(f"    baseline: the scan alone (walk + hash + record)  {e['scan_alone_s']:7.1f} s")
    print(f"    first thumbnail stored                           {e['first_thumbnail_s']:7.1f} s"
          f"   -> {e['first_thumbnail_s'] / e['scan_alone_s']:.2f} x the scan alone")
    print(f"    every row exists                                 {e['every_row_s']:7.1f} s")
    print(f"    every photo done                                 {e['all_done_s']:7.1f} s\n")

    m = watcher_memory(args.work, args.rows)
    print(f"(f) the watcher alone over {m['rows']} files: scan {m['scan_s']:.1f} s")
    print(f"    RSS before the first row {m['rss_before_mb']:.1f} MB, peak "
          f"{m['rss_peak_mb']:.1f} MB, after the last {m['rss_after_mb']:.1f} MB")
    print(f"    growth per row: {m['bytes_per_row']:.0f} bytes")


if __name__ == "__main__":
    main()
