"""Configuration: frozen dataclasses loaded from one TOML file.

The package's face: everything imports ``watcherd.config`` (``load``, ``Config``,
``ConfigError``, a section's class), never its modules, which are split by concern only:
``sections`` (the dataclasses and their defaults), ``reader`` (typed values out of one TOML
table), ``loading`` (the file read and each section validated).

Must not import anything of watcherd but ``meta``: every layer reads the config, so it reads
none of them (nor celery, kombu or click).
"""

from __future__ import annotations

from watcherd.config.loading import from_dict, load
from watcherd.config.sections import (
    DEFAULT_EXCLUDE,
    DEFAULT_EXTENSIONS,
    BrokerConfig,
    Config,
    ConfigError,
    DatabaseConfig,
    EmbeddingsConfig,
    ImagesConfig,
    LogConfig,
    SearchConfig,
    ThumbnailsConfig,
    WatchConfig,
    WebConfig,
)
from watcherd.meta import ENV_VAR

__all__ = [
    "DEFAULT_EXCLUDE",
    "DEFAULT_EXTENSIONS",
    "ENV_VAR",
    "BrokerConfig",
    "Config",
    "ConfigError",
    "DatabaseConfig",
    "EmbeddingsConfig",
    "ImagesConfig",
    "LogConfig",
    "SearchConfig",
    "ThumbnailsConfig",
    "WatchConfig",
    "WebConfig",
    "from_dict",
    "load",
]
