"""Configuration: frozen dataclasses loaded from one TOML file.

Every error names the key and the file (``ConfigError``), so ``watcherd`` can exit 2 with a message
an operator can act on. Relative paths resolve against the config file's folder.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from watcherd.meta import ENV_VAR as ENV_VAR

DEFAULT_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "gif", "tif", "tiff", "bmp", "heic", "heif",
                      "avif")
# Folder and file names never taken (glob patterns on one name); watcherd.watch.rules explains.
DEFAULT_EXCLUDE = (".*", "@eaDir", "#recycle", "#snapshot", "@Recycle", "@Recently-Snapshot",
                   ".@__thumb", ".stversions", ".Trash-*", "$RECYCLE.BIN", "lost+found",
                   "*.lrdata")


class ConfigError(Exception):
    """A bad or missing config value. The message names the key and the file."""

    def __init__(self, message: str, *, key: str | None = None, file: Path | None = None):
        where = ""
        if key:
            where += f"[{key}] " if "." not in key else f"{key}: "
        if file:
            where = f"{file}: {where}"
        super().__init__(f"{where}{message}")
        self.key = key
        self.file = file


@dataclass(frozen=True)
class WatchConfig:
    paths: tuple[Path, ...]
    recursive: bool = True
    settle_seconds: float = 2.0
    rescan_interval_seconds: float = 3600.0
    polling: bool = False
    polling_interval_seconds: float = 5.0
    extensions: tuple[str, ...] = DEFAULT_EXTENSIONS
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE


@dataclass(frozen=True)
class DatabaseConfig:
    path: Path
    keep_deleted_days: float = 30.0  # the watcher purges rows deleted longer ago; 0 = never
    busy_timeout_seconds: float = 30.0


@dataclass(frozen=True)
class BrokerConfig:
    url: str = field(default="", repr=False)  # "" = the embedded spool broker; holds a password
    spool_dir: Path | None = None
    queue_prefix: str = ""
    resend_after_seconds: float = 120.0
    outbox_interval_seconds: float = 5.0
    max_attempts: int = 3
    task_events: bool = True  # Celery task events and worker heartbeats (RabbitMQ, Redis)
    # TLS (amqps://, rediss://): the CA bundle that signs the broker's certificate; empty = the
    # system's trust store. The certificate is always verified (host name included).
    ca_file: Path | None = None

    @property
    def embedded(self) -> bool:
        return not self.url

    @property
    def tls(self) -> bool:
        return self.url.startswith(("amqps://", "rediss://"))

    @property
    def shown_url(self) -> str:
        """The URL as it may be printed or logged: the password masked."""
        from watcherd.redact import mask_url

        return mask_url(self.url) if self.url else "embedded"


@dataclass(frozen=True)
class ImagesConfig:
    max_pixels: int = 100_000_000


@dataclass(frozen=True)
class ThumbnailsConfig:
    sizes: tuple[int, ...] = (256, 1024)
    format: str = "webp"
    quality: int = 80
    concurrency: int = 2
    # Celery's task time limits: SoftTimeLimitExceeded in the task at the soft one, the pool
    # child killed at the hard one; either counts an attempt ("timed out after N s").
    soft_time_limit_seconds: float = 240.0
    time_limit_seconds: float = 300.0
    # A pool child whose RSS is above this after a task is replaced (Celery's
    # worker_max_memory_per_child); 0: never.
    max_memory_per_child_mb: int = 1024


@dataclass(frozen=True)
class EmbeddingsConfig:
    model: str = "ViT-B-32"
    pretrained: str = "laion2b_s34b_b79k"
    device: str = "auto"
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (watcherd.media.precision)
    batch_size: int = 32
    max_wait_ms: int = 200
    # The photo server sends each photo's model input (drafted, resized, cropped: a few tens of
    # KB) in the message, and every embedding worker sends its vectors back through the broker
    # (workers on other machines: docs/remote-workers.md).
    remote: bool = False
    remote_in_flight: int = 1000  # photos sent and not yet embedded, at most (remote only)
    # A step of the embedding worker (decoding one photo, encoding one batch) still running
    # after this long: the watcher ends the worker and charges the step's photos an attempt.
    step_time_limit_seconds: float = 300.0


@dataclass(frozen=True)
class SearchConfig:
    # Immich's default (cosine distance <= 0.01); see watcherd.search.duplicates.
    duplicate_threshold: float = 0.99


@dataclass(frozen=True)
class WebConfig:
    listen: str = "127.0.0.1:8470"  # host:port of `watcherd serve`
    token: str = ""  # required when listen is not a loopback address

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])

    @property
    def loopback(self) -> bool:
        import ipaddress

        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"
    format: str = "auto"  # auto | json | console


@dataclass(frozen=True)
class Config:
    file: Path | None
    watch_section: WatchConfig | None
    database_section: DatabaseConfig | None
    broker: BrokerConfig
    images: ImagesConfig = field(default_factory=ImagesConfig)
    thumbnails: ThumbnailsConfig = field(default_factory=ThumbnailsConfig)
    embeddings: EmbeddingsConfig = field(default_factory=EmbeddingsConfig)
    log: LogConfig = field(default_factory=LogConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    web: WebConfig = field(default_factory=WebConfig)

    @property
    def watch(self) -> WatchConfig:
        if self.watch_section is None:
            raise ConfigError("required: this config has no [watch] section (only a remote "
                              "embedding worker runs without it)", key="watch", file=self.file)
        return self.watch_section

    @property
    def database(self) -> DatabaseConfig:
        if self.database_section is None:
            raise ConfigError("required: this config has no [database] section (only a remote "
                              "embedding worker runs without it)", key="database",
                              file=self.file)
        return self.database_section

    @property
    def local(self) -> bool:
        """This host has the database (and the photos): everything but a remote worker."""
        return self.database_section is not None

    @property
    def spool_dir(self) -> Path:
        """Folder of the embedded broker (only used when ``[broker] url`` is empty)."""
        if self.broker.spool_dir is not None:
            return self.broker.spool_dir
        return self.database.path.parent / (self.database.path.name + ".spool")


#: A key's default is its dataclass field's default, written once there.
FROM_CLASS: Any = object()
#: The dataclass of each section, where its defaults are written.
CLASSES: dict[str, type] = {
    "watch": WatchConfig, "database": DatabaseConfig, "broker": BrokerConfig,
    "images": ImagesConfig, "thumbnails": ThumbnailsConfig, "embeddings": EmbeddingsConfig,
    "log": LogConfig, "search": SearchConfig, "web": WebConfig,
}


def default_of(section: str, key: str) -> Any:
    """The default of ``[section] key``, from its dataclass field."""
    for f in fields(CLASSES[section]):
        if f.name == key:
            if f.default is not MISSING:
                return f.default
            if f.default_factory is not MISSING:
                return f.default_factory()
    raise KeyError(f"[{section}] {key} has no default")


class _Section:
    """Reads typed values out of one TOML table and remembers which keys were used. A key
    absent from the table takes its dataclass field's default (``FROM_CLASS``)."""

    def __init__(self, name: str, table: Any, file: Path | None, base: Path) -> None:
        if not isinstance(table, Mapping):
            raise ConfigError("must be a table", key=name, file=file)
        self.name, self.table, self.file, self.base = name, dict(table), file, base
        self.used: set[str] = set()

    def _err(self, key: str, message: str) -> ConfigError:
        return ConfigError(message, key=f"{self.name}.{key}", file=self.file)

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = FROM_CLASS) -> Any:
        self.used.add(key)
        if key not in self.table:
            return default_of(self.name, key) if default is FROM_CLASS else default
        value = self.table[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # bool is an int in Python; never accept it where a number is meant.
        if isinstance(value, bool) and bool not in kinds:
            raise self._err(key, f"expected {_kind_name(kinds)}, got {value!r}")
        if not isinstance(value, kinds):
            raise self._err(key, f"expected {_kind_name(kinds)}, got {value!r}")
        return value

    def number(self, key: str, default: Any = FROM_CLASS, *, minimum: float = 0.0) -> float:
        value = float(self.get(key, (int, float), default))
        if value < minimum:
            raise self._err(key, f"must be >= {minimum:g}, got {value:g}")
        return value

    def integer(self, key: str, default: Any = FROM_CLASS, *, minimum: int = 1) -> int:
        value = int(self.get(key, int, default))
        if value < minimum:
            raise self._err(key, f"must be >= {minimum}, got {value}")
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: Any = FROM_CLASS) -> str:
        value = str(self.get(key, str, default)).lower()
        if value not in choices:
            raise self._err(key, f"must be one of {', '.join(choices)}; got {value!r}")
        return value

    def path(self, key: str, default: str | None) -> Path | None:
        value = self.get(key, str, default)
        if value is None or value == "":
            return None
        return resolve_path(value, self.base)

    def check_unknown(self) -> None:
        for key in self.table:
            if key not in self.used:
                raise self._err(key, "unknown key (see config.example.toml for the valid keys)")


