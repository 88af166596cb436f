"""Reading a photo's metadata from its bytes (headers only: no pixel is decoded).

(Interface stub: the implementation lands with the readers.)"""

from __future__ import annotations

from datetime import tzinfo

from watcherd.metadata.fields import Metadata


def extract(data: bytes, *, mtime: float | None, sidecar: bytes | None = None,
            local_zone: tzinfo | None = None) -> Metadata:
    """Everything ``data`` (a whole image file) and its XMP ``sidecar`` say; never raises for
    anything wrong with the bytes (``Metadata.error`` says what could not be read). ``mtime``
    (the file's, epoch seconds) is the capture time's last resort; instants become local time
    in the GPS position's zone, else ``local_zone`` (default: the server's)."""
    raise NotImplementedError
