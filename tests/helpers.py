"""The tests' one helpers module: configs, brokers, the watcherd CLI and a running daemon,
waiting, reading the database, and the photos the tests write (every test imports these from
here; the fixtures live in ``tests/conftest.py``)."""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from kombu import Connection, Exchange, Queue
from PIL import Image, ImageDraw

from tests.requires import in_ci

BROKERS = {
    "embedded": "",
    "amqp": "amqp://guest:guest@127.0.0.1:5672//",
    "redis": "redis://127.0.0.1:6379/0",
}
WATCHERD = [sys.executable, "-m", "watcherd"]


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll ``condition`` until it returns something truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def reachable(url: str) -> bool:
    if not url:
        return True
    host, port = "127.0.0.1", 5672 if url.startswith("amqp") else 6379
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def require_broker(name: str) -> str:
    url = BROKERS[name]
    if not reachable(url):
        msg = f"{name} broker not reachable at {url}"
        if in_ci():
            pytest.fail(msg + " (CI is set: brokers must be running)")
        pytest.skip(msg)
    return url


def write_config(tmp_path: Path, *, broker_url: str = "", model: str = "", **sections: Any) -> Path:
    """A config file in tmp_path watching tmp_path/photos, with fast test timings."""
    photos = tmp_path / "photos"
    photos.mkdir(exist_ok=True)
    base: dict[str, dict[str, Any]] = {
        "watch": {"paths": [str(photos)], "settle_seconds": 1.0, "rescan_interval_seconds": 3600},
        "database": {"path": str(tmp_path / "watcherd.db")},
        "broker": {"url": broker_url, "queue_prefix": f"t{uuid.uuid4().hex[:8]}-",
                   "outbox_interval_seconds": 1.0},
        "thumbnails": {"sizes": [64, 256], "concurrency": 2},
        "embeddings": {"model": model or "local-dir:/nonexistent-model", "pretrained": "",
                       "batch_size": 8, "max_wait_ms": 100},
        "log": {"level": "info", "format": "json"},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    lines: list[str] = []
    for name, values in base.items():
        lines.append(f"[{name}]")
        for key, value in values.items():
            lines.append(f"{key} = {_toml(value)}")
        lines.append("")
    path = tmp_path / "watcherd.toml"
    path.write_text("\n".join(lines))
    return path


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


def cli(config: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*WATCHERD, "-c", str(config), *args], capture_output=True, text=True,
                          timeout=timeout)


