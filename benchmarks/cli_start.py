"""watcherd CLI start-up benchmark: each figure is the median wall time of several runs of a new
process (Python, imports, work, exit), measured side by side in one run, rounds interleaved.

    .venv/bin/python benchmarks/cli_start.py                  # 100,000 photos, 7 rounds
    .venv/bin/python benchmarks/cli_start.py --photos 20000 --runs 5

(a) `watcherd --help` vs `python -c "import click"` (target: --help <= 0.15 s)
(b) `watcherd search --image PATH --local` of an indexed photo vs a plain sqlite3 + numpy script
    that loads the same model's live vectors and ranks them (target: no slower than the script)
(c) `watcherd search TEXT` with a `watcherd serve` of the same config up vs `--help`
    (target: <= --help + 0.15 s), and once `watcherd search TEXT --local` (torch loaded)

A library of synthetic unit vectors of the tiny random-weight test model (32-d), written in
bulk into a real watcherd database (every 50th photo deleted), the model's identity recorded as
the watcher records it; about a minute in all (--workdir keeps the database for the next run).
Bytecode is written and used (PYTHONDONTWRITEBYTECODE is dropped), as for an installed package.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PY = sys.executable
WATCHERD = [PY, "-m", "watcherd"]
DIM = 32
QUERY_ID = 12_345
TEXT = "two dogs in the snow"
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
ENV["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])


def log(msg: str) -> None:
    print(msg, flush=True)


def path_of(i: int) -> str:
    return f"/srv/photos/{2000 + i % 25}/{i % 97:02d}/IMG_{i:07d}.jpg"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(work: Path, n: int, model: str) -> Path:
    config = work / f"cli-{n}.toml"
    config.write_text(f'[watch]\npaths = ["{work}"]\n[database]\npath = "{work}/cli-{n}.db"\n'
                      f'[embeddings]\nmodel = "{model}"\npretrained = ""\ndevice = "cpu"\n'
                      f'[web]\nlisten = "127.0.0.1:{free_port()}"\n[log]\nformat = "json"\n')
    return config


def build(config: Path, n: int) -> tuple[str, str]:
    """n photos (every 50th deleted), each with a vector of the configured model, whose
    identity is recorded as the watcher records it; returns the model key."""
    import numpy as np

    from watcherd import config as wconfig
    from watcherd import models
    from watcherd.store import schema

    cfg = wconfig.load(config, check_paths=False)
    path = cfg.database.path
    if path.exists():
        identity = models.configured(cfg)
        return identity.model, identity.pretrained
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    conn = schema.connect(tmp)
    key = models.adopt(conn, cfg)
    log(f"  writing {n:,} photos to {path} ...")
    now = schema.now_iso()
    raw = conn
    raw.execute("BEGIN")
    for s in range(0, n, 20_000):
        m = np.random.default_rng(s).standard_normal((min(20_000, n - s), DIM), np.float32)
        m /= np.linalg.norm(m, axis=1, keepdims=True)
        images, vecs = [], []
        for j in range(len(m)):
            i = s + j + 1
            images.append((i, path_of(i), hashlib.sha256(str(i).encode()).hexdigest(),
                           3_000_000, 1.7e9, 4000, 3000, "JPEG", now, "done", "done",
                           None if i % 50 else now, now))
            vecs.append((i, key.model, key.pretrained, DIM, m[j].astype("<f4").tobytes(), now))
        raw.executemany("INSERT INTO images (id, path, sha256, size, mtime, width, height, "
                        "format, discovered_at, thumbnail_status, embedding_status, deleted_at, "
                        "updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", images)
        raw.executemany("INSERT INTO embeddings (image_id, model, pretrained, dim, vector, "
                        "created_at) VALUES (?,?,?,?,?,?)", vecs)
    raw.execute("COMMIT")
    raw.close()
    tmp.rename(path)
    return key.model, key.pretrained


def script(db_path: Path, key: tuple[str, str]) -> str:
    """The plain baseline: load the live vectors of one model, rank them by one photo's."""
    return textwrap.dedent(f"""
        import sqlite3, numpy as np
        db = sqlite3.connect({str(db_path)!r})
        rows = db.execute('''SELECT i.id, i.path, e.vector FROM embeddings e JOIN images i
            ON i.id = e.image_id WHERE i.deleted_at IS NULL AND e.model = ?
            AND e.pretrained = ?''', {key!r}).fetchall()
        m = np.stack([np.frombuffer(r[2], '<f4') for r in rows])
        paths = [r[1] for r in rows]
        q = m[paths.index({path_of(QUERY_ID)!r})]
        for i in np.argsort(-(m @ q))[:20]: print(f'{{m[i] @ q:.4f}}\\t{{paths[i]}}')
        """)


