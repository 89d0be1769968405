# -*- coding: utf-8 -*-
# Private to restorable.backup: which filesystem holds a path, from /proc/self/mountinfo (CDP
# points and replicas can only live on btrfs).
from __future__ import annotations

import os
import re

MOUNTINFO = "/proc/self/mountinfo"


def _unescape(text: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), text)


def mounts(mountinfo: str = MOUNTINFO) -> list[tuple[str, str]]:
    """(mount point, filesystem type) of every mount, in mount order."""
    found = []
    with open(mountinfo, encoding="utf-8", errors="surrogateescape") as handle:
        for line in handle:
            head, tail = line.split(" - ", 1)
            found.append((_unescape(head.split()[4]), tail.split()[0]))
    return found


def filesystem_type(path: str, mountinfo: str = MOUNTINFO) -> str:
    """The type of the filesystem that holds path, or would hold it once created (its nearest
    existing parent's)."""
    real = path
    while not os.path.lexists(real) and os.path.dirname(real) != real:
        real = os.path.dirname(real)
    real = os.path.realpath(real)
    best, kind = "", ""
    for point, fs_type in mounts(mountinfo):
        below = real == point or real.startswith(point.rstrip("/") + "/")
        # The deepest mount point wins; of mounts on the same point, the last one (it hides the others).
        if below and len(point) >= len(best):
            best, kind = point, fs_type
    return kind
