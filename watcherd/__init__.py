"""watcherd: watch photo folders, make thumbnails and CLIP embeddings, record them in SQLite.

``watcherd.celery`` (or ``watcherd.app``) is the Celery app for Celery's own tools
(``celery -A watcherd inspect ping``), built from ``$WATCHERD_CONFIG`` when first asked for
(``watcherd.broker.celery_cli``); importing watcherd builds nothing and needs no config.
"""

from __future__ import annotations

from typing import Any

from watcherd.meta import ENV_VAR, __version__

__all__ = ["ENV_VAR", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("celery", "app"):
        from watcherd.broker.celery_cli import tools_app

        return tools_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
