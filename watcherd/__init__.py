"""watcherd: watch photo folders, make thumbnails and CLIP embeddings, record them in SQLite.

``watcherd.celery`` (or ``watcherd.app``) is the Celery app for Celery's own tools
(``celery -A watcherd inspect ping``), built from ``$WATCHERD_CONFIG`` when first asked for
(``watcherd.queue.tools``); importing watcherd builds nothing and needs no config.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
#: The config file when no -c/--config is given (here, not in watcherd.config, so that the
#: command line is built without loading the config module).
ENV_VAR = "WATCHERD_CONFIG"


def __getattr__(name: str) -> Any:
    if name in ("celery", "app"):
        from watcherd.queue.tools import tools_app

        return tools_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
