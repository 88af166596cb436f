"""watcherd benchmark: prints figures and ratios against baselines measured in the same run.

    .venv/bin/python benchmarks/bench.py            # the full run (200 x 12 MP + 200 x 1080p)
    .venv/bin/python benchmarks/bench.py --quick    # a smaller corpus, same sections

(a) thumbnails: ms/image, watcherd's make_thumbnails vs naive Pillow (full decode + resize)
(b) embeddings: images/s, the worker path (draft decode + batched encode) vs raw open_clip at
    batch 32 and batch 1, with and without the malloc settings `watcherd run` gives the worker
(c) end to end: wall time for N files dropped into a running `watcherd run` (embedded broker)
    vs a sequential loop over the same files (naive thumbnail, then embed at batch 1)
(d) the solo embedding worker's drain rate on RabbitMQ (tasks/s for stale messages, which cost
    no inference): watcherd's prefetch (2 x batch_size) vs Celery's multiplier 1

ViT-B-32 with random weights (same compute as the trained model), written to a local-dir.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[1]
SIZES = (256, 1024)
MALLOC_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "68719476736"}


# ----------------------------------------------------------------------------- corpus


def photo_like(width: int, height: int, seed: int) -> bytes:
    """Smooth gradients, shapes and sensor-like noise: decodes and compresses like a photo."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
    im = Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)
    arr = np.asarray(im).astype(np.int16)
    arr += rng.normal(0, 6, arr.shape).astype(np.int16)
    for _ in range(12):
        x, y = rng.integers(0, width - width // 8), rng.integers(0, height - height // 8)
        arr[y:y + height // 10, x:x + width // 10] += rng.integers(-60, 60, 3).astype(np.int16)
    buf = io.BytesIO()
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def corpus(folder: Path, n12: int, n1080: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind, n, (w, h) in (("12mp", n12, (4000, 3000)), ("1080p", n1080, (1920, 1080))):
        for i in range(n):
            p = folder / f"{kind}-{i:04d}.jpg"
            if not p.exists():
                p.write_bytes(photo_like(w, h, seed=i + (0 if kind == "12mp" else 10_000)))
            paths.append(p)
    return paths


# ----------------------------------------------------------------------------- (a) thumbnails


def naive_thumbnails(data: bytes) -> list[bytes]:
    im = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    out = []
    for s in SIZES:
        t = im.copy()
        t.thumbnail((s, s), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        t.save(buf, "WEBP", quality=80)
        out.append(buf.getvalue())
    return out


def bench_thumbnails(paths: list[Path], limit: int) -> dict[str, float]:
    from watcherd.media.thumbnails import make_thumbnails
    from watcherd.testing import DISPLAY_P3_PRIMARIES, rgb_icc_profile

    out: dict[str, float] = {}
    for kind in ("12mp", "1080p"):
        files = [p.read_bytes() for p in paths if p.name.startswith(kind)][:limit]
        if not files:
            continue
        for name, fn in (("naive", naive_thumbnails),
                         ("watcherd", lambda d: make_thumbnails(d, SIZES, fmt="webp", quality=80,
                                                                max_pixels=200_000_000))):
            fn(files[0])  # warm up
            times = []
            for data in files:
                t0 = time.perf_counter()
                fn(data)
                times.append((time.perf_counter() - t0) * 1000)
            out[f"{kind}_{name}_ms"] = statistics.median(times)
        out[f"{kind}_speedup"] = out[f"{kind}_naive_ms"] / out[f"{kind}_watcherd_ms"]
    # The same 12 MP files tagged Display P3 (as phones write them): the cost of converting
    # to sRGB, measured against the same files untagged, interleaved to share any drift.
    files = [p.read_bytes() for p in paths if p.name.startswith("12mp")][:limit]
    tagged = [with_icc(d, rgb_icc_profile(DISPLAY_P3_PRIMARIES, description="Display P3"))
              for d in files]
    plain_t, p3_t = [], []
    for plain, p3 in zip(files, tagged, strict=True):
        for data, times in ((plain, plain_t), (p3, p3_t)):
            t0 = time.perf_counter()
            make_thumbnails(data, SIZES, fmt="webp", quality=80, max_pixels=200_000_000)
            times.append((time.perf_counter() - t0) * 1000)
    out["12mp_untagged_ms"], out["12mp_p3_ms"] = statistics.median(plain_t), statistics.median(p3_t)
    return out


def with_icc(jpeg: bytes, icc: bytes) -> bytes:
    """The same JPEG (same pixels, same entropy-coded data) with an ICC profile in APP2."""
    body = b"ICC_PROFILE\0\x01\x01" + icc
    return jpeg[:2] + b"\xff\xe2" + struct.pack(">H", len(body) + 2) + body + jpeg[2:]


# ----------------------------------------------------------------------------- (b) embeddings


def embed_child(model: str, files: list[str], mode: str, batch: int,
                precision: str = "fp32") -> dict[str, float]:
    """Runs in a fresh process (so malloc settings from the environment apply)."""
    import open_clip
    import torch

    from watcherd.media.embeddings import Embedder
    from watcherd.media.images import decode

    datas = [Path(f).read_bytes() for f in files]
    if mode == "worker":
        emb = Embedder(model, None, "cpu", precision)

        def run_batch(chunk: list[bytes]) -> None:
            tensors = [emb.preprocess(decode(d, max_pixels=200_000_000,
                                             draft_size=2 * emb.input_size).image) for d in chunk]
            emb.encode(tensors)
    else:
        net, _, preprocess = open_clip.create_model_and_transforms(model)
        net.eval()

        def run_batch(chunk: list[bytes]) -> None:
            x = torch.stack([preprocess(Image.open(io.BytesIO(d)).convert("RGB")) for d in chunk])
            with torch.inference_mode():
                f = net.encode_image(x)
                torch.nn.functional.normalize(f, dim=-1)

    run_batch(datas[:batch])  # warm up
    t0 = time.perf_counter()
    for i in range(0, len(datas), batch):
        run_batch(datas[i:i + batch])
    return {"images_per_s": len(datas) / (time.perf_counter() - t0)}


def bench_embeddings(model: str, paths: list[Path], n: int, fast: str) -> dict[str, float]:
    """``fast``: the precision ``auto`` picks on this machine (runs once more in it if not
    fp32)."""
    files = [str(p) for p in paths if p.name.startswith("1080p")][:n // 2]
    files += [str(p) for p in paths if p.name.startswith("12mp")][:n - len(files)]
    out: dict[str, float] = {}
    runs = [("raw_open_clip_b1", "raw", 1, {}), ("raw_open_clip_b32", "raw", 32, {}),
            ("worker_b32", "worker", 32, {}), ("worker_b32_malloc", "worker", 32, MALLOC_ENV)]
    runs = [(name, mode, batch, env, "fp32") for name, mode, batch, env in runs]
    if fast != "fp32":
        runs.append((f"worker_b32_malloc_{fast}", "worker", 32, MALLOC_ENV, fast))
    for name, mode, batch, env, precision in runs:
        use = files[::3] if batch == 1 else files  # batch 1 is slow: a third, same mix
        r = subprocess.run(
            [sys.executable, __file__, "--embed-child",
             json.dumps([model, use, mode, batch, precision])],
            capture_output=True, text=True, env={**os.environ, **env}, check=True)
        out[f"{name}_img_s"] = json.loads(r.stdout.strip().splitlines()[-1])["images_per_s"]
    out["worker_vs_raw_b32"] = out["worker_b32_malloc_img_s"] / out["raw_open_clip_b32_img_s"]
    out["worker_vs_raw_b1"] = out["worker_b32_malloc_img_s"] / out["raw_open_clip_b1_img_s"]
    return out


# ----------------------------------------------------------------------------- (c) end to end


def sequential_baseline(model: str, paths: list[Path]) -> float:
    r = subprocess.run([sys.executable, __file__, "--sequential-child",
                        json.dumps([model, [str(p) for p in paths]])],
                       capture_output=True, text=True, check=True)
    return float(json.loads(r.stdout.strip().splitlines()[-1])["seconds"])


def sequential_child(model: str, files: list[str]) -> dict[str, float]:
    """The seed's "before Celery" loop: for each file, a thumbnail then an embedding (batch 1)."""
    import open_clip
    import torch

    net, _, preprocess = open_clip.create_model_and_transforms(model)
    net.eval()
    t0 = time.perf_counter()
    for f in files:
        data = Path(f).read_bytes()
        naive_thumbnails(data)
        with torch.inference_mode():
            x = preprocess(Image.open(io.BytesIO(data)).convert("RGB")).unsqueeze(0)
            torch.nn.functional.normalize(net.encode_image(x), dim=-1)
    return {"seconds": time.perf_counter() - t0}


def end_to_end(model: str, paths: list[Path], work: Path,
               precision: str = "fp32") -> dict[str, float]:
    photos = work / "photos"
    if work.exists():
        shutil.rmtree(work)
    photos.mkdir(parents=True)
    config = work / "watcherd.toml"
    config.write_text(
        f'[watch]\npaths = ["{photos}"]\nsettle_seconds = 1.0\n'
        f'[database]\npath = "{work / "watcherd.db"}"\n'
        f'[embeddings]\nmodel = "{model}"\npretrained = ""\nbatch_size = 32\n'
        f'precision = "{precision}"\n'
        f'[thumbnails]\nsizes = [256, 1024]\nconcurrency = 2\n'
        f'[log]\nformat = "json"\nlevel = "warning"\n')
    log = open(work / "daemon.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "watcherd", "-c", str(config), "run"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        db = work / "watcherd.db"
        _wait(lambda: _ready(db), 120)
        t0 = time.perf_counter()
        for p in paths:
            shutil.copy(p, photos / p.name)
        n = len(paths)
        _wait(lambda: _done(db) >= n, 3600)
        wall = time.perf_counter() - t0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        log.close()
    return {"files": n, "watcherd_run_s": wall}


def _ready(db: Path) -> bool:
    if not db.exists():
        return False
    try:
        with sqlite3.connect(db) as c:
            states = dict(c.execute("SELECT role, state FROM workers").fetchall())
    except sqlite3.Error:
        return False
    return states.get("embeddings") == "ready" and "thumbnails" in states


def _done(db: Path) -> int:
    with sqlite3.connect(db, timeout=30) as c:
        return int(c.execute("SELECT count(*) FROM images WHERE thumbnail_status != 'pending' "
                             "AND embedding_status != 'pending'").fetchone()[0])


def _wait(cond: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise TimeoutError("benchmark condition not reached")


# ----------------------------------------------------------------------------- (d) drain rate

DRAIN_WORKER = """
import sys
from watcherd import config, logs
from watcherd.worker import tasks
from watcherd.broker.app import make_app, queue_names
cfg = config.load(sys.argv[1])
logs.setup("warning", "json")
holder = tasks.EmbedderHolder()
holder.error = "benchmark: no model"
app = make_app(cfg, prefetch_multiplier=int(sys.argv[2]))
tasks.register(app, cfg, holder)
app.Worker(queues=[queue_names(cfg)["embedding"]], pool="solo", concurrency=1, quiet=True,
           without_gossip=True, without_mingle=True, without_heartbeat=True,
           loglevel="WARNING").start()
"""


def drain_rate(work: Path, url: str, prefetch: int, n: int) -> float:
    import uuid

    from watcherd import config as wconfig
    from watcherd.broker.app import TASKS, make_app, queue_depths, queue_names

    work.mkdir(parents=True, exist_ok=True)
    (work / "photos").mkdir(exist_ok=True)
    cfg_path = work / f"drain-{prefetch}.toml"
    cfg_path.write_text(
        f'[watch]\npaths = ["photos"]\n[database]\npath = "drain.db"\n'
        f'[broker]\nurl = "{url}"\nqueue_prefix = "bench-{uuid.uuid4().hex[:6]}-"\n'
        f'[embeddings]\nbatch_size = 32\n')
    cfg = wconfig.load(cfg_path)
    app = make_app(cfg)
    queue = queue_names(cfg)["embedding"]
    with app.producer_or_acquire() as producer:
        for i in range(n):  # ids with no row: the worker claims nothing and moves on
            app.send_task(TASKS["embedding"], args=[10_000_000 + i, "0" * 64], queue=queue,
                          routing_key=queue, producer=producer)
    proc = subprocess.Popen([sys.executable, "-c", DRAIN_WORKER, str(cfg_path), str(prefetch)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(lambda: queue_depths(app, cfg)[queue] < n, 60)
        t0 = time.perf_counter()
        start_depth = queue_depths(app, cfg)[queue]
        deadline = t0 + 20
        while time.perf_counter() < deadline and queue_depths(app, cfg)[queue] > 0:
            time.sleep(0.05)
        left = queue_depths(app, cfg)[queue]
        rate = (start_depth - left) / (time.perf_counter() - t0)
    finally:
        proc.terminate()
        proc.wait(30)
        with app.connection_for_write() as conn:
            conn.default_channel.queue_delete(queue)
    return rate


# ----------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small corpus, same sections")
    ap.add_argument("--n12", type=int, default=200)
    ap.add_argument("--n1080", type=int, default=200)
    ap.add_argument("--e2e", type=int, default=120, help="files for the end-to-end run")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "watcherd-bench")
    ap.add_argument("--embed-child", help=argparse.SUPPRESS)
    ap.add_argument("--sequential-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.embed_child:
        print(json.dumps(embed_child(*json.loads(args.embed_child))))
        return
    if args.sequential_child:
        print(json.dumps(sequential_child(*json.loads(args.sequential_child))))
        return
    if args.quick:
        args.n12, args.n1080, args.e2e = 24, 24, 32

    from watcherd.testing import write_model_dir

    t0 = time.perf_counter()
    paths = corpus(args.cache / "corpus", args.n12, args.n1080)
    print(f"corpus: {args.n12} x 12 MP + {args.n1080} x 1080p JPEG in {args.cache / 'corpus'} "
          f"({time.perf_counter() - t0:.0f} s)")
    model_dir = args.cache / "vit-b-32-random"
    model = (f"local-dir:{model_dir}" if (model_dir / "open_clip_config.json").exists()
             else write_model_dir(model_dir, arch="ViT-B-32"))
    print(f"model: ViT-B-32, random weights ({model}); torch threads: {os.cpu_count()} cores\n")

    a = bench_thumbnails(paths, limit=min(40, args.n12, args.n1080))
    print("(a) thumbnails, sizes 256+1024 WebP, median ms/image")
    for kind in ("12mp", "1080p"):
        print(f"    {kind:>6}: watcherd {a[f'{kind}_watcherd_ms']:7.1f}   naive Pillow "
              f"{a[f'{kind}_naive_ms']:7.1f}   -> {a[f'{kind}_speedup']:.2f}x")
    extra = a["12mp_p3_ms"] / a["12mp_untagged_ms"] - 1
    print(f"    12mp tagged Display P3 (converted to sRGB): {a['12mp_p3_ms']:.1f} vs "
          f"{a['12mp_untagged_ms']:.1f} untagged -> {extra:+.0%}")

    from watcherd.media import precision as precisions

    fast = precisions.resolve("auto", "cpu")
    b = bench_embeddings(model, paths, n=min(96, args.n12 + args.n1080), fast=fast)
    print("(b) embeddings, images/s (decode + preprocess + encode; half 1080p, half 12 MP)")
    print(f"    raw open_clip batch 1   {b['raw_open_clip_b1_img_s']:6.2f}")
    print(f"    raw open_clip batch 32  {b['raw_open_clip_b32_img_s']:6.2f}")
    print(f"    worker path batch 32    {b['worker_b32_img_s']:6.2f}")
    print(f"    worker path + malloc    {b['worker_b32_malloc_img_s']:6.2f}   -> "
          f"{b['worker_vs_raw_b32']:.2f}x raw batch 32, {b['worker_vs_raw_b1']:.2f}x batch 1")
    if fast != "fp32":
        print(f"    worker path + malloc, {fast} (precision auto here)  "
              f"{b[f'worker_b32_malloc_{fast}_img_s']:6.2f}   -> "
              f"{b[f'worker_b32_malloc_{fast}_img_s'] / b['worker_b32_malloc_img_s']:.2f}x fp32")

    files = [p for p in paths if p.name.startswith("1080p")][: args.e2e // 2]
    files += [p for p in paths if p.name.startswith("12mp")][: args.e2e - len(files)]
    seq = sequential_baseline(model, files)
    c = end_to_end(model, files, args.cache / "e2e", "fp32")
    print(f"(c) end to end, {c['files']} files (half 1080p, half 12 MP)")
    print(f"    sequential loop (thumbnail, then embed at batch 1)  {seq:7.1f} s")
    print(f"    watcherd run (embedded broker), precision fp32      {c['watcherd_run_s']:7.1f} s"
          f"   -> {seq / c['watcherd_run_s']:.2f}x")
    if fast != "fp32":
        f = end_to_end(model, files, args.cache / "e2e", fast)
        print(f"    watcherd run, precision {fast} (auto here)          "
              f"{f['watcherd_run_s']:7.1f} s   -> {seq / f['watcherd_run_s']:.2f}x, "
              f"{c['watcherd_run_s'] / f['watcherd_run_s']:.2f}x fp32")

    amqp = "amqp://guest:guest@127.0.0.1:5672//"
    try:
        ours = drain_rate(args.cache / "drain", amqp, prefetch=64, n=3000)
        one = drain_rate(args.cache / "drain", amqp, prefetch=1, n=300)
    except Exception as exc:  # no RabbitMQ here
        print(f"(d) skipped: RabbitMQ not reachable ({exc})")
        return
    print("(d) solo embedding worker draining RabbitMQ (stale messages, no inference), tasks/s")
    print(f"    watcherd prefetch 64 (2 x batch_size)  {ours:8.1f}")
    print(f"    Celery multiplier 1                    {one:8.1f}   -> {ours / one:.0f}x")


if __name__ == "__main__":
    main()
