"""What a test needs from the machine (root, a tool, a kernel feature): skip with the reason on a
developer machine that lacks it, fail under ``CI=true``, where it must run."""

from __future__ import annotations

import os
import shutil

import pytest


def in_ci() -> bool:
    """``CI`` is set (to anything but 0/false/no): every test must run, none may skip."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def cannot(reason: str) -> None:
    if in_ci():
        pytest.fail(f"{reason} (CI is set: this test must run)")
    pytest.skip(reason)


def private_mount_namespace() -> None:
    """Root and unshare(1): the test mounts things in a mount namespace of its own."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        cannot("needs root and unshare(1) for a private mount namespace")


def tool(name: str) -> None:
    if not shutil.which(name):
        cannot(f"{name}(1) is not installed")
