"""The metadata reader's test photos (tests/data/metadata) are what exiftool makes today: the
corpus is rebuilt with exiftool (tests/metadatafiles.py) and read again, by exiftool and by
``extract``, with the same results as the kept files."""

from __future__ import annotations

from pathlib import Path

from tests import metadatafiles as mf
from tests import requires
from watcherd.metadata.extract import extract

#: exiftool tags that depend on the encoder or the file, not on the metadata written.
VOLATILE = ("FileName", "FileSize", "MediaDataOffset", "MediaDataSize", "ExifByteOrder")


def test_corpus_rebuilt_by_exiftool_reads_the_same(tmp_path: Path) -> None:
    requires.tool("exiftool")
    mf.build(tmp_path)
    kept, fresh = mf.reference(), mf.reference(tmp_path)
    assert sorted(fresh) == sorted(kept)
    for name, entry in kept.items():
        wrote = {k: v for k, v in fresh[name].items() if k not in VOLATILE}
        for tag, value in wrote.items():
            if tag in entry and not tag.startswith(("Image", "Bits", "Strip", "Preview")):
                assert entry[tag] == value, (name, tag)
        if name != mf.SIDECAR:
            assert extract(mf.read(name, tmp_path), mtime=0) == extract(mf.read(name), mtime=0)
