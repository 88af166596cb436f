"""Which filesystem a folder is on, and whether the spool broker may use it.

The embedded broker relies on what a local filesystem gives processes of one machine: an atomic
``rename`` that exactly one claimant wins, ``flock`` locks the kernel drops when a process dies,
and a directory listing that shows every rename at once. Network and cluster filesystems (NFS,
SMB/CIFS, SSHFS and other FUSE filesystems, 9p, Ceph, ...) weaken one or more of these (NFS
emulates ``flock`` with byte-range locks on the server and caches attributes and listings; an
unlinked open file becomes a ``.nfsXXXX`` file in the queue folder; FUSE filesystems do whatever
their daemon does), so the spool refuses them.

The type comes from ``/proc/self/mountinfo`` (``proc(5)``): the mount whose mount point is the
longest prefix of the folder's real path, the last one listed when several are stacked.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")

#: Filesystem types (the mountinfo name) whose locking or rename semantics the spool cannot
#: rely on: network, cluster and host-sharing filesystems.
NETWORK_TYPES = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "9p", "virtiofs", "afs", "coda", "davfs",
    "ceph", "glusterfs", "lustre", "gpfs", "beegfs", "orangefs", "pvfs2", "ocfs2", "gfs2",
    "sshfs",
})
#: FUSE filesystems (``fuse`` and ``fuse.<subtype>``) are refused unless they are one of these
#: local ones (fuse-overlayfs: rootless containers). ``fuseblk`` (ntfs-3g, exfat-fuse on a local
#: disk) is a type of its own and accepted.
LOCAL_FUSE_TYPES = frozenset({"fuse.fuse-overlayfs"})


@dataclass(frozen=True)
class Mount:
    mount_point: str
    fstype: str  # e.g. "ext4", "nfs4", "fuse.sshfs"
    source: str  # e.g. "/dev/sda1", "nas:/photos"


class NetworkFilesystemError(Exception):
    """The folder is on a filesystem the spool broker cannot use. Not an ``OSError``, so kombu
    does not take it for a transient connection error and retry forever."""

    def __init__(self, folder: Path, mount: Mount) -> None:
        super().__init__(
            f"{folder} is on a network filesystem ({mount.fstype}, {mount.source} mounted at "
            f"{mount.mount_point}): the spool broker needs a local one (atomic rename, and "
            "flock between the processes of one machine)")
        self.folder = folder
        self.mount = mount


def is_network(fstype: str) -> bool:
    base, _, subtype = fstype.partition(".")  # FUSE: "fuse.sshfs", "fuseblk"
    if base in NETWORK_TYPES or subtype in NETWORK_TYPES:
        return True
    return base == "fuse" and fstype not in LOCAL_FUSE_TYPES


_ESCAPE = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as octal escapes."""
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[Mount]:
    """The mounts in ``/proc/<pid>/mountinfo`` format, in their order. A line is
    ``ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER_OPTIONS``."""
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or not tail:
            continue
        mounts.append(Mount(_unescape(fields[4]), tail[0],
                            _unescape(tail[1]) if len(tail) > 1 else ""))
    return mounts


def mount_of(path: str, mounts: list[Mount]) -> Mount | None:
    """The mount that holds the absolute, resolved ``path``: the longest matching mount point;
    of mounts stacked on one mount point, the last (the visible one)."""
    best: Mount | None = None
    for m in mounts:
        point = m.mount_point.rstrip("/") or "/"
        inside = path == point or path.startswith(point if point == "/" else point + "/")
        if inside and (best is None or len(point) >= len(best.mount_point.rstrip("/") or "/")):
            best = m
    return best


def filesystem_of(folder: Path, mountinfo: str | None = None) -> Mount | None:
    """The mount holding ``folder`` (which need not exist yet: its nearest existing ancestor
    decides), or None if the mount table cannot be read. ``mountinfo`` is the table's text,
    read from ``/proc/self/mountinfo`` when not given."""
    real = os.path.realpath(folder)  # symlinks resolved; also triggers an automount on the way
    if mountinfo is None:
        try:
            mountinfo = MOUNTINFO.read_text()
        except OSError:
            return None
    return mount_of(real, parse_mountinfo(mountinfo))


def check_local(folder: Path, mountinfo: str | None = None) -> Mount | None:
    """Raise :class:`NetworkFilesystemError` if ``folder`` is on a network filesystem; return
    its mount (None when the mount table cannot be read: nothing to go on, so allowed)."""
    mount = filesystem_of(folder, mountinfo)
    if mount is not None and is_network(mount.fstype):
        raise NetworkFilesystemError(folder, mount)
    return mount
