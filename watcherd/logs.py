"""Logging: structlog for our events, stdlib logging (Celery, kombu, watchdog) routed through the
same processors. JSON lines when stdout is not a terminal (systemd/journald, pipes), a readable
console format on a terminal.

structlog is imported only when something logs: ``setup(..., lazy=True)`` (the short commands:
``search``, ``duplicates``) sets the levels now and builds the handlers on the first record or
the first use of a logger from :func:`get`, so a command that logs nothing never pays for it.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from watcherd import redact

_role: str | None = None
_pending: str | None = None  # the format of a setup(lazy=True) not done yet

#: Libraries that are chatty at INFO (Celery's per-task received/succeeded lines duplicate our
#: own events, which carry image_id, path and duration_ms).
QUIET = ("watchdog", "PIL", "urllib3", "httpx", "huggingface_hub", "timm",
         "celery.worker.strategy", "celery.app.trace")


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


def setup(level: str = "info", fmt: str = "auto", role: str | None = None, *,
          lazy: bool = False) -> None:
    """Configure structlog and the stdlib root logger (idempotent). ``lazy``: levels now, the
    rest (and the import of structlog) when the first record is emitted or a logger used."""
    global _role, _pending
    numeric = logging.getLevelName(level.upper())
    if role:
        _role = role
    root = logging.getLogger()
    root.setLevel(numeric)
    for name in QUIET:
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))
    if lazy:
        _pending = fmt
        root.handlers[:] = [_Deferred()]
    else:
        _pending = None
        _configure(fmt)


def _configure(fmt: str) -> None:
    """structlog's processors, and the root logger's one handler (levels are setup's)."""
    import structlog

    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        _add_role,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
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
    logging.getLogger().handlers[:] = [handler]


def _finish() -> None:
    """Do the pending part of a lazy setup, once."""
    global _pending
    if _pending is not None:
        fmt, _pending = _pending, None
        _configure(fmt)


class _Deferred(logging.Handler):
    """The root handler of a lazy setup: the first record builds the real one and goes to it."""

    def emit(self, record: logging.LogRecord) -> None:
        _finish()
        for handler in logging.getLogger().handlers:
            if handler is not self and record.levelno >= handler.level:
                handler.handle(record)


class _Logger:
    """A structlog logger made on first use (so that ``log = logs.get(...)`` at import costs
    nothing and never runs before setup)."""

    def __init__(self, name: str | None) -> None:
        self._name = name
        self._logger: Any = None

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("_"):  # not set yet (copy, pickle): not a logger's method
            raise AttributeError(attr)
        if self._logger is None:
            import structlog

            _finish()
            self._logger = structlog.get_logger(self._name)
        return getattr(self._logger, attr)


def get(name: str | None = None) -> Any:
    return _Logger(name)
