# -*- coding: utf-8 -*-
# Private to restorable.backup: atomic file writes for status, metrics and canary files.
# Readers (facts, drills, node_exporter) must never see a half-written file, so every
# write goes to a temporary file in the same directory and is renamed over the target.
from __future__ import annotations

import json
import os
import tempfile
from typing import Any


def ensure_dir(path: str, mode: int = 0o755) -> None:
    """Create a directory (and parents) if missing; an existing one is left as it is."""
    os.makedirs(path, mode=mode, exist_ok=True)


def atomic_write(path: str, data: bytes | str, mode: int = 0o644) -> None:
    """Write data to path atomically (temp file + fsync + rename)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    directory = os.path.dirname(os.path.abspath(path))
    ensure_dir(directory)
    # The temporary name starts with a dot and ends in .tmp so that globbing readers
    # (node_exporter reads *.prom, facts read *.json) never pick it up.
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


def atomic_write_json(path: str, document: Any, mode: int = 0o644) -> None:
    """Write a JSON document atomically, stable key order so diffs stay readable."""
    atomic_write(path, json.dumps(document, indent=2, sort_keys=True) + "\n", mode=mode)


def read_json(path: str) -> Any:
    """The parsed JSON document at path, or None when the file does not exist.

    A file that exists but is not valid JSON raises ValueError with the path in the message.
    """
    try:
        with open(path, "r", encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ValueError("%s is not valid JSON: %s" % (path, exc)) from None


def _fsync_dir(directory: str) -> None:
    # The rename is only durable once the directory entry is on disk.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
