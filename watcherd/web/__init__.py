"""``watcherd serve``: the search page, the JSON API, the status view and /metrics; and the
client ``watcherd search``/``duplicates`` use to ask a running server.

Must not import: ``worker``, ``watch``, the CLI or the supervisor (``search``, ``store`` and
``media`` never import from here).
"""
