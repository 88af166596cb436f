"""The configured model's identity (``[embeddings] model``/``pretrained`` through
:func:`watcherd.media.identity.identify`), with the database's ``fingerprints`` table as the
hash cache, and the adoption of vectors stored under the pre-schema-6 key of the same weights.

Every process that needs the configured model's key goes through here: the watcher (tasks carry
the key; the statuses describe it), the embedding worker (it records its vectors under it and
refuses tasks for another), ``watcherd search``/``duplicates`` and the web server (the default
model to search).
"""

from __future__ import annotations

import sqlite3

from watcherd import logs
from watcherd.config import Config
from watcherd.media.identity import (
    FINGERPRINT_PREFIX,
    LOCAL_DIR,
    ModelIdentity,
    identify,
    legacy_key,
)
from watcherd.store import settings
from watcherd.store.vectors import ModelKey, has_vectors

__all__ = ["ModelIdentity", "adopt", "configured", "configured_key", "key_of", "loadable",
           "worker_key"]

log = logs.get("watcherd.models")


def key_of(identity: ModelIdentity) -> ModelKey:
    return ModelKey(identity.model, identity.pretrained)


def configured(cfg: Config, conn: sqlite3.Connection | None = None) -> ModelIdentity:
    """The configured model's identity. Raises OSError when its weights cannot be read (yet)."""
    e = cfg.embeddings
    return identify(e.model, e.pretrained,
                    settings.Fingerprints(conn) if conn is not None else None)


def configured_key(cfg: Config, conn: sqlite3.Connection) -> ModelKey:
    """The key to search by default: the identity, or (weights unreadable here) the one the
    watcher last recorded for this source, or the configured strings themselves."""
    e = cfg.embeddings
    legacy = ModelKey(*legacy_key(e.model, e.pretrained))
    try:
        key = key_of(configured(cfg, conn))
    except OSError:
        pass
    else:  # vectors not relabelled yet (the watcher has not started since the upgrade)
        if not has_vectors(conn, key) and has_vectors(conn, legacy):
            return legacy
        return key
    source = e.model[len("local-dir:"):] if e.model.startswith("local-dir:") else e.pretrained
    for (model, pretrained), src in settings.model_sources(conn).items():
        if src and src == source:
            return ModelKey(model, pretrained)
    return legacy


def worker_key(cfg: Config, conn: sqlite3.Connection) -> ModelKey:
    """The key an embedding worker of the configured model reports (its heartbeats, so the
    ``workers`` rows): the identity, whatever the stored vectors are still labelled; where the
    weights cannot be read here, :func:`configured_key`'s answer."""
    try:
        return key_of(configured(cfg, conn))
    except OSError:
        return configured_key(cfg, conn)


def adopt(conn: sqlite3.Connection, cfg: Config) -> ModelIdentity:
    """Compute the configured identity (hashing its weights once; cached), record where it
    was loaded from, and relabel vectors stored under the old path-based key of the same
    source. Raises OSError when the weights cannot be read (yet)."""
    e = cfg.embeddings
    identity = configured(cfg, conn)
    settings.record_model(conn, identity.model, identity.pretrained, identity.source)
    old = legacy_key(e.model, e.pretrained)
    moved = settings.adopt_vectors(conn, old, (identity.model, identity.pretrained))
    if moved:
        log.info("vectors relabelled with the model's identity", old_model=old[0],
                 old_pretrained=old[1], model=identity.model, pretrained=identity.pretrained,
                 vectors=moved)
    return identity


def loadable(cfg: Config, conn: sqlite3.Connection, key: ModelKey) -> tuple[str, str]:
    """What to hand open_clip to compute vectors of ``key`` (a text query): the configured
    source when ``key`` is the configured model, else where the ``models`` table says this
    identity was last loaded from, else the key itself (a built-in tag, hf-hub:, or a
    pre-schema-6 key that is its own source)."""
    e = cfg.embeddings
    if key == configured_key(cfg, conn):
        return e.model, e.pretrained
    source = settings.model_sources(conn).get((key.model, key.pretrained), "")
    if source and key.model == LOCAL_DIR:
        return "local-dir:" + source, ""
    if source and key.pretrained.startswith(FINGERPRINT_PREFIX):
        return key.model, source
    return key.model, key.pretrained
