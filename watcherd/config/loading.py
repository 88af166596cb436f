"""Loading a config: the TOML file read, each section validated into its dataclass.

Every error names the key and the file (``ConfigError``), so ``watcherd`` can exit 2 with a
message an operator can act on. Relative paths resolve against the config file's folder.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from watcherd.config.reader import SectionReader, resolve_path
from watcherd.config.sections import (
    DEFAULT_EXCLUDE,
    DEFAULT_EXTENSIONS,
    FROM_CLASS,
    BrokerConfig,
    Config,
    ConfigError,
    DatabaseConfig,
    EmbeddingsConfig,
    ImagesConfig,
    LogConfig,
    RawConfig,
    SearchConfig,
    ThumbnailsConfig,
    VideoConfig,
    WatchConfig,
    WebConfig,
    default_of,
)
from watcherd.meta import ENV_VAR

SECTIONS = ("watch", "database", "broker", "images", "thumbnails", "embeddings", "log",
            "search", "web", "video", "raw")


def load(path: str | Path | None, *, check_paths: bool = True, remote: bool = False) -> Config:
    """Load and validate a config file. ``None`` falls back to ``$WATCHERD_CONFIG``.
    ``check_paths=False`` skips checking that watched folders exist (for status, retry).
    ``remote=True`` (an embedding worker): ``[watch]`` and ``[database]`` may be absent; then
    the worker gets everything from the broker, which must be RabbitMQ or Redis."""
    if path is None:
        path = os.environ.get(ENV_VAR) or None
    if path is None:
        raise ConfigError(f"no config file: pass -c/--config FILE or set ${ENV_VAR}")
    file = Path(path).expanduser().resolve()
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("config file not found", file=file) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file: {exc}", file=file) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}", file=file) from None
    return from_dict(raw, file=file, base=file.parent, check_paths=check_paths, remote=remote)


def from_dict(raw: Mapping[str, Any], *, file: Path | None = None, base: Path | None = None,
              check_paths: bool = True, remote: bool = False) -> Config:
    base = base or Path.cwd()
    for name in raw:
        if name not in SECTIONS:
            raise ConfigError("unknown section (see config.example.toml)", key=name, file=file)
    sec: dict[str, SectionReader] = {
        name: SectionReader(name, raw.get(name, {}), file, base) for name in SECTIONS
    }
    alone = remote and "watch" not in raw and "database" not in raw
    cfg = Config(
        file=file,
        watch_section=None if alone else _watch(sec["watch"], check_paths),
        database_section=None if alone else _database(sec["database"]),
        broker=_broker(sec["broker"], alone),
        images=ImagesConfig(max_pixels=sec["images"].integer("max_pixels")),
        thumbnails=_thumbnails(sec["thumbnails"]),
        embeddings=_embeddings(sec["embeddings"]),
        log=LogConfig(
            level=sec["log"].choice("level", ("debug", "info", "warning", "error")),
            format=sec["log"].choice("format", ("auto", "json", "console")),
        ),
        search=_search(sec["search"]),
        web=_web(sec["web"]),
        video=VideoConfig(enabled=sec["video"].get("enabled", bool)),
        raw=RawConfig(prefer_embedded_preview=sec["raw"].get("prefer_embedded_preview", bool)),
    )
    for section in sec.values():
        section.check_unknown()
    return cfg


def _watch(s: SectionReader, check_paths: bool) -> WatchConfig:
    raw_paths = s.get("paths", list, None)
    if not raw_paths:
        raise s.err("paths", "required: a list of folders to watch")
    paths = []
    for item in raw_paths:
        if not isinstance(item, str) or not item:
            raise s.err("paths", f"expected folder names as strings, got {item!r}")
        path = resolve_path(item, s.base)
        if check_paths and not path.is_dir():
            why = "does not exist" if not path.exists() else "is not a folder"
            raise s.err("paths", f"watched path {str(path)!r} {why}")
        paths.append(path)
    exts = s.get("extensions", list, list(DEFAULT_EXTENSIONS))
    if not exts or not all(isinstance(e, str) and e.strip(".") for e in exts):
        raise s.err("extensions", "expected a non-empty list of file extensions")
    exclude = s.get("exclude", list, list(DEFAULT_EXCLUDE))
    if not all(isinstance(e, str) and e and "/" not in e for e in exclude):
        raise s.err("exclude", "expected a list of name patterns (globs without '/'), "
                     f"got {exclude!r}")
    return WatchConfig(
        paths=tuple(paths),
        exclude=tuple(exclude),
        recursive=s.get("recursive", bool),
        settle_seconds=s.number("settle_seconds"),
        rescan_interval_seconds=s.number("rescan_interval_seconds"),
        polling=s.get("polling", bool),
        polling_interval_seconds=s.number("polling_interval_seconds", minimum=0.1),
        extensions=tuple(e.lower().lstrip(".") for e in exts),
    )


def _database(s: SectionReader) -> DatabaseConfig:
    path = s.path("path", None)
    if path is None:
        raise s.err("path", "required: where the SQLite database lives")
    return DatabaseConfig(path=path,
                          busy_timeout_seconds=s.number("busy_timeout_seconds", minimum=0.1),
                          keep_deleted_days=s.number("keep_deleted_days"))


_BROKER_SCHEMES = ("amqp://", "amqps://", "pyamqp://", "redis://", "rediss://")


def _broker(s: SectionReader, remote: bool) -> BrokerConfig:
    url = s.get("url", str).strip()
    url_file = s.path("url_file", None)
    if url and url_file is not None:
        raise s.err("url_file", "set url or url_file, not both")
    if url_file is not None:
        try:
            url = url_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise s.err("url_file", f"cannot read {url_file}: "
                         f"{getattr(exc, 'strerror', None) or exc}") from None
        if not url:
            raise s.err("url_file", f"{url_file} is empty")
    if url and not url.startswith(_BROKER_SCHEMES):
        # never the rest of the value: it may hold a password
        raise s.err("url", "must be empty (embedded broker), amqp://… or redis://…; "
                     f"got {url.split('://')[0][:12]!r}")
    if remote and not url:
        raise s.err("url", "an embedding worker without [database] (a remote worker) needs "
                     "RabbitMQ or Redis: the embedded broker is a folder on the photo server, "
                     "local only")
    ca_file = s.path("ca_file", None)
    if ca_file is not None and not ca_file.is_file():
        raise s.err("ca_file", f"{ca_file} is not a file")
    if ca_file is not None and not url.startswith(("amqps://", "rediss://")):
        raise s.err("ca_file", "only used with amqps:// or rediss:// in url")
    return BrokerConfig(
        url=url,
        ca_file=ca_file,
        spool_dir=s.path("spool_dir", None),
        queue_prefix=s.get("queue_prefix", str),
        resend_after_seconds=s.number("resend_after_seconds", minimum=1.0),
        outbox_interval_seconds=s.number("outbox_interval_seconds", minimum=0.1),
        max_attempts=s.integer("max_attempts"),
        task_events=s.get("task_events", bool),
    )


def _thumbnails(s: SectionReader) -> ThumbnailsConfig:
    sizes = s.get("sizes", list, list(default_of("thumbnails", "sizes")))
    if not sizes or not all(isinstance(x, int) and not isinstance(x, bool) and 8 <= x <= 8192
                            for x in sizes):
        raise s.err("sizes", f"expected a non-empty list of integers 8..8192, got {sizes!r}")
    quality = s.integer("quality")
    if quality > 100:
        raise s.err("quality", f"must be 1..100, got {quality}")
    soft = s.number("soft_time_limit_seconds", minimum=1.0)
    hard = s.number("time_limit_seconds", minimum=1.0)
    if hard <= soft:
        raise s.err("time_limit_seconds", f"must be more than soft_time_limit_seconds ({soft:g}),"
                     f" got {hard:g}")
    return ThumbnailsConfig(
        sizes=tuple(sorted(set(sizes))),
        format=s.choice("format", ("webp", "jpeg")),
        quality=quality,
        concurrency=s.integer("concurrency"),
        soft_time_limit_seconds=soft,
        time_limit_seconds=hard,
        max_memory_per_child_mb=s.integer("max_memory_per_child_mb", minimum=0),
    )


def _embeddings(s: SectionReader) -> EmbeddingsConfig:
    model = s.get("model", str).strip()
    if not model:
        raise s.err("model", "must not be empty")
    device = s.get("device", str).strip().lower()
    if not (device in ("auto", "cpu", "cuda") or device.startswith("cuda:")):
        raise s.err("device", f"must be auto, cpu, cuda or cuda:N; got {device!r}")
    # A tag only means something for a built-in model name; hf-hub: and local-dir: carry their
    # own weights, so the default tag does not apply to them.
    schema = model.startswith(("hf-hub:", "local-dir:"))
    pretrained: str = s.get("pretrained", str, "" if schema else FROM_CLASS).strip()
    # A pretrained value that looks like a file path resolves against the config's folder.
    if pretrained and ("/" in pretrained or pretrained.endswith((".pt", ".bin", ".safetensors"))):
        pretrained = str(resolve_path(pretrained, s.base))
    if model.startswith("local-dir:"):
        model = "local-dir:" + str(resolve_path(model[len("local-dir:"):], s.base))
    return EmbeddingsConfig(
        model=model,
        pretrained=pretrained,
        device=device,
        precision=s.choice("precision", ("auto", "fp32", "bf16", "fp16")),
        batch_size=s.integer("batch_size"),
        max_wait_ms=s.integer("max_wait_ms", minimum=0),
        remote=s.get("remote", bool),
        remote_in_flight=s.integer("remote_in_flight"),
        step_time_limit_seconds=s.number("step_time_limit_seconds", minimum=1.0),
    )



def _search(s: SectionReader) -> SearchConfig:
    threshold = s.number("duplicate_threshold", minimum=-1.0)
    if threshold > 1.0:
        raise s.err("duplicate_threshold", f"a cosine: at most 1, got {threshold:g}")
    return SearchConfig(duplicate_threshold=threshold)


def _web(s: SectionReader) -> WebConfig:
    listen = s.get("listen", str).strip()
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise s.err("listen", f"expected HOST:PORT (e.g. 127.0.0.1:8470), got {listen!r}")
    return WebConfig(listen=listen, token=s.get("token", str))
