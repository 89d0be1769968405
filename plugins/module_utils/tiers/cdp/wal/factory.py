# -*- coding: utf-8 -*-
# Private to restorable.backup: the one place a WAL store is built from its settings. Every
# store module is imported here, at the top, so that the standalone agent ships them all.
from __future__ import annotations

from .local import LocalStore
from .s3 import S3Store
from .sftp import SftpStore
from .store import Store


def open_store(settings: dict) -> Store:
    """The store of checked settings (see store.parse_store)."""
    kind = settings["type"]
    if kind == "local":
        return LocalStore(settings["path"])
    if kind == "sftp":
        return SftpStore(settings["host"], settings["user"], settings["path"], settings["identity_file"],
                         settings["known_hosts_file"], settings.get("port") or 22)
    return S3Store(settings["endpoint"], settings["bucket"], settings.get("prefix") or "", settings["region"],
                   settings["env_file"])
