"""Pixels only: decoding, colour, thumbnails, the model's input and the open_clip embedder,
a model's identity.

Must not import: celery, kombu, click, ``watcherd.config``, nor ``store`` or ``search``. It
takes plain values (paths, sizes, limits) and returns plain values.
"""
