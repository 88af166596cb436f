"""The configured model's identity as the watcher knows it, shared by whoever needs it.

The watcher learns the identity once the model's weights can be read (``watch/model_state``,
possibly long after start); the outbox (embedding tasks carry it), the ingest (identical content
reuses vectors under it) and the writer of remote results (vectors of another model are dropped)
are each handed this one object when they are built and read ``key`` when they need it, so no
one has to reach into them afterwards. It lives here, in ``dispatch``, because ``dispatch`` may
not import ``watch``.
"""

from __future__ import annotations

from watcherd.dispatch.remote import Identity


class CurrentModel:
    """``key``: (model, pretrained) of the configured model, None while it is not known yet.
    Only its owner (the watcher's ``ModelState``) calls ``learnt``; everyone else reads."""

    def __init__(self, key: Identity | None = None) -> None:
        self._key = None if key is None else (key[0], key[1])

    @property
    def key(self) -> Identity | None:
        return self._key

    def learnt(self, key: Identity) -> None:
        self._key = (key[0], key[1])
