"""Text for case- and accent-insensitive comparison (place names, keywords): what search's
filters and the SQL that resolves them (``store.filters``) both compare. Standard library only:
``watcherd search`` checks its filters before it knows whether a server answers."""

from __future__ import annotations

import functools
import unicodedata

__all__ = ["fold"]


@functools.lru_cache(maxsize=65536)  # stored names repeat: each is folded once
def fold(text: str) -> str:
    """NFKD, no combining marks, casefolded, inner spaces collapsed
    (``"  Île-de-France "`` -> ``"ile-de-france"``, ``"Straße"`` -> ``"strasse"``)."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(bare.casefold().split())
