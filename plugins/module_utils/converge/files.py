# -*- coding: utf-8 -*-
# Private to restorable.backup: desired files on a host. Every converging module states the
# files it wants (content, mode), this compares them with the disk, writes only what differs
# (never in check mode), and describes the change as a diff in which secrets stay hidden.
from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..common.fileio import atomic_write, ensure_dir

HIDDEN = "(secret content hidden)\n"


@dataclass(frozen=True)
class DesiredFile:
    path: str
    content: str
    mode: int = 0o644
    secret: bool = False
    owner: tuple[int, int] | None = None  # (uid, gid); None: whoever writes it (root)


@dataclass
class FileChanges:
    """What converging a set of files did or would do."""

    written: list = field(default_factory=list)
    removed: list = field(default_factory=list)
    before: dict = field(default_factory=dict)
    after: dict = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.written or self.removed)

    def diff(self) -> list:
        """Ansible diff entries, one per file."""
        return [
            {"before_header": path, "after_header": path, "before": self.before.get(path, ""), "after": self.after.get(path, "")}
            for path in self.written + self.removed
        ]


def _current(path: str) -> tuple:
    try:
        with open(path, "r", encoding="utf-8") as handle:
            content = handle.read()
        info = os.stat(path)
        return content, info.st_mode & 0o7777, (info.st_uid, info.st_gid)
    except (FileNotFoundError, UnicodeDecodeError):
        return None, None, None


class FileConverger:
    def __init__(self, check_mode: bool) -> None:
        self.check_mode = check_mode
        self.changes = FileChanges()

    def ensure(self, wanted: DesiredFile) -> bool:
        content, mode, owner = _current(wanted.path)
        if content == wanted.content and mode == wanted.mode and wanted.owner in (None, owner):
            return False
        self.changes.written.append(wanted.path)
        self.changes.before[wanted.path] = HIDDEN if wanted.secret and content is not None else (content or "")
        self.changes.after[wanted.path] = HIDDEN if wanted.secret else wanted.content
        if not self.check_mode:
            ensure_dir(os.path.dirname(wanted.path), 0o700 if wanted.secret else 0o755)
            atomic_write(wanted.path, wanted.content, mode=wanted.mode)
            if wanted.owner is not None:
                os.chown(wanted.path, *wanted.owner)
        return True

    def remove(self, path: str, secret: bool = False) -> bool:
        content = _current(path)[0]
        if content is None and not os.path.lexists(path):
            return False
        self.changes.removed.append(path)
        self.changes.before[path] = HIDDEN if secret else (content or "")
        if not self.check_mode:
            os.unlink(path)
        return True