def rounds(commands: dict[str, list[str]], runs: int) -> dict[str, list[float]]:
    """Each command once per round (one warm-up round first, not counted): median of runs."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for r in range(runs + 1):
        for name, cmd in commands.items():
            t = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
            if r:
                times[name].append(time.perf_counter() - t)
            if done.returncode != 0:
                raise SystemExit(f"{name}: exit {done.returncode}: {done.stderr[-2000:]}")
    return times


class Serve:
    def __init__(self, config: Path) -> None:
        import tomllib

        self.base = "http://" + tomllib.loads(config.read_text())["web"]["listen"]
        self.log = open(config.with_suffix(".serve.log"), "wb")  # noqa: SIM115 - in stop()
        self.proc = subprocess.Popen([*WATCHERD, "-c", str(config), "serve"], env=ENV,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        started = time.monotonic()
        while time.monotonic() - started < 300:
            if self.proc.poll() is not None:
                raise SystemExit(f"serve exited {self.proc.returncode}; see {self.log.name}")
            try:
                with urllib.request.urlopen(self.base + "/api/search?q=x&n=1", timeout=5) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise SystemExit("serve did not answer within 300 s")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--photos", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--local-text-runs", type=int, default=1,
                    help="runs of `search TEXT --local` (each imports torch: seconds)")
    ap.add_argument("--workdir", type=Path, default=None,
                    help="keep the model and database here (default: a temporary folder)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="watcherd-cli-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        run(work, args)


def run(work: Path, args: argparse.Namespace) -> None:
    from watcherd.testing import write_model_dir

    t0 = time.perf_counter()
    model = write_model_dir(work / "tiny-model", arch="tiny")
    config = write_config(work, args.photos, model)
    key = build(config, args.photos)
    db_path = work / f"cli-{args.photos}.db"
    log(f"library: {args.photos:,} photos ({args.photos // 50:,} deleted), tiny model "
        f"({DIM}-d), built in {time.perf_counter() - t0:.1f} s; {args.runs} rounds; "
        f"load average {os.getloadavg()[0]:.2f}")
    image = path_of(QUERY_ID)
    search = [*WATCHERD, "-c", str(config), "search"]
    cold = rounds({
        "click": [PY, "-c", "import click"],
        "help": [*WATCHERD, "--help"],
        "script": [PY, "-c", script(db_path, key)],
        "image_local": [*search, "--image", image, "--local"],
    }, args.runs)
    local_text: list[float] = []
    local_json = ""
    for _ in range(args.local_text_runs):
        t = time.perf_counter()
        done = subprocess.run([*search, TEXT, "--local", "--json"], capture_output=True,
                              text=True, env=ENV, check=True)
        local_text.append(time.perf_counter() - t)
        local_json = done.stdout
    t = time.perf_counter()
    server = Serve(config)
    log(f"serve up in {time.perf_counter() - t:.1f} s")
    try:
        served = rounds({
            "help": [*WATCHERD, "--help"],
            "text_served": [*search, TEXT],
            "image_served": [*search, "--image", image],
        }, args.runs)
        served_json = subprocess.run([*search, TEXT, "--json"], capture_output=True, text=True,
                                     env=ENV, check=True).stdout
    finally:
        server.stop()
    report(cold, served, local_text, local_json == served_json if local_json else None, args)


def report(cold: dict[str, list[float]], served: dict[str, list[float]],
           local_text: list[float], same: bool | None, args: argparse.Namespace) -> None:
    med = {k: statistics.median(v) for k, v in cold.items()}
    med.update({f"{k}+serve": statistics.median(v) for k, v in served.items()})

    def row(what: str, seconds: float, note: str = "") -> None:
        log(f"  {what:<52} {seconds:6.3f} s   {note}")

    log(f"\nmedian wall time of {args.runs} new processes each, {args.photos:,} photos")
    row('python -c "import click"', med["click"])
    row("watcherd --help", med["help"], f"{med['help'] / med['click']:.2f}x import click; "
        f"target <= 0.150 s: {'met' if med['help'] <= 0.15 else 'MISSED'}")
    row("plain sqlite3 + numpy script (load, rank, print 20)", med["script"])
    ratio = med["script"] / med["image_local"]
    row("watcherd search --image INDEXED --local", med["image_local"],
        f"script / watcherd {ratio:.2f}x; target >= 1: {'met' if ratio >= 1 else 'MISSED'}")
    log("  with `watcherd serve` of the same config up:")
    row("watcherd --help", med["help+serve"])
    budget = med["help+serve"] + 0.15
    met = "met" if med["text_served+serve"] <= budget else "MISSED"
    row("watcherd search TEXT", med["text_served+serve"],
        f"target <= --help + 0.15 s = {budget:.3f} s: {met}")
    row("watcherd search --image INDEXED", med["image_served+serve"],
        f"{med['script'] / med['image_served+serve']:.2f}x the script")
    if local_text:
        row(f"watcherd search TEXT --local ({len(local_text)} run)", statistics.median(local_text),
            f"{statistics.median(local_text) / med['text_served+serve']:.0f}x the served one; "
            f"same --json output both ways: {'yes' if same else 'NO'}")
    log("\nall rounds (s): " + json.dumps({k: [round(x, 3) for x in v] for k, v in
                                          {**cold, **{f"{k}+serve": v for k, v in
                                                      served.items()}}.items()}))


if __name__ == "__main__":
    main()
