"""Broker passwords never leave the process: masked in what is printed and in every log line.

``mask_url`` masks one URL; ``mask_text`` every URL with a password in a piece of text (an
exception message that quotes the URL, a library's log line); ``processor`` is the structlog
processor that ``watcherd.logs`` runs last on every event, ours and the libraries' (kombu,
Celery, redis-py) alike, tracebacks included.
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from typing import Any

MASK = "****"
# scheme://[user]:password@ : the password is everything between the user's ':' and the last
# '@' before the host (a password may itself hold '@' when not percent-encoded).
_CREDENTIALS = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<secret>[^\s/]*)@")


def mask_url(url: str) -> str:
    """``amqp://user:secret@host//`` -> ``amqp://user:****@host//``; URLs without a password
    are returned as they are."""
    return mask_text(url)


def mask_text(text: str) -> str:
    return _CREDENTIALS.sub(lambda m: f"{m['head']}{MASK}@", text)


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value) if "://" in value else value
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_mask(v) for v in value)
    return value


def processor(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> dict[str, Any]:
    return {k: _mask(v) for k, v in event.items()}
