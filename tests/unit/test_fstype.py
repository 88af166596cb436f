"""The embedded broker refuses a spool folder on a network filesystem (issue 7, item 12)."""

from __future__ import annotations

from pathlib import Path

import pytest

from watcherd.broker.fstype import (
    NetworkFilesystemError,
    check_local,
    filesystem_of,
    is_network,
    parse_mountinfo,
)

# /proc/self/mountinfo as a NAS box shows it: optional fields (shared:/master:), an escaped space
# in a mount point, an automount point with the NFS mount stacked on it, FUSE subtypes.
MOUNTINFO = r"""22 1 8:2 / / rw,relatime shared:1 - ext4 /dev/sda2 rw,errors=remount-ro
23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
25 22 0:23 / /tmp rw,nosuid,nodev shared:14 - tmpfs tmpfs rw,size=8126444k
30 22 0:44 / /srv/photos rw,relatime shared:20 - nfs4 nas.lan:/volume1/photos rw,vers=4.2
31 22 0:45 / /mnt/my\040share rw,relatime shared:21 - cifs //nas/share rw,vers=3.1.1
32 22 0:46 / /mnt/ssh rw,nosuid,nodev,relatime shared:22 - fuse.sshfs me@box:/data rw
33 22 8:17 / /mnt/usb rw,relatime shared:23 - fuseblk /dev/sdb1 rw,user_id=0
34 22 0:47 / /mnt/auto rw,relatime shared:24 - autofs systemd-1 rw,fd=52,pgrp=1
35 34 0:48 / /mnt/auto rw,relatime shared:25 master:3 - nfs server:/export rw,vers=3
36 22 0:49 / /var/lib/guest rw,relatime - 9p hostshare rw,trans=virtio
37 22 8:3 / /var/lib rw,relatime shared:26 - xfs /dev/sda3 rw
"""


@pytest.mark.parametrize(("folder", "fstype"), [
    ("/var/lib/watcherd/watcherd.db.spool", "xfs"),
    ("/var/lib/guest/w.db.spool", "9p"),
    ("/var/lib/guestbook/w.db.spool", "xfs"),  # a prefix of the name is not the mount
    ("/srv/photos/watcherd.db.spool", "nfs4"),
    ("/srv/photos", "nfs4"),
    ("/srv/photos-local/w.db.spool", "ext4"),
    ("/mnt/my share/spool", "cifs"),
    ("/mnt/ssh/spool", "fuse.sshfs"),
    ("/mnt/usb/spool", "fuseblk"),
    ("/mnt/auto/spool", "nfs"),  # the mount stacked on the automount point is the one in use
    ("/tmp/spool", "tmpfs"),
    ("/home/me/spool", "ext4"),
])
def test_the_mount_holding_a_folder(folder: str, fstype: str) -> None:
    mount = filesystem_of(Path(folder), MOUNTINFO)
    assert mount is not None and mount.fstype == fstype


def test_mountinfo_lines() -> None:
    mounts = parse_mountinfo(MOUNTINFO + "not a mountinfo line\n\n")
    assert len(mounts) == 11
    assert (mounts[4].mount_point, mounts[4].fstype, mounts[4].source) == (
        "/mnt/my share", "cifs", "//nas/share")


def test_network_filesystems_are_refused_naming_folder_and_type() -> None:
    refused = {"/srv/photos/w.db.spool": "nfs4 nas.lan:/volume1/photos",
               "/mnt/my share/spool": "cifs //nas/share", "/mnt/ssh/spool": "fuse.sshfs",
               "/mnt/auto/spool": "nfs server:/export", "/var/lib/guest/spool": "9p"}
    for folder, what in refused.items():
        with pytest.raises(NetworkFilesystemError) as info:
            check_local(Path(folder), MOUNTINFO)
        assert folder in str(info.value) and what.split()[0] in str(info.value), info.value
        assert what.split()[-1] in str(info.value)
    for folder in ("/var/lib/watcherd", "/mnt/usb/spool", "/tmp/spool", "/"):
        assert check_local(Path(folder), MOUNTINFO) is not None


def test_filesystem_types() -> None:
    for name in ("nfs", "nfs4", "cifs", "smb3", "9p", "virtiofs", "ceph", "glusterfs",
                 "fuse", "fuse.sshfs", "fuse.rclone", "fuse.s3fs", "fuse.glusterfs"):
        assert is_network(name), name
    for name in ("ext4", "xfs", "btrfs", "zfs", "tmpfs", "overlay", "fuseblk", "f2fs",
                 "fuse.fuse-overlayfs", "fusectl", "autofs"):
        assert not is_network(name), name


def test_a_symlink_into_a_network_mount_is_followed(tmp_path: Path) -> None:
    (tmp_path / "spool").symlink_to("/srv/photos/watcherd.spool")
    with pytest.raises(NetworkFilesystemError, match="nfs4"):
        check_local(tmp_path / "spool" / "queues", MOUNTINFO)


def test_this_machines_temporary_folder_is_local(tmp_path: Path) -> None:
    mount = check_local(tmp_path / "not-yet" / "w.db.spool")  # the real /proc/self/mountinfo
    assert mount is not None and not is_network(mount.fstype)
    assert str(tmp_path).startswith(mount.mount_point)


# ------------------------------------------------ real mounts, in a private mount namespace


