"""``watcherd serve``: the search page, the JSON API, the status view and /metrics.

Web code may read the config; ``search``, ``store`` and ``media`` never import from here."""
