"""Asking a running ``watcherd serve`` of the same config: the CLI's fast path for ``search`` and
``duplicates``. Standard library only (no numpy, no torch): a text query then costs one request
to a server that holds the model, not a model load.

* Where: ``[web] listen``; a wildcard address (``0.0.0.0``, ``::``) means this host's loopback.
  ``[web] token``, when set, goes as ``Authorization: Bearer``.
* Whose: every answer of a server carries :data:`LIBRARY_HEADER`, a digest of its database's
  real path and its ``[embeddings]`` model settings (:func:`library_tag`). An answer without
  ours (another config on that port, another program, an older watcherd) is not used.
* What: :func:`search_params` and :func:`duplicates_params` give the query string of a query as
  the CLI has it, or None where the API cannot take it exactly so (an image file that is not an
  indexed photo, ``--pretrained`` on a search, values the API bounds tighter than the command):
  the command answers those in-process.
* Failures: no server (refused, not answering within :data:`CONNECT_TIMEOUT_S`) or an answer
  that is not an :class:`Answer` of ours with status 200, 400 or 404 (401, a 5xx such as a model
  the server could not load) -> None, and the command answers in-process, as without a server:
  the same results or the same error. A 400 or 404 carries the reason in-process would give.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlencode

from watcherd.web.params import MAX_N, MAX_PARTS, MAX_TEXT

if TYPE_CHECKING:
    from watcherd.config import Config

__all__ = ["COMPARED_HEADER", "LIBRARY_HEADER", "NOTE_HEADER", "Answer", "address", "ask",
           "duplicates_params", "library_tag", "search_params"]

LIBRARY_HEADER = "X-Watcherd-Library"
#: /api/duplicates answers with exactly the body `watcherd duplicates --json` prints; what the
#: command also says on stderr comes in headers (values percent-encoded UTF-8).
NOTE_HEADER = "X-Watcherd-Note"
COMPARED_HEADER = "X-Watcherd-Compared"
#: Connecting to a server that is not there must not slow the command down.
CONNECT_TIMEOUT_S = 0.5
#: Waiting for the answer (a server still loading its model at start answers once loaded).
SEARCH_TIMEOUT_S = 120.0
DUPLICATES_TIMEOUT_S = 3600.0
_USABLE = (200, 400, 404)
_MAX_FOLDER = 4096
_MAX_MODEL = 1000

Params = list[tuple[str, str]]


def library_tag(cfg: Config) -> str:
    """What a server and a command must share for the server to answer for the command: the
    database file and the model settings a query's vectors depend on."""
    e = cfg.embeddings
    same = [os.path.realpath(cfg.database.path), e.model, e.pretrained, e.device, e.precision]
    return hashlib.sha256(json.dumps(same).encode()).hexdigest()[:32]


def address(listen: str) -> tuple[str, int]:
    """Where to connect for ``[web] listen``: a wildcard address is this host's loopback."""
    import ipaddress

    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    try:
        ip = ipaddress.ip_address(host) if host else None
    except ValueError:
        return host, int(port)  # a name (localhost)
    if ip is None or ip.is_unspecified:
        return ("::1" if ip is not None and ip.version == 6 else "127.0.0.1"), int(port)
    return host, int(port)


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any  # the JSON
    headers: dict[str, str]  # names in lower case

    @property
    def reason(self) -> str:
        """An error answer's reason (``{"error": reason}``)."""
        return str(self.body.get("error", "")) if isinstance(self.body, dict) else ""

    def header(self, name: str) -> str | None:
        value = self.headers.get(name.lower())
        return None if value is None else unquote(value)


def ask(cfg: Config, path: str, params: Params, *, timeout: float) -> Answer | None:
    """GET ``path`` from the server of ``cfg``; None when no server of this library answers
    (see the module's notes)."""
    import http.client

    host, port = address(cfg.web.listen)
    headers = {"Accept": "application/json", "Connection": "close"}
    if cfg.web.token:
        headers["Authorization"] = f"Bearer {cfg.web.token}"
    conn = http.client.HTTPConnection(host, port, timeout=CONNECT_TIMEOUT_S)
    try:
        conn.connect()
        conn.sock.settimeout(timeout)
        conn.request("GET", path + ("?" + urlencode(params) if params else ""), headers=headers)
        reply = conn.getresponse()
        body = reply.read()
    except (OSError, ValueError, http.client.HTTPException):
        return None  # nobody there, too slow, or not HTTP; a token that is no header value
    finally:
        conn.close()
    got = {k.lower(): v for k, v in reply.getheaders()}
    if got.get(LIBRARY_HEADER.lower()) != library_tag(cfg) or reply.status not in _USABLE:
        return None
    try:
        return Answer(reply.status, json.loads(body), got)
    except ValueError:
        return None


