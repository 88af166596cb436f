"""The Celery workers: one process per role (``thumbnails``: prefork; ``embeddings``: solo,
batched), its tasks, and the steps they run (check the row, decode, thumbnails or vectors,
store the outcome).

Must not import: ``watch``, ``web``, the CLI or the supervisor.
"""
