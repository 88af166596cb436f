"""Search the library: text or photos -> photos by cosine similarity; near-duplicates.

A library first (``engine.Searcher`` over a ``scan.ScanSource`` for one-shot use, or over an
``index.SearchIndex`` held by a long-lived process); ``watcherd search`` and ``watcherd
duplicates`` are thin commands over it.

Must not import: celery, kombu, click, ``watcherd.config`` (it may use ``store`` and ``media``).
"""
