"""The worker's Celery consumer: watcherd's reconnecting consumer, and after a lost connection
celery-batches' buffer dropped like Celery's own reserved requests.

When its broker connection drops, Celery forgets the messages it had reserved ("they can't be
acked anyway, as a delivery tag is specific to the current channel"): the broker gives them back
(RabbitMQ, the spool) or the watcher's outbox sends them again (a Redis restart lost them).
celery-batches keeps its buffer instead, with a flush timer that died with the old connection:
the buffered requests were never run, and the worker kept listing them as held in its
heartbeats, so the watcher took their messages for alive and never re-sent them.
"""

from __future__ import annotations

from watcherd.broker.app import Consumer as ReconnectingConsumer


class Consumer(ReconnectingConsumer):
    def on_close(self) -> None:
        super().on_close()
        from watcherd.worker.tasks import EmbedBatches

        for task in list(self.app.tasks.values()):
            if isinstance(task, EmbedBatches):
                task.forget_buffered()
