"""Pixels only: decoding, colour, thumbnails, the open_clip embedder. Knows nothing of Celery,
click or config.
"""
