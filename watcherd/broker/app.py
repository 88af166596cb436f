"""The Celery app, built from the config: broker, queues, routes, delivery guarantees.

The watcher only *sends* tasks by name (it never imports the task code, so never torch); the
workers register the tasks (``watcherd.tasks``) on the same app.
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import urlsplit

import celery.worker.consumer
from celery import Celery
from kombu import Exchange, Queue

from watcherd.broker import fstype
from watcherd.broker import spool as broker
from watcherd.config import Config, ConfigError

THUMBNAIL_TASK = "watcherd.thumbnail"
EMBED_TASK = "watcherd.embed"
PREPARE_TASK = "watcherd.prepare"  # remote embedding: see watcherd.dispatch.remote
METADATA_TASK = "watcherd.metadata"  # metadata without pixels: see watcherd.worker.metadata
QUEUES = {"thumbnail": "thumbnails", "embedding": "embeddings"}
TASKS = {"thumbnail": THUMBNAIL_TASK, "embedding": EMBED_TASK}


def queue_names(cfg: Config) -> dict[str, str]:
    """Queue per task kind: ``thumbnails`` and ``embeddings``, after ``[broker] queue_prefix``."""
    return {kind: cfg.broker.queue_prefix + name for kind, name in QUEUES.items()}


def events_enabled(cfg: Config) -> bool:
    """Celery task events and worker heartbeats: ``[broker] task_events``, never on the spool.

    The spool keeps a queue folder and an exchange binding for every consumer that ever bound
    one and never expires them: each `celery events` or Flower session would leave a queue that
    fills with every later event, and the disk with it (docs/celery-tools.md)."""
    return cfg.broker.task_events and not cfg.broker.embedded


def broker_url(cfg: Config) -> str:
    return cfg.broker.url or f"{broker.ALIAS}://localhost//"


def check_spool(cfg: Config) -> None:
    """With the embedded broker, refuse a spool folder on a network filesystem: ConfigError
    naming the folder, its filesystem type, the key and the file (the CLI exits 2).

    The spool transport checks this itself whenever it connects (so nothing can use such a
    folder: Celery's own tools, scripts); processes call this at start to fail there, with a
    config error, before anything runs. At connect the error would only look like a broker
    that cannot be reached: Celery retries it and the watcher's outbox waits for it."""
    if not cfg.broker.embedded:
        return
    try:
        fstype.check_local(cfg.spool_dir)
    except fstype.NetworkFilesystemError as exc:
        m = exc.mount
        default = "" if cfg.broker.spool_dir is not None else \
            " (by default the folder is beside [database] path)"
        raise ConfigError(
            f"the embedded broker's folder {exc.folder} is on a network filesystem ({m.fstype}, "
            f"{m.source} mounted at {m.mount_point}), where rename and flock do not work as the "
            f"spool needs{default}; set [broker] spool_dir to a folder on a local disk, or "
            "[broker] url to RabbitMQ or Redis", key="broker.spool_dir", file=cfg.file) from exc


def transport_options(cfg: Config) -> dict[str, Any]:
    url = cfg.broker.url
    if not url:
        return broker.spool_options(cfg.spool_dir)
    if url.startswith(("redis://", "rediss://")):
        return {
            # Longer than any message waits in a worker's prefetch buffer plus its processing:
            # a shorter one makes Redis redeliver messages that are still being worked on.
            "visibility_timeout": 3600,
            "socket_connect_timeout": 5,
            "socket_timeout": 30,
        }
    # RabbitMQ: wait for the broker's confirm, so a send that returns really reached it.
    return {"confirm_publish": True}


def tls_options(cfg: Config) -> dict[str, Any] | None:
    """``amqps://`` / ``rediss://``: TLS with the broker's certificate verified against
    ``[broker] ca_file`` (or the system's trust store), its host name included; None otherwise.
    The shape is each transport's own (py-amqp: an SSL context's options; redis-py: ssl_*)."""
    if not cfg.broker.tls:
        return None
    ca = str(cfg.broker.ca_file) if cfg.broker.ca_file is not None else None
    if cfg.broker.url.startswith("rediss://"):
        return {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_certs": ca,
                "ssl_check_hostname": True}
    host = urlsplit(cfg.broker.url).hostname or ""
    return {"context": {"cafile": ca, "check_hostname": True}, "server_hostname": host}


# Seconds between a worker's tries to reach a broker that went away. Celery's consumer uses
# kombu's defaults (2 s, growing by 2 s, up to 30 s), so after a 30 s broker restart a worker
# sat idle up to ~12 s more, and longer after longer outages. A try against a local broker costs
# next to nothing; cap the wait at 5 s.
RECONNECT_INTERVALS = {"interval_start": 1, "interval_step": 1, "interval_max": 5}


class Consumer(celery.worker.consumer.Consumer):
    """Celery's worker consumer, reconnecting to a lost broker every few seconds, and after a
    lost connection dropping what batch tasks buffered, as Celery drops its reserved requests.

    When its broker connection drops, Celery forgets the messages it had reserved ("they can't
    be acked anyway, as a delivery tag is specific to the current channel"): the broker gives
    them back (RabbitMQ, the spool) or the watcher's outbox sends them again (a Redis restart
    lost them). celery-batches keeps its buffer instead, with a flush timer that died with the
    old connection: the buffered requests were never run, and the worker kept listing them as
    held in its heartbeats, so the watcher took their messages for alive and never re-sent
    them. A task with a ``forget_buffered()`` method (the embedding worker's batches,
    ``watcherd.worker.tasks.EmbedBatches``) is told to drop them.
    """

    def on_close(self) -> None:
        super().on_close()
        for task in list(self.app.tasks.values()):
            forget = getattr(task, "forget_buffered", None)
            if callable(forget):
                forget()

    def ensure_connected(self, conn: Any) -> Any:
        plain = conn.ensure_connection

        def ensure_connection(*args: Any, **kwargs: Any) -> Any:
            for key, value in RECONNECT_INTERVALS.items():
                kwargs.setdefault(key, value)
            return plain(*args, **kwargs)

        conn.ensure_connection = ensure_connection
        return super().ensure_connected(conn)


def make_app(cfg: Config, *, prefetch_multiplier: int = 4) -> Celery:
    app = Celery("watcherd", set_as_current=True)
    names = queue_names(cfg)
    queues = [Queue(q, Exchange(q, "direct"), routing_key=q) for q in names.values()]
    app.conf.update(
        broker_url=broker_url(cfg),
        broker_transport_options=transport_options(cfg),
        broker_use_ssl=tls_options(cfg),
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        broker_connection_timeout=5,
        # The watcher must not block on a dead broker: the outbox re-sends later.
        task_publish_retry=True,
        task_publish_retry_policy={
            "max_retries": 1, "interval_start": 0, "interval_step": 0.5, "interval_max": 1,
        },
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        result_backend=None,
        task_ignore_result=True,
        task_store_errors_even_if_ignored=False,
        # A task is acknowledged after it ran; a worker killed mid-task gives the message back
        # (where the broker supports it; the outbox covers the rest).
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_queues=queues,
        task_default_queue=names["thumbnail"],
        task_routes={
            THUMBNAIL_TASK: {"queue": names["thumbnail"], "routing_key": names["thumbnail"]},
            EMBED_TASK: {"queue": names["embedding"], "routing_key": names["embedding"]},
            PREPARE_TASK: {"queue": names["thumbnail"], "routing_key": names["thumbnail"]},
            METADATA_TASK: {"queue": names["thumbnail"], "routing_key": names["thumbnail"]},
        },
        worker_prefetch_multiplier=prefetch_multiplier,
        worker_consumer=f"{__name__}:Consumer",
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        # Remote control (celery inspect/control) and events, on RabbitMQ and Redis: their
        # exchanges carry the queue prefix, so that instances sharing a broker stay apart.
        worker_enable_remote_control=not cfg.broker.embedded,
        control_exchange=cfg.broker.queue_prefix + "celery",
        event_exchange=cfg.broker.queue_prefix + "celeryev",
        worker_send_task_events=events_enabled(cfg),
        worker_cancel_long_running_tasks_on_connection_loss=False,
        enable_utc=True,
    )
    return app


class QueueDepthError(Exception):
    """The depth of a queue could not be read; the message names the queue and the reason."""


def not_found(exc: BaseException) -> bool:
    """The broker does not know the queue: a passive declare answered 404 NOT_FOUND. RabbitMQ
    (py-amqp's ``NotFound``, ``reply_code`` 404) before anything declared the queue; kombu's
    virtual transports (``ChannelError``, ``reply_code`` "404") where the transport says it has
    no such queue: Redis whenever the queue's list is empty (Redis deletes an empty list). The
    spool never does: its queue folder is created on demand."""
    return str(getattr(exc, "reply_code", "")) == "404"


def queue_depths(app: Celery, cfg: Config) -> dict[str, int]:
    """Messages waiting in each queue (not counting those a worker holds unacknowledged).

    A queue the broker does not know (:func:`not_found`) holds nothing: 0. Any other error
    (a connection error, RabbitMQ's ACCESS_REFUSED or RESOURCE_LOCKED, a Redis key of the wrong
    type, a spool folder that cannot be listed) raises: a depth that cannot be read is unknown,
    not 0, and a caller must not take it for an empty queue (the outbox would re-send)."""
    out: dict[str, int] = {}
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1)
        channel = conn.default_channel
        for queue in queue_names(cfg).values():
            try:
                out[queue] = int(channel.queue_declare(queue=queue, passive=True).message_count)
            except Exception as exc:
                if not not_found(exc):
                    raise QueueDepthError(
                        f"cannot read the depth of queue {queue!r}: {type(exc).__name__}: "
                        f"{exc}") from exc
                out[queue] = 0
                channel = conn.channel()  # RabbitMQ closes a channel after an error
    return out
