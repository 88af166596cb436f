"""SQLite: the schema and its migrations, and every SQL statement watcherd runs, one module
per concern (``schema``, ``migrations``, ``discovery``, ``sending``, ``backlog``, ``outcomes``,
``workers``, ``settings``, ``admin``, ``browse``, ``vectors``, ``readonly``). Functions take a
``sqlite3.Connection`` and plain values.

Must not import: celery, kombu, click, ``watcherd.config``, ``media``, ``search``.
"""
