"""Redis: give a dead worker's unacknowledged messages back to their queues, as RabbitMQ does.

kombu's Redis transport keeps every message a consumer has received and not acknowledged in an
"unacked" hash (with a delivery-time index) and puts it back only after the visibility timeout
(an hour here: it must outlast the longest prefetch wait). A worker killed with ``kill -9``
therefore held its messages for an hour. Each watcherd worker process gets its own pair of keys
(``worker_transport_options``), named after the worker, so when the watcher finds a worker dead
it moves exactly that worker's messages back to their queues (kombu's own ``restore_by_tag``):
nothing re-sent, nothing left behind, whatever arrived after the worker's last heartbeat.

A worker that died while no watcher ran is found by ``orphans`` (its keys, with no live worker
of that name) once the watcher has listened long enough to have heard every live worker.
"""

from __future__ import annotations

from typing import Any

from watcherd.broker.channel import connect
from watcherd.config import Config

UNACKED = "watcherd.unacked."  # + worker name (+ ".index")


def is_redis(cfg: Config) -> bool:
    """The one broker here that does not give a dead consumer's messages back by itself:
    RabbitMQ does when the connection drops, the spool when the next consumer polls (the dead
    process's flock is gone)."""
    return cfg.broker.url.startswith(("redis://", "rediss://"))


def unacked_keys(cfg: Config, worker: str) -> tuple[str, str]:
    key = f"{cfg.broker.queue_prefix}{UNACKED}{worker}"
    return key, key + ".index"


def worker_transport_options(cfg: Config, worker: str) -> dict[str, Any]:
    """Extra ``broker_transport_options`` for the worker named ``worker`` (Redis only)."""
    if not is_redis(cfg):
        return {}
    key, index = unacked_keys(cfg, worker)
    return {"unacked_key": key, "unacked_index_key": index}


def give_back(cfg: Config, worker: str) -> int:
    """Move every message ``worker`` received and did not acknowledge back to its queue (at
    its head: it was next); how many."""
    key, index = unacked_keys(cfg, worker)
    with connect(cfg, unacked_key=key, unacked_index_key=index) as conn:
        channel: Any = conn.channel()
        client = channel.client
        tags = list(client.hkeys(key))
        for tag in tags:
            channel.qos.restore_by_tag(tag, leftmost=True)
        client.delete(key, index)
        return len(tags)


def orphans(cfg: Config) -> list[str]:
    """Workers that have messages in their own unacked keys (dead or alive: the caller knows
    which are alive)."""
    prefix = f"{cfg.broker.queue_prefix}{UNACKED}"
    with connect(cfg) as conn:
        client: Any = conn.channel().client
        names = set()
        for raw in client.scan_iter(match=f"{_glob_escape(prefix)}*", count=500):
            name = (raw.decode() if isinstance(raw, bytes) else str(raw))[len(prefix):]
            names.add(name.removesuffix(".index"))
        return sorted(names)


def _glob_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)
