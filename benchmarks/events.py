"""What Celery task events and worker heartbeats cost: end-to-end throughput with
``[broker] task_events`` on and off, on a real ``watcherd run``.

    flock /tmp/watcherd-cpu.lock .venv/bin/python benchmarks/events.py [--n 300] [--runs 4]
        [--broker amqp|redis] [--model tiny|vit-b-32]
    flock /tmp/watcherd-cpu.lock .venv/bin/python benchmarks/events.py --publish [--n 2000]

Each run starts ``watcherd run`` on a fresh database and queue prefix, waits for both workers,
copies N photos (640x480 JPEG) into the watched folder and times until every row is done.
Runs alternate on, off, on, off, ... so that drift on the machine falls on both alike. Printed:
each run's wall time and photos/s, per mode the mean and the spread (min..max, standard
deviation), and the on/off ratio against the run-to-run noise.

The tiny random-weight model (default) makes each task cheap, so the events' share of the work is
the largest it can be: the worst case. ``--model vit-b-32`` uses ViT-B-32's real compute.
With events on, each thumbnail task sends 3 events (received, started, succeeded) and each
embedding 3 more; each worker adds a heartbeat every 2 s. Nobody listens during the runs, as on
a server where Flower is not running (RabbitMQ drops unrouted events; Redis looks up the event
exchange's bindings, finds none and stores nothing).

``--publish`` measures the cost at its source instead, without the end-to-end noise: the time a
worker spends sending one task event (the dispatcher a worker uses, on its own connection), per
broker, and what the 6 events of a photo (3 for its thumbnail task, 3 for its embedding) add.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench import _done, _ready, _wait, photo_like  # noqa: E402

URLS = {"amqp": "amqp://guest:guest@127.0.0.1:5672//", "redis": "redis://127.0.0.1:6379/0"}


def one_run(work: Path, model: str, url: str, photos: list[Path], events: bool) -> float:
    if work.exists():
        shutil.rmtree(work)
    (work / "photos").mkdir(parents=True)
    config = work / "watcherd.toml"
    config.write_text(
        f'[watch]\npaths = ["{work / "photos"}"]\nsettle_seconds = 1.0\n'
        f'[database]\npath = "{work / "watcherd.db"}"\n'
        f'[broker]\nurl = "{url}"\nqueue_prefix = "bench-{uuid.uuid4().hex[:6]}-"\n'
        f'task_events = {"true" if events else "false"}\noutbox_interval_seconds = 1.0\n'
        f'[embeddings]\nmodel = "{model}"\npretrained = ""\nbatch_size = 32\n'
        f'[thumbnails]\nsizes = [256, 1024]\nconcurrency = 2\n'
        f'[log]\nformat = "json"\nlevel = "warning"\n')
    log = open(work / "daemon.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "watcherd", "-c", str(config), "run"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        db = work / "watcherd.db"
        _wait(lambda: _ready(db), 180)
        time.sleep(1.0)  # let the start settle (first heartbeats, connections)
        t0 = time.perf_counter()
        for p in photos:
            shutil.copy(p, work / "photos" / p.name)
        _wait(lambda: _done(db) >= len(photos), 1800)
        return time.perf_counter() - t0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        log.close()
        _delete_queues(config)


def _delete_queues(config: Path) -> None:
    from watcherd import config as wconfig
    from watcherd.broker.app import make_app, queue_names
    from watcherd.broker.channel import queue_name

    cfg = wconfig.load(config, check_paths=False)
    with make_app(cfg).connection_for_write() as conn:
        channel = conn.default_channel
        for q in [*queue_names(cfg).values(), queue_name(cfg)]:
            try:
                channel.queue_delete(q)
            except Exception:  # already gone
                channel = conn.channel()


def publish_cost(url: str, n: int, work: Path) -> list[float]:
    from watcherd import config as wconfig
    from watcherd.broker.app import make_app

    work.mkdir(parents=True, exist_ok=True)
    (work / "photos").mkdir(exist_ok=True)
    path = work / "publish.toml"
    path.write_text(f'[watch]\npaths = ["photos"]\n[database]\npath = "p.db"\n'
                    f'[broker]\nurl = "{url}"\nqueue_prefix = "bench-{uuid.uuid4().hex[:6]}-"\n')
    app = make_app(wconfig.load(path))
    times = []
    with app.connection_for_write() as conn:
        dispatcher = app.events.Dispatcher(conn, hostname="bench@host", enabled=True)
        dispatcher.send("worker-online")  # connects, declares the exchange
        for i in range(n):
            started = time.perf_counter()
            dispatcher.send("task-succeeded", uuid=f"{i:032x}", result="'done'", runtime=0.01)
            times.append((time.perf_counter() - started) * 1e6)
        dispatcher.close()
    return times


def main_publish(n: int) -> None:
    print(f"one task event sent by a worker's dispatcher, {n} sends per broker (microseconds)")
    print(f"{'broker':<8}{'mean':>8}{'median':>8}{'p99':>8}   per photo (6 events)")
    with tempfile.TemporaryDirectory(prefix="watcherd-events-") as tmp:
        for name, url in URLS.items():
            t = publish_cost(url, n, Path(tmp) / name)
            mean = statistics.fmean(t)
            print(f"{name:<8}{mean:8.1f}{statistics.median(t):8.1f}"
                  f"{sorted(t)[int(len(t) * 0.99)]:8.1f}   {6 * mean / 1000:.2f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=300, help="photos per run")
    ap.add_argument("--runs", type=int, default=4, help="runs per mode")
    ap.add_argument("--broker", choices=sorted(URLS), default="amqp")
    ap.add_argument("--model", choices=("tiny", "vit-b-32"), default="tiny")
    ap.add_argument("--publish", action="store_true",
                    help="only the cost of sending one event, per broker (--n sends)")
    args = ap.parse_args()
    if args.publish:
        main_publish(args.n)
        return
    from watcherd.testing import write_model_dir

    with tempfile.TemporaryDirectory(prefix="watcherd-events-") as tmp:
        base = Path(tmp)
        arch = "tiny" if args.model == "tiny" else "ViT-B-32"
        model = write_model_dir(base / "model", arch=arch)
        corpus = base / "corpus"
        corpus.mkdir()
        photos = []
        for i in range(args.n):
            p = corpus / f"p{i:05d}.jpg"
            p.write_bytes(photo_like(640, 480, 1000 + i))
            photos.append(p)
        print(f"{args.n} photos 640x480 per run, model {args.model}, broker {args.broker}, "
              f"{args.runs} runs per mode, alternating")
        times: dict[bool, list[float]] = {True: [], False: []}
        for r in range(args.runs):
            for events in (True, False) if r % 2 == 0 else (False, True):
                s = one_run(base / "run", model, URLS[args.broker], photos, events)
                times[events].append(s)
                print(f"  run {r + 1} events {'on ' if events else 'off'}: {s:7.2f} s  "
                      f"{args.n / s:6.1f} photos/s", flush=True)
        print(f"{'mode':<11}{'mean s':>8}{'min':>8}{'max':>8}{'stdev':>8}{'photos/s':>10}")
        for events in (True, False):
            t = times[events]
            print(f"{'events ' + ('on' if events else 'off'):<11}{statistics.fmean(t):8.2f}"
                  f"{min(t):8.2f}{max(t):8.2f}{statistics.stdev(t):8.2f}"
                  f"{args.n / statistics.fmean(t):10.1f}")
        on, off = statistics.fmean(times[True]), statistics.fmean(times[False])
        noise = max(statistics.stdev(times[True]), statistics.stdev(times[False]))
        print(f"on/off wall time ratio: {on / off:.3f} ({100 * (on - off) / off:+.1f} %); "
              f"difference {on - off:+.2f} s against run-to-run noise (largest stdev) "
              f"{noise:.2f} s ({100 * noise / off:.1f} %)")


if __name__ == "__main__":
    main()
