"""watcherd: watch photo folders, make thumbnails and CLIP embeddings, record them in SQLite."""

__version__ = "0.1.0"