class Daemon:
    """A real ``watcherd run`` (or any subcommand) process with its output in a log file."""

    def __init__(self, config: Path, *args: str) -> None:
        self.config = config
        self.args = args or ("run",)
        self.log_path = config.parent / f"daemon-{uuid.uuid4().hex[:6]}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Daemon:
        self.log_file = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([*WATCHERD, "-c", str(self.config), *self.args],
                                     stdout=self.log_file, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 20) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            # Nothing of ours may survive: kill the whole session if anything lingers.
            kill_group(self.proc.pid)
            self.log_file.close()
        return code


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def query(db_path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    if not db_path.exists():
        return []
    conn = sqlite3.connect(db_path, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise
    finally:
        conn.close()


def rows_by_name(db_path: Path) -> dict[str, sqlite3.Row]:
    return {Path(r["path"]).name: r for r in query(db_path, "SELECT * FROM images")}


def all_final(db_path: Path, names: set[str]) -> bool:
    rows = rows_by_name(db_path)
    return names <= set(rows) and all(
        rows[n]["thumbnail_status"] != "pending" and rows[n]["embedding_status"] != "pending"
        for n in names
    )


def put_vectors(conn: Any, model: str, pretrained: str, dim: int, rows: Sequence[Any],
                precision: str | None = None) -> int:
    """Vectors as a finished library holds them, whatever each row's status (a fixture: several
    models' vectors for one photo, vectors for rows already done). The product's one writer,
    with its guards, is ``watcherd.store.outcomes.save_vectors``; ``rows`` are its
    ``EmbeddingRow``. Returns how many rows matched (same id and sha256)."""
    from watcherd.store.schema import now_iso, transaction

    now, n = now_iso(), 0
    with transaction(conn) as c:
        for r in rows:
            if c.execute("UPDATE images SET embedding_status = 'done', embedding_error = NULL, "
                         "width = coalesce(width, ?), height = coalesce(height, ?), "
                         "format = coalesce(format, ?), updated_at = ? WHERE id = ? AND "
                         "sha256 = ?", (r.width, r.height, r.format, now, r.image_id,
                                        r.sha256)).rowcount:
                c.execute("INSERT OR REPLACE INTO embeddings (image_id, model, pretrained, dim, "
                          "vector, created_at, precision) VALUES (?, ?, ?, ?, ?, ?, ?)",
                          (r.image_id, model, pretrained, dim, r.vector, now, precision))
                n += 1
    return n



def put_metadata(conn: Any, image_id: int, **fields: Any) -> None:
    """A photo's ``metadata`` row as the thumbnail step stores it (a fixture: the reader and the
    geocoder are not run); ``keywords`` may be a list (stored as its JSON array)."""
    import json

    from watcherd.metadata.fields import COLUMNS
    from watcherd.store import metadata as stored
    from watcherd.store.schema import transaction

    if isinstance(fields.get("keywords"), list):
        fields["keywords"] = json.dumps(fields["keywords"], ensure_ascii=False)
    unknown = set(fields) - set(COLUMNS)
    assert not unknown, f"not metadata columns: {unknown}"
    with transaction(conn) as c:
        stored.write(c, image_id, [fields.get(name) for name in COLUMNS])


class Events:
    """A real Celery event receiver on its own connection, in a thread."""

    def __init__(self, app: Any) -> None:
        self.app, self.seen, self.lock = app, [], threading.Lock()
        self.receiver: Any = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with self.app.connection_for_read() as conn:
            self.receiver = self.app.events.Receiver(conn, handlers={"*": self._on})
            self.receiver.capture(limit=None, timeout=None, wakeup=False)

    def _on(self, event: dict[str, Any]) -> None:
        with self.lock:
            self.seen.append(event)

    def of(self, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.seen if e["type"] == kind]

    def succeeded(self, task: str) -> list[dict[str, Any]]:
        ids = {e["uuid"] for e in self.of("task-received") if e["name"] == task}
        return [e for e in self.of("task-succeeded") if e["uuid"] in ids]


# The embedded spool broker, driven through kombu as the workers drive it.

SPOOL_QUEUE = Queue("q", Exchange("q", "direct"), routing_key="q")


def spool_connection(root: Path) -> Connection:
    """A kombu connection to the embedded spool broker at ``root``, polling fast."""
    from watcherd.broker.spool import spool_options

    return Connection("spool://", transport_options=spool_options(root, polling_interval=0.01))


def spool_drain(root: Path, idle: float = 0.5) -> list[int]:
    """Consume and ack until the queue has been idle for ``idle`` seconds."""
    got: list[int] = []
    with spool_connection(root) as conn:

        def on_message(body: dict[str, int], message: object) -> None:
            got.append(body["n"])
            message.ack()  # type: ignore[attr-defined]

        with conn.Consumer(SPOOL_QUEUE, callbacks=[on_message], accept=["json"]):
            while True:
                try:
                    conn.drain_events(timeout=idle)
                except TimeoutError:
                    break
    return got


def spool_publish(root: Path, numbers: range, delivery_mode: int = 2) -> None:
    """``{"n": n}`` for each number, into queue ``q`` of the spool at ``root``."""
    with spool_connection(root) as conn, conn.Producer() as producer:
        for n in numbers:
            producer.publish({"n": n}, exchange=SPOOL_QUEUE.exchange, routing_key="q",
                             declare=[SPOOL_QUEUE], serializer="json",
                             delivery_mode=delivery_mode)


# Photos. Each maker is deterministic in its seed, so two calls with the same arguments give the
# same bytes and different seeds give files with different hashes.


def jpeg(content: int | Image.Image, size: int = 40, *,
         colour: tuple[int, int, int] | None = None, quality: int = 85) -> bytes:
    """A JPEG: of ``content`` when it is an image; else a ``size`` x ``size`` square for the seed
    ``content``, random noise, or with ``colour`` one flat colour whose top-left pixel carries the
    seed (so no two files share a hash either way)."""
    if isinstance(content, Image.Image):
        im = content
    elif colour is not None:
        im = Image.new("RGB", (size, size), colour)
        im.putpixel((0, 0), (content % 256, content // 256 % 256, content // 65536 % 256))
    else:
        rng = np.random.default_rng(content)
        im = Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def photo(width: int, height: int, seed: int, orientation: int | None = None) -> bytes:
    """A JPEG with structure (so embeddings differ), optionally with an EXIF orientation."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    arr = np.stack([(x * 255 // max(width - 1, 1)), (y * 255 // max(height - 1, 1)),
                    np.full_like(x, seed * 37 % 256)], axis=-1).astype(np.uint8)
    arr[: height // 4, : width // 4] = (255, 0, 0)  # a red top-left corner
    arr = np.clip(arr.astype(int) + rng.integers(-20, 20, arr.shape), 0, 255).astype(np.uint8)
    im = Image.fromarray(arr)
    buf = io.BytesIO()
    if orientation:
        exif = Image.Exif()
        exif[0x0112] = orientation
        im.save(buf, "JPEG", quality=90, exif=exif)
    else:
        im.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def scene_image(width: int, height: int, seed: int) -> Image.Image:
    """A photo-like picture: smooth colour fields, noise and a dozen shapes (CLIP tells seeds
    apart)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    x /= width
    y /= height
    a, b, c = rng.uniform(0.5, 3.0, 3)
    arr = np.stack(
        [
            120 + 90 * np.sin(a * 3.1 * x + 0.5) * np.cos(b * 2.0 * y),
            110 + 80 * np.cos(b * 2.3 * x - c * y),
            140 + 70 * np.sin(c * 2.7 * y + x),
        ],
        axis=-1,
    )
    arr += rng.normal(0, 6, arr.shape).astype(np.float32)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(12):
        x0, y0 = int(rng.uniform(0, width)), int(rng.uniform(0, height))
        w = int(rng.uniform(width / 30, width / 4))
        h = int(rng.uniform(height / 30, height / 4))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse([x0, y0, x0 + w, y0 + h], fill=colour)
        else:
            draw.rectangle([x0, y0, x0 + w, y0 + h], fill=colour)
    return img


def png_claiming(width: int, height: int) -> bytes:
    """A tiny, valid-looking PNG whose header claims width x height (1-bit grey, one IDAT): a
    decompression bomb of a few hundred bytes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


README = Path(__file__).resolve().parents[1] / "README.md"


def readme_block(name: str) -> str:
    """The README's code block marked ``<!-- test: NAME -->``, as written."""
    match = re.search(rf"<!-- test: {name} -->\n```\w+\n(.*?)```", README.read_text(), re.S)
    assert match, f"README block {name} not found"
    return match.group(1)
