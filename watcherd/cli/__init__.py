"""The ``watcherd`` command. The only package that prints or exits.

Exit codes: 0 ok, 1 runtime error, 2 bad usage or bad config (the message names key and file).

Each command imports what it uses when it runs: ``watcherd --help`` loads click and little else,
and ``search``/``duplicates`` ask a running ``watcherd serve`` first (``watcherd.web.client``,
standard library only) before they load numpy, or torch for a text.

The commands live by concern: ``daemons`` (run, watch, worker, serve), ``admin`` (scan, status,
retry, purge, migrate), ``systemd`` (install-systemd), ``search`` (search, duplicates); ``group``
gathers them under ``main``, and ``prelude`` is what each starts with.

The top layer: it may import every package, and none imports it.
"""

from __future__ import annotations

from watcherd.cli.group import main

__all__ = ["main"]
