"""The schema's migrations, append-only (never edit one that has shipped: add a new one), and
``migrate``, which applies those a database lacks, each in one IMMEDIATE transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

MIGRATIONS: tuple[str, ...] = (
    # 1: the initial public schema, plus the outbox columns (internal: *_queued_at, *_attempts).
    """
    CREATE TABLE images (
        id INTEGER PRIMARY KEY,
        path TEXT UNIQUE NOT NULL,
        sha256 TEXT,
        size INTEGER,
        mtime REAL,
        width INTEGER,
        height INTEGER,
        format TEXT,
        discovered_at TEXT NOT NULL,
        thumbnail_status TEXT NOT NULL DEFAULT 'pending'
            CHECK (thumbnail_status IN ('pending', 'done', 'failed')),
        thumbnail_error TEXT,
        embedding_status TEXT NOT NULL DEFAULT 'pending'
            CHECK (embedding_status IN ('pending', 'done', 'failed')),
        embedding_error TEXT,
        deleted_at TEXT,
        updated_at TEXT,
        thumbnail_queued_at TEXT,
        embedding_queued_at TEXT,
        thumbnail_attempts INTEGER NOT NULL DEFAULT 0,
        embedding_attempts INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX images_sha256 ON images(sha256);
    CREATE INDEX images_thumbnail_pending ON images(id) WHERE thumbnail_status = 'pending';
    CREATE INDEX images_embedding_pending ON images(id) WHERE embedding_status = 'pending';
    CREATE TABLE thumbnails (
        image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        size INTEGER NOT NULL,
        width INTEGER,
        height INTEGER,
        format TEXT,
        data BLOB,
        created_at TEXT,
        PRIMARY KEY (image_id, size)
    );
    CREATE TABLE embeddings (
        image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        model TEXT NOT NULL,
        pretrained TEXT NOT NULL,
        dim INTEGER,
        vector BLOB,
        created_at TEXT,
        PRIMARY KEY (image_id, model, pretrained)
    );
    CREATE TABLE workers (
        role TEXT PRIMARY KEY,
        pid INTEGER,
        hostname TEXT,
        state TEXT,
        message TEXT,
        updated_at TEXT
    );
    """,
    # 2: a streaming scan looks rows up folder by folder (FOLDER_SQL, the folder of a path with
    # its trailing slash); the outbox finds never-sent rows without walking the whole backlog;
    # each watched root's last scan, for `watcherd status`.
    """
    CREATE INDEX images_folder ON images(rtrim(path, replace(path, '/', '')));
    CREATE INDEX images_thumbnail_unsent ON images(id)
        WHERE thumbnail_status = 'pending' AND thumbnail_queued_at IS NULL;
    CREATE INDEX images_embedding_unsent ON images(id)
        WHERE embedding_status = 'pending' AND embedding_queued_at IS NULL;
    CREATE TABLE scans (
        root TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        folders INTEGER NOT NULL DEFAULT 0,
        files INTEGER NOT NULL DEFAULT 0,
        to_take INTEGER NOT NULL DEFAULT 0,
        taken INTEGER NOT NULL DEFAULT 0,
        gone INTEGER NOT NULL DEFAULT 0,
        message TEXT,
        started_at TEXT,
        updated_at TEXT,
        finished_at TEXT
    );
    """,
    # 3: a long-lived search index (watcherd.search.index) follows rows that changed (moved,
    # deleted, re-embedded) and vectors stored since it last looked, without scanning a table.
    """
    CREATE INDEX images_updated_at ON images(updated_at);
    CREATE INDEX embeddings_created_at ON embeddings(created_at);
    """,
    # 4: one row per worker *process* (name "thumbnails@host:pid"), written by the watcher from the
    # workers' heartbeats (the fleet queue): workers themselves never write it. Replaces the
    # table of one row per role that each worker wrote at its start and stop.
    """
    DROP TABLE IF EXISTS workers;
    CREATE TABLE workers (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        host TEXT,
        pid INTEGER,
        state TEXT,
        message TEXT,
        model TEXT,
        pretrained TEXT,
        device TEXT,
        started_at TEXT,
        last_seen TEXT,
        processed INTEGER,
        rss_kb INTEGER
    );
    """,
    # 5: the number format the model computed each vector in ([embeddings] precision: fp32,
    # bf16, fp16); a precision change is not a model change, so the key stays the same.
    """
    ALTER TABLE embeddings ADD COLUMN precision TEXT;
    """,
    # 6: a model's identity is what it computes (watcherd.media.identity): ``models`` records
    # where each identity was loaded from; ``fingerprints`` caches weight files' sha256 by
    # (path, size, mtime_ns); ``settings`` holds what the statuses describe (the model and the
    # thumbnail settings they were last brought in line with). A backlog row (re-embed after a
    # model change, thumbnails after a settings change) is pending with ``*_queued_at =
    # 'backlog'`` (after any time as text, so never taken for a row sent long ago): the outbox
    # feeds them from these indexes in slices while the queue is short.
    """
    CREATE TABLE models (
        model TEXT NOT NULL,
        pretrained TEXT NOT NULL,
        source TEXT,
        first_seen TEXT,
        last_seen TEXT,
        PRIMARY KEY (model, pretrained)
    );
    CREATE TABLE fingerprints (
        path TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        sha256 TEXT NOT NULL
    );
    CREATE TABLE settings (
        name TEXT PRIMARY KEY,
        value TEXT,
        updated_at TEXT
    );
    CREATE INDEX images_thumbnail_backlog ON images(id)
        WHERE thumbnail_status = 'pending' AND thumbnail_queued_at = 'backlog';
    CREATE INDEX images_embedding_backlog ON images(id)
        WHERE embedding_status = 'pending' AND embedding_queued_at = 'backlog';
    CREATE INDEX embeddings_model ON embeddings(model, pretrained);
    """,
    # 7: ids are never reused, kept by SQLite itself: ``images`` is rebuilt with AUTOINCREMENT
    # (a plain INTEGER PRIMARY KEY hands a deleted highest id out again, so purge had to keep
    # the newest deleted row and its BLOBs for ever). The same columns in the same order, the
    # same indexes; sqlite_sequence starts at the highest id so far. Run with foreign keys off
    # (``migrate``), so dropping the old table cascades nothing.
    """
    CREATE TABLE images_v7 (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        path TEXT UNIQUE NOT NULL,
        sha256 TEXT,
        size INTEGER,
        mtime REAL,
        width INTEGER,
        height INTEGER,
        format TEXT,
        discovered_at TEXT NOT NULL,
        thumbnail_status TEXT NOT NULL DEFAULT 'pending'
            CHECK (thumbnail_status IN ('pending', 'done', 'failed')),
        thumbnail_error TEXT,
        embedding_status TEXT NOT NULL DEFAULT 'pending'
            CHECK (embedding_status IN ('pending', 'done', 'failed')),
        embedding_error TEXT,
        deleted_at TEXT,
        updated_at TEXT,
        thumbnail_queued_at TEXT,
        embedding_queued_at TEXT,
        thumbnail_attempts INTEGER NOT NULL DEFAULT 0,
        embedding_attempts INTEGER NOT NULL DEFAULT 0
    );
    INSERT INTO images_v7 SELECT * FROM images;
    DROP TABLE images;
    ALTER TABLE images_v7 RENAME TO images;
    CREATE INDEX images_sha256 ON images(sha256);
    CREATE INDEX images_thumbnail_pending ON images(id) WHERE thumbnail_status = 'pending';
    CREATE INDEX images_embedding_pending ON images(id) WHERE embedding_status = 'pending';
    CREATE INDEX images_folder ON images(rtrim(path, replace(path, '/', '')));
    CREATE INDEX images_thumbnail_unsent ON images(id)
        WHERE thumbnail_status = 'pending' AND thumbnail_queued_at IS NULL;
    CREATE INDEX images_embedding_unsent ON images(id)
        WHERE embedding_status = 'pending' AND embedding_queued_at IS NULL;
    CREATE INDEX images_updated_at ON images(updated_at);
    CREATE INDEX images_thumbnail_backlog ON images(id)
        WHERE thumbnail_status = 'pending' AND thumbnail_queued_at = 'backlog';
    CREATE INDEX images_embedding_backlog ON images(id)
        WHERE embedding_status = 'pending' AND embedding_queued_at = 'backlog';
    """,
    # 8: what each photo says about itself (public: capture time, place, camera, description),
    # written by the thumbnail step in the same transaction as the thumbnails;
    # metadata_keywords (watcherd's own) indexes metadata.keywords for the keyword filter, and
    # metadata_camera the camera filter. metadata_due
    # (watcherd's own) lists the photos whose metadata must be read again without their
    # pixels: every photo processed before this version (the backfill, filled here), and
    # photos whose XMP sidecar appeared, changed or went away; the outbox feeds it to the
    # thumbnail workers behind new photos.
    """
    CREATE TABLE metadata (
        image_id INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
        taken_at TEXT,
        taken_offset TEXT,
        taken_source TEXT,
        latitude REAL,
        longitude REAL,
        altitude REAL,
        country TEXT,
        country_code TEXT,
        region TEXT,
        place TEXT,
        camera_make TEXT,
        camera_model TEXT,
        lens TEXT,
        focal_length REAL,
        f_number REAL,
        exposure_time REAL,
        iso INTEGER,
        rating INTEGER,
        title TEXT,
        description TEXT,
        keywords TEXT,
        video_codec TEXT,
        fps REAL,
        error TEXT,
        updated_at TEXT
    );
    CREATE INDEX metadata_taken_at ON metadata(taken_at);
    CREATE INDEX metadata_place ON metadata(country_code, region, place);
    CREATE INDEX metadata_latitude ON metadata(latitude) WHERE latitude IS NOT NULL;
    CREATE INDEX metadata_camera ON metadata(camera_make, camera_model);
    CREATE TABLE metadata_keywords (
        keyword TEXT NOT NULL,
        image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        PRIMARY KEY (keyword, image_id)
    ) WITHOUT ROWID;
    CREATE INDEX metadata_keywords_image ON metadata_keywords(image_id);
    CREATE TABLE metadata_due (
        image_id INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
        sha256 TEXT NOT NULL,
        reason TEXT NOT NULL,
        queued_at TEXT,
        attempts INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX metadata_due_unsent ON metadata_due(image_id) WHERE queued_at IS NULL;
    INSERT INTO metadata_due (image_id, sha256, reason)
        SELECT id, sha256, 'backfill' FROM images
        WHERE deleted_at IS NULL AND sha256 IS NOT NULL AND thumbnail_status != 'pending';
    """,
    # 9: files that are not ordinary photos (public): media_type ('photo' | 'video'), a video's
    # duration, how a RAW's or a video's pixels were obtained (decode), and shots: shot_id is the
    # id of the face of the row's shot (a RAW beside a JPEG of the same stem, a Live Photo's
    # clip beside its still). images_stem (watcherd's own) finds the files of one stem in one
    # folder, any case: the path up to its last '.', lower-cased (ASCII), live rows only;
    # shot_identifiers (watcherd's own) keeps the Apple content identifier a Live Photo's still
    # and clip carry, so that two files of one name from different moments are not one shot.
    """
    ALTER TABLE images ADD COLUMN media_type TEXT NOT NULL DEFAULT 'photo'
        CHECK (media_type IN ('photo', 'video'));
    ALTER TABLE images ADD COLUMN duration REAL;
    ALTER TABLE images ADD COLUMN decode TEXT;
    ALTER TABLE images ADD COLUMN shot_id INTEGER;
    CREATE INDEX images_stem ON images(lower(rtrim(path, replace(path, '.', ''))))
        WHERE deleted_at IS NULL;
    CREATE INDEX images_shot ON images(shot_id) WHERE shot_id IS NOT NULL;
    CREATE TABLE shot_identifiers (
        image_id INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
        identifier TEXT NOT NULL
    );
    -- Files a hand-set [watch] extensions list took before: videos are videos, and RAWs and
    -- videos are done again by their own decoders (Pillow read the small preview of a DNG, or
    -- failed on the rest).
    UPDATE images SET media_type = 'video' WHERE
        lower(path) LIKE '%.mp4' OR lower(path) LIKE '%.mov' OR lower(path) LIKE '%.m4v' OR
        lower(path) LIKE '%.mkv' OR lower(path) LIKE '%.webm' OR lower(path) LIKE '%.avi' OR
        lower(path) LIKE '%.3gp' OR lower(path) LIKE '%.mts' OR lower(path) LIKE '%.m2ts';
    UPDATE images SET thumbnail_status = 'pending', thumbnail_error = NULL,
        thumbnail_queued_at = NULL, thumbnail_attempts = 0, embedding_status = 'pending',
        embedding_error = NULL, embedding_queued_at = NULL, embedding_attempts = 0
        WHERE deleted_at IS NULL AND sha256 IS NOT NULL AND (
        lower(path) LIKE '%.dng' OR lower(path) LIKE '%.cr2' OR lower(path) LIKE '%.cr3' OR
        lower(path) LIKE '%.nef' OR lower(path) LIKE '%.nrw' OR lower(path) LIKE '%.arw' OR
        lower(path) LIKE '%.srf' OR lower(path) LIKE '%.sr2' OR lower(path) LIKE '%.orf' OR
        lower(path) LIKE '%.rw2' OR lower(path) LIKE '%.raf' OR lower(path) LIKE '%.pef' OR
        lower(path) LIKE '%.srw' OR lower(path) LIKE '%.3fr' OR lower(path) LIKE '%.iiq' OR
        lower(path) LIKE '%.erf' OR lower(path) LIKE '%.kdc' OR lower(path) LIKE '%.mrw' OR
        lower(path) LIKE '%.mp4' OR lower(path) LIKE '%.mov' OR lower(path) LIKE '%.m4v' OR
        lower(path) LIKE '%.mkv' OR lower(path) LIKE '%.webm' OR lower(path) LIKE '%.avi' OR
        lower(path) LIKE '%.3gp' OR lower(path) LIKE '%.mts' OR lower(path) LIKE '%.m2ts');
    -- Their shots, as store/shots.py makes them (no content identifiers known yet).
    UPDATE images SET shot_id = (
        SELECT min(f.id) FROM images f WHERE f.deleted_at IS NULL
        AND lower(rtrim(f.path, replace(f.path, '.', '')))
            = lower(rtrim(images.path, replace(images.path, '.', '')))
        AND f.media_type = 'photo' AND f.thumbnail_status != 'failed'
        AND (lower(f.path) LIKE '%.jpg' OR lower(f.path) LIKE '%.jpeg'
             OR lower(f.path) LIKE '%.heic' OR lower(f.path) LIKE '%.heif'))
        WHERE deleted_at IS NULL AND (lower(path) LIKE '%.mov' OR
        lower(path) LIKE '%.dng' OR lower(path) LIKE '%.cr2' OR lower(path) LIKE '%.cr3' OR
        lower(path) LIKE '%.nef' OR lower(path) LIKE '%.nrw' OR lower(path) LIKE '%.arw' OR
        lower(path) LIKE '%.srf' OR lower(path) LIKE '%.sr2' OR lower(path) LIKE '%.orf' OR
        lower(path) LIKE '%.rw2' OR lower(path) LIKE '%.raf' OR lower(path) LIKE '%.pef' OR
        lower(path) LIKE '%.srw' OR lower(path) LIKE '%.3fr' OR lower(path) LIKE '%.iiq' OR
        lower(path) LIKE '%.erf' OR lower(path) LIKE '%.kdc' OR lower(path) LIKE '%.mrw');
    UPDATE images SET shot_id = id WHERE deleted_at IS NULL AND id IN (
        SELECT shot_id FROM images WHERE shot_id IS NOT NULL AND deleted_at IS NULL);
    """,
)


SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> tuple[int, int]:
    """Apply pending migrations in one IMMEDIATE transaction each. Returns (before, after)."""
    before = schema_version(conn)
    if before > SCHEMA_VERSION:
        raise RuntimeError(
            f"database schema version {before} is newer than this watcherd ({SCHEMA_VERSION})"
        )
    if before == SCHEMA_VERSION:
        return before, before
    # SQLite's recipe for rebuilding a table (migration 7): foreign keys off outside the
    # transaction (the pragma is a no-op inside one), checked before each commit, back on after.
    conn.execute("PRAGMA foreign_keys = OFF")
    try:
        for version in range(before + 1, SCHEMA_VERSION + 1):
            conn.execute("BEGIN IMMEDIATE")
            try:
                # Another process may have migrated while we waited for the lock.
                if schema_version(conn) >= version:
                    conn.execute("COMMIT")
                    continue
                for statement in _statements(MIGRATIONS[version - 1]):
                    conn.execute(statement)
                broken = conn.execute("PRAGMA foreign_key_check").fetchone()
                if broken is not None:
                    raise RuntimeError(f"migration {version} broke a foreign key: {tuple(broken)}")
                conn.execute(f"PRAGMA user_version = {version}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
    finally:
        conn.execute("PRAGMA foreign_keys = ON")
    return before, schema_version(conn)


def _statements(script: str) -> Iterable[str]:
    return (s.strip() for s in script.split(";") if s.strip())
