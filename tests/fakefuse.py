"""A real FUSE mount of any type name (``fuse.sshfs``, ...) served by a tiny in-process server:
an empty, read-only root folder. Enough for a process to resolve paths under it and read the
mount table, so tests can put watcherd's folders on a "network filesystem" without a network.

    python -m tests.fakefuse MOUNTPOINT TYPE -- COMMAND...

mounts, runs COMMAND, unmounts, and exits with COMMAND's exit code. Needs root (CAP_SYS_ADMIN)
and /dev/fuse; run it in a private mount namespace (``unshare -m``) so nothing outside sees it.
The protocol is the kernel's (include/uapi/linux/fuse.h), answered at version 7.22.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import struct
import subprocess
import sys
import threading

IN_HEADER = struct.Struct("<IIQQIIIHH")  # len, opcode, unique, nodeid, uid, gid, pid, ext, pad
OUT_HEADER = struct.Struct("<IiQ")  # len, error, unique
LOOKUP, FORGET, GETATTR, INIT, INTERRUPT, BATCH_FORGET = 1, 2, 3, 26, 36, 42
NO_REPLY = {FORGET, INTERRUPT, BATCH_FORGET}


def _reply(fd: int, unique: int, error: int = 0, body: bytes = b"") -> None:
    os.write(fd, OUT_HEADER.pack(OUT_HEADER.size + len(body), -error, unique) + body)


def _root_attr() -> bytes:
    # fuse_attr_out: attr_valid, attr_valid_nsec, dummy; fuse_attr: ino, size, blocks, atime,
    # mtime, ctime, atimensec, mtimensec, ctimensec, mode, nlink, uid, gid, rdev, blksize, flags
    return struct.pack("<QII", 1, 0, 0) + struct.pack(
        "<QQQQQQIIIIIIIIII", 1, 0, 0, 0, 0, 0, 0, 0, 0, stat.S_IFDIR | 0o755, 2, 0, 0, 0, 4096, 0)


def serve(fd: int) -> None:
    """Answer requests until the mount goes away."""
    while True:
        try:
            request = os.read(fd, 1 << 20)
        except OSError as exc:
            if exc.errno == errno.ENOENT:  # an interrupted request
                continue
            return  # ENODEV: unmounted
        _len, opcode, unique, nodeid, *_ = IN_HEADER.unpack_from(request)
        if opcode in NO_REPLY:
            continue
        if opcode == INIT:
            # fuse_init_out up to 7.22: major, minor, max_readahead, flags, max_background,
            # congestion_threshold, max_write
            _reply(fd, unique, body=struct.pack("<IIIIHHI", 7, 22, 0, 0, 1, 1, 4096))
        elif opcode == GETATTR and nodeid == 1:
            _reply(fd, unique, body=_root_attr())
        elif opcode == LOOKUP:
            _reply(fd, unique, errno.ENOENT)
        else:
            _reply(fd, unique, errno.ENOSYS)


def main() -> int:
    mountpoint, fstype, sep, *command = sys.argv[1:]
    assert sep == "--" and command, __doc__
    fd = os.open("/dev/fuse", os.O_RDWR)
    libc = ctypes.CDLL(None, use_errno=True)
    options = f"fd={fd},rootmode=40000,user_id=0,group_id=0".encode()
    if libc.mount(b"fakefuse", mountpoint.encode(), fstype.encode(), 0, options) != 0:
        print(f"fakefuse: mount: {os.strerror(ctypes.get_errno())}", file=sys.stderr)
        return 99
    threading.Thread(target=serve, args=(fd,), daemon=True).start()
    try:
        return subprocess.run(command, check=False).returncode
    finally:
        libc.umount2(mountpoint.encode(), 2)  # MNT_DETACH


if __name__ == "__main__":
    sys.exit(main())