def _photo_ids(db_path: str | Path, paths: Sequence[str]) -> list[int] | None:
    """The live photo at each path (as ``watcherd search --image`` finds it: the path as given,
    made absolute, or its real path); None if one is not an indexed photo (or no database)."""
    if not paths:
        return []
    import sqlite3

    from watcherd.store.readonly import connect_readonly, live_image_at

    try:
        conn = connect_readonly(db_path)
    except (OSError, sqlite3.Error):
        return None
    try:
        ids = []
        for path in paths:
            found = live_image_at(conn, list(dict.fromkeys([os.path.abspath(path),
                                                            os.path.realpath(path)])))
            if found is None:
                return None
            ids.append(found)
        return ids
    except sqlite3.Error:
        return None
    finally:
        conn.close()


def _model(model: str | None) -> str | None:
    """``--model`` as the server takes it ("": one the API would read as absent)."""
    if model is None:
        return None
    from watcherd.media.identity import normalise_model

    return "" if not model or len(model) > _MAX_MODEL else normalise_model(model)


def _pretrained(pretrained: str, with_model: bool) -> str | None:
    """``--pretrained`` as the server takes it: with ``--model``, a checkpoint file absolute
    (its identity is its content), and None for a relative path that the server would look for
    in its own folder; without, the string as given (it is compared as it is)."""
    if not pretrained or len(pretrained) > _MAX_MODEL:
        return None
    if not with_model:
        return pretrained
    if os.path.isfile(pretrained):
        return os.path.abspath(pretrained)
    return None if "/" in pretrained and not os.path.isabs(pretrained) else pretrained


def _score(value: float) -> bool:
    return -1.0 <= value <= 1.0  # False for NaN too


def search_params(db_path: str | Path, *, text: str | None, images: Sequence[str],
                  not_texts: Sequence[str], not_images: Sequence[str], n: int,
                  min_score: float | None, under: str | None, model: str | None,
                  pretrained: str | None, filters: dict[str, str] | None = None
                  ) -> Params | None:
    """/api/search's query string for ``watcherd search``'s query (``under``: an absolute
    folder; ``filters``: the filter options given, checked, by API name), or None where it must
    be answered in-process."""
    filters = filters or {}
    listing = bool(filters) and not (text is not None or images or not_texts or not_images)
    if pretrained is not None or not (text is not None or images or listing):
        return None  # the API takes no pretrained; a query without a positive part: its error
    texts = [*([text] if text is not None else []), *not_texts]
    if any(not t.strip() or len(t) > MAX_TEXT for t in texts):
        return None  # blank texts: the API would drop them, in-process says why
    if len(texts) + len(images) + len(not_images) > MAX_PARTS or not 1 <= n <= MAX_N:
        return None
    if (min_score is not None and not _score(min_score)) or (
            under is not None and len(under) > _MAX_FOLDER):
        return None
    wanted = _model(model)
    if wanted == "":
        return None
    ids = _photo_ids(db_path, [*images, *not_images])
    if ids is None:
        return None
    params: Params = [("q", text)] if text is not None else []
    params += [("image", str(i)) for i in ids[:len(images)]]
    params += [("not", t) for t in not_texts]
    params += [("not_image", str(i)) for i in ids[len(images):]]
    params.append(("n", str(n)))
    if min_score is not None:
        params.append(("min_score", repr(min_score)))
    if under is not None:
        params.append(("under", under))
    if wanted is not None:
        params.append(("model", wanted))
    params += sorted(filters.items())
    return params


def duplicates_params(threshold: float, model: str | None, pretrained: str | None
                      ) -> Params | None:
    """/api/duplicates's query string for ``watcherd duplicates``, or None (in-process)."""
    if not _score(threshold):
        return None
    params: Params = [("threshold", repr(threshold))]
    wanted = _model(model)
    if wanted == "":
        return None
    if wanted is not None:
        params.append(("model", wanted))
    if pretrained is not None:
        given = _pretrained(pretrained, wanted is not None)
        if given is None:
            return None
        params.append(("pretrained", given))
    return params
