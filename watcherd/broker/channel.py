"""The fleet queue: heartbeats and in-flight markers from the workers to the watcher.

Liveness, attempts and claims travel through the broker, not through SQLite, so that a worker
needs nothing but the broker (workers on other machines, later). One queue,
``{queue_prefix}watcherd.fleet``, declared like the task queues (a direct exchange of the same
name), carries plain JSON messages (``watcherd.fleet.messages``); it works the same on the
embedded spool, RabbitMQ and Redis.

- Messages are transient. On RabbitMQ the queue has a 60 s message TTL, so heartbeats do not
  pile up while no watcher reads them; on Redis and the spool a worker empties the queue when it
  finds it far longer than any live watcher would let it grow (``UNREAD_CAP``). The watcher
  empties it when it starts: what was said before it was listening is stale.
- Every process publishes on its own connection (``Publisher``), synchronously: a busy marker
  is on the broker before the step it announces starts. A pool child gets its own connection
  the first time it publishes (``Publisher`` notices the fork).
- The watcher reads it on its own connection in a thread (``Listener``).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from kombu import Connection, Consumer, Exchange, Producer, Queue

from watcherd import logs
from watcherd.broker.app import broker_url, tls_options, transport_options
from watcherd.config import Config

log = logs.get("watcherd.broker.channel")

FLEET_QUEUE = "watcherd.fleet"
MESSAGE_TTL_MS = 60_000
# More messages than this in the fleet queue means nobody is reading it (a live watcher drains it
# within a second): a worker then empties it, on brokers without a message TTL.
UNREAD_CAP = 2000
CONNECT_TIMEOUT_S = 5.0
RECONNECT_S = (1.0, 5.0)  # first and longest wait between the listener's tries


def is_amqp(cfg: Config) -> bool:
    return cfg.broker.url.startswith(("amqp://", "amqps://", "pyamqp://"))


def queue_name(cfg: Config) -> str:
    return cfg.broker.queue_prefix + FLEET_QUEUE


def fleet_queue(cfg: Config) -> Queue:
    name = queue_name(cfg)
    arguments = {"x-message-ttl": MESSAGE_TTL_MS} if is_amqp(cfg) else None
    return Queue(name, Exchange(name, "direct", durable=True), routing_key=name, durable=True,
                 queue_arguments=arguments)


def connect(cfg: Config, **options: Any) -> Connection:
    """A connection of its own to the broker (``options``: extra transport options)."""
    return Connection(broker_url(cfg), transport_options={**transport_options(cfg), **options},
                      connect_timeout=CONNECT_TIMEOUT_S, ssl=tls_options(cfg) or False)


class Publisher:
    """Fleet events from one process, on a connection of its own, one publish at a time.

    Fork-safe: a process that did not open the connection (a prefork pool child that inherited
    the object) opens its own and never touches the parent's. ``publish`` returns False when the
    broker cannot be reached (after one reconnect): telemetry never stops the work, and the
    failure is logged once per outage.
    """

    def __init__(self, cfg: Config, queue: Queue | None = None, *,
                 persistent: bool = False) -> None:
        """``queue``: another queue than the fleet's (the results queue), ``persistent``: its
        messages survive a broker restart."""
        self.cfg = cfg
        self.queue = queue if queue is not None else fleet_queue(cfg)
        self.delivery_mode = 2 if persistent else 1
        self._lock = threading.Lock()
        self._pid = 0
        self._conn: Connection | None = None
        self._producer: Producer | None = None
        self._failing = False
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _forget(ref()))

    def _forget_after_fork(self) -> None:
        # The parent's connection belongs to the parent: drop our references without closing
        # it (closing would talk on the parent's socket), and get a new lock (the parent's may
        # have been held by another thread at the fork).
        self._lock = threading.Lock()
        self._conn = self._producer = None
        self._pid = 0

    def _ensure(self) -> Producer:
        if self._producer is None or self._pid != os.getpid():
            self._pid = os.getpid()
            self._conn = connect(self.cfg)
            self._conn.ensure_connection(max_retries=1)
            self._producer = Producer(self._conn.channel(), exchange=self.queue.exchange,
                                      routing_key=self.queue.routing_key, serializer="json")
            self.queue(self._producer.channel).declare()
        return self._producer

    def publish(self, body: Mapping[str, Any]) -> bool:
        with self._lock:
            for attempt in (1, 2):
                try:
                    self._ensure().publish(dict(body), delivery_mode=self.delivery_mode)
                except Exception as exc:  # the broker's own connection errors, of any transport
                    self._drop()
                    if attempt == 2:
                        if not self._failing:
                            log.warning("cannot publish to the broker; the watcher will not "
                                        "hear this process until the broker is back",
                                        queue=self.queue.name,
                                        error=str(exc) or type(exc).__name__)
                        self._failing = True
                        return False
                    continue
                if self._failing:
                    log.info("publishing fleet events again")
                    self._failing = False
                return True
        return False

    def depth(self) -> int | None:
        """Messages waiting in the fleet queue, or None if the broker cannot say now."""
        with self._lock:
            try:
                producer = self._ensure()
                return int(producer.channel.queue_declare(
                    queue=self.queue.name, passive=True).message_count)
            except Exception:
                self._drop()
                return None

    def purge(self) -> int:
        with self._lock:
            try:
                return int(self.queue(self._ensure().channel).purge() or 0)
            except Exception:
                self._drop()
                return 0

    def _drop(self) -> None:
        conn, self._conn, self._producer = self._conn, None, None
        if conn is not None and self._pid == os.getpid():
            with contextlib.suppress(Exception):  # the connection is being dropped anyway
                conn.release()

    def close(self) -> None:
        with self._lock:
            self._drop()


def _forget(publisher: Publisher | None) -> None:
    if publisher is not None:
        publisher._forget_after_fork()


class Listener(threading.Thread):
    """The watcher's side: consumes the fleet queue in a thread on its own connection and hands
    each message body, with the (monotonic) time it arrived, to ``on_event``.

    The first time it connects it empties the queue: what was said before the watcher listened
    is stale (busy markers and heartbeats of processes that may be long gone), so it is not
    fed to ``on_event``; each of those messages goes to ``on_stale`` instead, which may keep what
    stays true (a worker that said it stopped). ``connected_since`` is when the current
    connection started consuming (None while it is down): silence from the workers means nothing
    while the watcher itself cannot hear them.
    """

    def __init__(self, cfg: Config, on_event: Callable[[Any, float], None], *,
                 on_stale: Callable[[Any], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(name="watcherd-fleet-listener", daemon=True)
        self.cfg = cfg
        self.on_event = on_event
        self.on_stale = on_stale
        self.clock = clock
        self.connected_since: float | None = None
        self.purged: int | None = None  # how many stale messages the first connection dropped
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        wait = RECONNECT_S[0]
        down_logged = False
        while not self._stopping.is_set():
            try:
                self._consume()
                return
            except Exception as exc:
                if self.connected_since is not None:  # it was up: a new outage
                    self.connected_since, down_logged, wait = None, False, RECONNECT_S[0]
                if not down_logged:
                    log.warning("fleet queue unreachable; worker liveness is on hold until the "
                                "broker is back", error=str(exc) or type(exc).__name__)
                    down_logged = True
                self._stopping.wait(wait)
                wait = min(wait * 2, RECONNECT_S[1])

    def _consume(self) -> None:
        with connect(self.cfg) as conn:
            conn.ensure_connection(max_retries=1)
            channel = conn.channel()
            queue = fleet_queue(self.cfg)(channel)
            queue.declare()
            if self.purged is None:
                self.purged = self._drop_stale(queue)
            consumer = Consumer(channel, queues=[queue], callbacks=[self._on_message],
                                accept=["json"], no_ack=True)
            with consumer:
                self.connected_since = self.clock()
                log.info("listening to the workers", queue=queue.name, dropped_stale=self.purged)
                while not self._stopping.is_set():
                    try:
                        conn.drain_events(timeout=0.25)
                    except TimeoutError:
                        continue
        self.connected_since = None

    def _drop_stale(self, queue: Queue) -> int:
        dropped = 0
        while dropped < 2 * UNREAD_CAP and (message := queue.get(no_ack=True,
                                                                   accept=["json"])) is not None:
            dropped += 1
            if self.on_stale is not None:
                self.on_stale(message.payload)
        return dropped + int(queue.purge() or 0)

    def _on_message(self, body: Any, _message: Any) -> None:
        self.on_event(body, self.clock())
