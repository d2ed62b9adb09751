"""Filesystems a test mounts for itself: a small tmpfs, a dead network mount, a full disk.

Mounting needs root.  Without a mount these tests cannot prove anything: they
fail under CI=true (CI runs as root) and are skipped elsewhere.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
from pathlib import Path

import pytest


def _mount_unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI must be able to mount (it runs as root).")
    pytest.skip(reason)


@contextlib.contextmanager
def _mounted(path: Path, what: str, *mount_args: str):
    """Run ``mount *mount_args <path>`` (root only); unmount afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        _mount_unavailable(f"{what} needs root")
    result = subprocess.run(["mount", *mount_args, str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        _mount_unavailable(f"{what} failed: {result.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def tmpfs(path: Path, size: str):
    """Mount a tmpfs of ``size`` at ``path`` (root only)."""
    return _mounted(path, "mounting a tmpfs", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs")


@contextlib.contextmanager
def dead_network_mount(path: Path, fstype: str = "fuse.sshfs"):
    """Mount a FUSE filesystem whose type reads ``fstype`` and whose server is gone.

    This is what a dropped sshfs looks like: /proc/self/mounts lists it and
    every access fails with ENOTCONN.  The connection is aborted at once by
    closing /dev/fuse, so nothing can hang on it.
    """
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        _mount_unavailable("a FUSE mount needs root and /dev/fuse")
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open("/dev/fuse", os.O_RDWR)
    try:
        options = f"fd={fd},rootmode=40000,user_id=0,group_id=0".encode()
        if libc.mount(b"robust", str(path).encode(), fstype.encode(), 0, options) != 0:
            _mount_unavailable(f"mount -t {fstype} failed: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(fd)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill_disk(folder: Path) -> None:
    """Write to ``folder`` until its filesystem has no space left."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for size in (65536, 4096, 512, 1):
            try:
                while os.write(fd, b"\0" * size):
                    pass
            except OSError:
                continue
    finally:
        os.close(fd)


def bind(source: Path, path: Path):
    """Mount ``source`` (a folder) again at ``path`` (root only): the same files under a second name."""
    return _mounted(path, "a bind mount", "--bind", str(source))
