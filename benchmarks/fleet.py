"""What the fleet events cost the workers, per broker: prints figures.

    .venv/bin/python benchmarks/fleet.py [--n 2000] [--brokers embedded,amqp,redis]

Busy markers are published synchronously (on the broker before the step starts), so their
latency is paid per photo: a thumbnail task publishes 2 (busy, then idle), an embedding batch
1 per photo plus 2 for the batch (busy while encoding, then idle). Heartbeats cost a publish
every 2 s on a thread of their own and are not per photo.

Reported: the latency of one marker publish (mean, median, 99th percentile), from a process
that already has its connection open (a worker does after its first task), and the overhead
per photo against watcherd's per-photo work measured in `make bench` (thumbnails of a 1080p
JPEG: 85 ms; an embedding, ViT-B-32 on 2 cores: 75 ms).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from watcherd import config, logs  # noqa: E402
from watcherd.broker.channel import connect, fleet_queue  # noqa: E402
from watcherd.fleet.busy import Markers  # noqa: E402

URLS = {"embedded": "", "amqp": "amqp://guest:guest@127.0.0.1:5672//",
        "redis": "redis://127.0.0.1:6379/0"}
THUMBNAIL_MS, EMBEDDING_MS, BATCH = 85.0, 75.0, 32


def measure(url: str, n: int, work: Path) -> list[float]:
    work.mkdir(parents=True, exist_ok=True)
    (work / "photos").mkdir(exist_ok=True)
    path = work / "bench.toml"
    path.write_text(f'[watch]\npaths = ["photos"]\n[database]\npath = "bench.db"\n'
                    f'[broker]\nurl = "{url}"\nqueue_prefix = "bench-{uuid.uuid4().hex[:6]}-"\n')
    cfg = config.load(path)
    markers = Markers(cfg, "bench@host:1")
    item = [(1, "0" * 64)]
    try:
        markers.busy("thumbnail", item)  # opens the connection, declares the queue
        times = []
        for i in range(n):
            started = time.perf_counter()
            if i % 2:
                markers.idle("thumbnail")
            else:
                markers.busy("thumbnail", item)
            times.append((time.perf_counter() - started) * 1000)
        return times
    finally:
        markers.close()
        with connect(cfg) as conn:
            fleet_queue(cfg)(conn.channel()).delete()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--brokers", default="embedded,amqp,redis")
    args = parser.parse_args()
    logs.setup("warning", "console")
    print(f"busy marker publish latency, {args.n} publishes per broker (ms)")
    print(f"{'broker':<10}{'mean':>8}{'median':>8}{'p99':>8}   per photo: thumbnail "
          f"(2 publishes) / embedding (1 + 2/{BATCH})")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.brokers.split(","):
            t = measure(URLS[name], args.n, Path(tmp) / name)
            mean = statistics.fmean(t)
            p99 = sorted(t)[int(len(t) * 0.99)]
            thumb, emb = 2 * mean, (1 + 2 / BATCH) * mean
            print(f"{name:<10}{mean:8.3f}{statistics.median(t):8.3f}{p99:8.3f}   "
                  f"{thumb:.2f} ms ({100 * thumb / THUMBNAIL_MS:.1f} % of {THUMBNAIL_MS:.0f} ms)"
                  f" / {emb:.2f} ms ({100 * emb / EMBEDDING_MS:.1f} % of {EMBEDDING_MS:.0f} ms)")


if __name__ == "__main__":
    main()
