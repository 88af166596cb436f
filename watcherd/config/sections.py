"""The config's values: one frozen dataclass per TOML section, and ``Config`` holding them all.

Each field's default is written once, here (``default_of`` reads it back for the loader).
``ConfigError`` lives here too because ``Config`` raises it when a command asks for a section
this config lacks.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from watcherd.formats import PHOTO_EXTENSIONS, RAW_EXTENSIONS, VIDEO_EXTENSIONS

# Ordinary photos, camera RAWs and videos (watcherd.formats).
DEFAULT_EXTENSIONS = PHOTO_EXTENSIONS + RAW_EXTENSIONS + VIDEO_EXTENSIONS
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
class VideoConfig:
    enabled: bool = True  # false: video files are not taken, whatever [watch] extensions says


@dataclass(frozen=True)
class RawConfig:
    # A RAW's thumbnails and embedding come from the preview JPEG its camera embedded when that
    # is at least as big as the largest thumbnail (no demosaic: fast); false: always demosaic.
    prefer_embedded_preview: bool = True


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
    video: VideoConfig = field(default_factory=VideoConfig)
    raw: RawConfig = field(default_factory=RawConfig)

    @property
    def taken_extensions(self) -> tuple[str, ...]:
        """``[watch] extensions`` less the videos' when ``[video] enabled`` is false."""
        exts = self.watch.extensions
        return exts if self.video.enabled else tuple(e for e in exts
                                                     if e not in VIDEO_EXTENSIONS)

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
    "log": LogConfig, "search": SearchConfig, "web": WebConfig, "video": VideoConfig,
    "raw": RawConfig,
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
