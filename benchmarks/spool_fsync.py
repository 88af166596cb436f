"""What flushing spool messages to disk costs: messages/s the outbox can send to the embedded
broker, without any sync (as before) and with each way of syncing, measured in the same run.

    .venv/bin/python benchmarks/spool_fsync.py [--dir FOLDER] [-n 200] [--rounds 15]

The spool goes in a temporary folder under --dir (default: the system's temp folder); put it on
the disk that holds the database, since the cost depends on the disk and its filesystem. The
modes are interleaved in short rounds (the machine is shared and noisy); the median and the best
round are reported. Two figures per mode: what the outbox sees (a Celery task message with
(image id, sha256) through watcherd's app, one producer for the batch), and the spool's own write
path alone (``Channel._put`` with the same message), which isolates what the sync costs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kombu.transport import TRANSPORT_ALIASES

from watcherd import config as wconfig
from watcherd.broker import spool
from watcherd.broker.app import TASKS, make_app, queue_names
from watcherd.broker.fstype import filesystem_of


def _no_sync(_fd: int) -> None:
    pass


def _fsync(fd: int) -> None:
    os.fsync(fd)


# name -> (how the message file is synced before its rename, whether the queue folder is
# fsynced after it). spool.Channel._sync_file is watcherd's choice.
MODES = {
    "no sync (before)": (_no_sync, False),
    "fdatasync file (watcherd)": (spool.Channel._sync_file, False),
    "fsync file": (_fsync, False),
    "fdatasync file + fsync folder": (spool.Channel._sync_file, True),
    "fsync file + fsync folder": (_fsync, True),
}


def _register(index: int, sync_file: Callable[[int], None], sync_folder: bool) -> str:
    """A spool transport whose channel syncs the given way, under its own URL scheme."""

    def put(self: spool.Channel, queue: str, payload: Any, **kwargs: Any) -> None:
        spool.Channel._put(self, queue, payload, **kwargs)
        if sync_folder:
            spool.Channel._sync_dir(self._root / "queues" / queue)

    channel = type(f"Channel{index}", (spool.Channel,),
                   {"_sync_file": staticmethod(sync_file), "_put": put})
    transport = type(f"Transport{index}", (spool.Transport,), {"Channel": channel})
    globals()[transport.__name__] = transport
    alias = f"spoolbench{index}"
    TRANSPORT_ALIASES[alias] = f"{__name__}:{transport.__name__}"
    return alias


class Mode:
    """One way of syncing: a connected app and its producer, kept for all rounds."""

    def __init__(self, cfg: wconfig.Config, alias: str) -> None:
        self.app = make_app(cfg)
        self.app.conf.broker_url = f"{alias}://localhost//"
        self.queue = queue_names(cfg)["thumbnail"]
        self.folder = cfg.spool_dir / "queues" / self.queue
        self.producer = self.app.producer_or_acquire().__enter__()  # held for all rounds
        self.send(0)  # connect and declare before timing
        self.payload = json.loads(next(self.folder.iterdir()).read_bytes())
        self.empty()

    def send(self, i: int) -> None:
        self.app.send_task(TASKS["thumbnail"], args=[i, f"{i:064x}"], queue=self.queue,
                           routing_key=self.queue, producer=self.producer)

    def empty(self) -> None:
        for path in self.folder.iterdir():
            path.unlink()

    def send_rate(self, n: int) -> float:
        """Messages/s through Celery's send_task, as the outbox sends them."""
        t0 = time.perf_counter()
        for i in range(n):
            self.send(i)
        rate = n / (time.perf_counter() - t0)
        self.empty()
        return rate

    def put_rate(self, n: int) -> float:
        """Messages/s of the spool's own write path (Channel._put) alone."""
        channel = self.producer.channel
        t0 = time.perf_counter()
        for _ in range(n):
            channel._put(self.queue, self.payload)
        rate = n / (time.perf_counter() - t0)
        self.empty()
        return rate


def _report(title: str, rates: dict[str, list[float]]) -> None:
    base = statistics.median(rates["no sync (before)"])
    print(f"{title}\n{'mode':<34}{'median msg/s':>13}{'us/msg':>8}{'vs before':>11}"
          f"{'best msg/s':>12}{'40,000 msgs':>13}")
    for name, values in rates.items():
        rate = statistics.median(values)
        print(f"{name:<34}{rate:>13.0f}{1e6 / rate:>8.0f}{rate / base:>10.2f}x"
              f"{max(values):>12.0f}{40_000 / rate:>12.1f}s")
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, default=None, help="where to put the spool")
    ap.add_argument("-n", type=int, default=200, help="messages per mode and round")
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="spool-fsync-", dir=args.dir))
    try:
        (work / "photos").mkdir()
        (work / "w.toml").write_text('[watch]\npaths = ["photos"]\n[database]\npath = "w.db"\n')
        cfg = wconfig.load(work / "w.toml")
        mount = filesystem_of(work)
        where = f"{mount.fstype} on {mount.source}" if mount else "unknown filesystem"
        print(f"spool in {cfg.spool_dir} ({where})\n{args.rounds} rounds of {args.n} messages "
              "per mode, the modes interleaved; median and best round\n")
        modes = {name: Mode(cfg, _register(i, *fns)) for i, (name, fns) in enumerate(MODES.items())}
        sent: dict[str, list[float]] = {name: [] for name in MODES}
        put: dict[str, list[float]] = {name: [] for name in MODES}
        for _ in range(args.rounds):
            for name, mode in modes.items():
                sent[name].append(mode.send_rate(args.n))
                put[name].append(mode.put_rate(args.n))
        _report("Celery send_task (what the outbox sees):", sent)
        _report("the spool's write path alone (Channel._put):", put)
        print("40,000 messages: the thumbnail and embedding tasks of a 20,000-photo first import.")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