def _kind_name(kinds: tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
             list: "a list"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def resolve_path(value: str, base: Path) -> Path:
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else (base / path).resolve()


SECTIONS = ("watch", "database", "broker", "images", "thumbnails", "embeddings", "log",
            "search", "web")


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
    sec: dict[str, _Section] = {
        name: _Section(name, raw.get(name, {}), file, base) for name in SECTIONS
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
    )
    for section in sec.values():
        section.check_unknown()
    return cfg


def _watch(s: _Section, check_paths: bool) -> WatchConfig:
    raw_paths = s.get("paths", list, None)
    if not raw_paths:
        raise s._err("paths", "required: a list of folders to watch")
    paths = []
    for item in raw_paths:
        if not isinstance(item, str) or not item:
            raise s._err("paths", f"expected folder names as strings, got {item!r}")
        path = resolve_path(item, s.base)
        if check_paths and not path.is_dir():
            why = "does not exist" if not path.exists() else "is not a folder"
            raise s._err("paths", f"watched path {str(path)!r} {why}")
        paths.append(path)
    exts = s.get("extensions", list, list(DEFAULT_EXTENSIONS))
    if not exts or not all(isinstance(e, str) and e.strip(".") for e in exts):
        raise s._err("extensions", "expected a non-empty list of file extensions")
    exclude = s.get("exclude", list, list(DEFAULT_EXCLUDE))
    if not all(isinstance(e, str) and e and "/" not in e for e in exclude):
        raise s._err("exclude", "expected a list of name patterns (globs without '/'), "
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


def _database(s: _Section) -> DatabaseConfig:
    path = s.path("path", None)
    if path is None:
        raise s._err("path", "required: where the SQLite database lives")
    return DatabaseConfig(path=path,
                          busy_timeout_seconds=s.number("busy_timeout_seconds", minimum=0.1),
                          keep_deleted_days=s.number("keep_deleted_days"))


_BROKER_SCHEMES = ("amqp://", "amqps://", "pyamqp://", "redis://", "rediss://")


def _broker(s: _Section, remote: bool) -> BrokerConfig:
    url = s.get("url", str).strip()
    url_file = s.path("url_file", None)
    if url and url_file is not None:
        raise s._err("url_file", "set url or url_file, not both")
    if url_file is not None:
        try:
            url = url_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise s._err("url_file", f"cannot read {url_file}: "
                         f"{getattr(exc, 'strerror', None) or exc}") from None
        if not url:
            raise s._err("url_file", f"{url_file} is empty")
    if url and not url.startswith(_BROKER_SCHEMES):
        # never the rest of the value: it may hold a password
        raise s._err("url", "must be empty (embedded broker), amqp://… or redis://…; "
                     f"got {url.split('://')[0][:12]!r}")
    if remote and not url:
        raise s._err("url", "an embedding worker without [database] (a remote worker) needs "
                     "RabbitMQ or Redis: the embedded broker is a folder on the photo server, "
                     "local only")
    ca_file = s.path("ca_file", None)
    if ca_file is not None and not ca_file.is_file():
        raise s._err("ca_file", f"{ca_file} is not a file")
    if ca_file is not None and not url.startswith(("amqps://", "rediss://")):
        raise s._err("ca_file", "only used with amqps:// or rediss:// in url")
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


def _thumbnails(s: _Section) -> ThumbnailsConfig:
    sizes = s.get("sizes", list, list(default_of("thumbnails", "sizes")))
    if not sizes or not all(isinstance(x, int) and not isinstance(x, bool) and 8 <= x <= 8192
                            for x in sizes):
        raise s._err("sizes", f"expected a non-empty list of integers 8..8192, got {sizes!r}")
    quality = s.integer("quality")
    if quality > 100:
        raise s._err("quality", f"must be 1..100, got {quality}")
    soft = s.number("soft_time_limit_seconds", minimum=1.0)
    hard = s.number("time_limit_seconds", minimum=1.0)
    if hard <= soft:
        raise s._err("time_limit_seconds", f"must be more than soft_time_limit_seconds ({soft:g}),"
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


def _embeddings(s: _Section) -> EmbeddingsConfig:
    model = s.get("model", str).strip()
    if not model:
        raise s._err("model", "must not be empty")
    device = s.get("device", str).strip().lower()
    if not (device in ("auto", "cpu", "cuda") or device.startswith("cuda:")):
        raise s._err("device", f"must be auto, cpu, cuda or cuda:N; got {device!r}")
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



def _search(s: _Section) -> SearchConfig:
    threshold = s.number("duplicate_threshold", minimum=-1.0)
    if threshold > 1.0:
        raise s._err("duplicate_threshold", f"a cosine: at most 1, got {threshold:g}")
    return SearchConfig(duplicate_threshold=threshold)


def _web(s: _Section) -> WebConfig:
    listen = s.get("listen", str).strip()
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise s._err("listen", f"expected HOST:PORT (e.g. 127.0.0.1:8470), got {listen!r}")
    return WebConfig(listen=listen, token=s.get("token", str))
