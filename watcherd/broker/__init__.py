"""The broker: the Celery app and its queues (names, depths), connections and publishers of
watcherd's own queues (``channel``), the embedded spool transport and its filesystem check, the
app ``celery -A watcherd`` loads, and Redis's unacknowledged messages (``redis_unacked``).

Never writes SQLite. Must not import: ``store``, ``dispatch``, ``fleet``, ``worker``, ``watch``,
``web``, the CLI.
"""
