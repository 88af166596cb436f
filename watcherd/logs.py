"""Logging: structlog for our events, stdlib logging (Celery, kombu, watchdog) routed through the
same processors. JSON lines when stdout is not a terminal (systemd/journald, pipes), a readable
console format on a terminal."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog

from watcherd import redact

_role: str | None = None


def _add_role(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    """Every line says which process wrote it: the role (module-global, so every thread has it)
    and the pid at log time (so prefork children report their own)."""
    if _role is not None:
        event.setdefault("role", _role)
    event.setdefault("pid", os.getpid())
    return event


def use_json(fmt: str) -> bool:
    if fmt == "json":
        return True
    if fmt == "console":
        return False
    return not sys.stderr.isatty()


def setup(level: str = "info", fmt: str = "auto", role: str | None = None) -> None:
    """Configure structlog and the stdlib root logger (idempotent)."""
    global _role
    numeric = logging.getLevelName(level.upper())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        _add_role,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if role:
        _role = role
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json(fmt)
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact.processor,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # Libraries that are chatty at INFO (Celery's per-task received/succeeded lines duplicate
    # our own events, which carry image_id, path and duration_ms).
    for name in ("watchdog", "PIL", "urllib3", "httpx", "huggingface_hub", "timm",
                 "celery.worker.strategy", "celery.app.trace"):
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))


def get(name: str | None = None) -> Any:
    return structlog.get_logger(name)
