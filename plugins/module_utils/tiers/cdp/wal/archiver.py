# -*- coding: utf-8 -*-
# Private to restorable.backup: what PostgreSQL's archive_command and restore_command run.
"""The archiver: one WAL file into the dataset's store, or back out of it.

PostgreSQL runs ``archive_command`` once per WAL file and ``restore_command`` once per file it
needs, so this path imports little (see the package docstring). The configuration is a small
JSON file the controller writes, readable by the cluster's OS user; it names secrets only by
path (the S3 environment file, the SFTP identity file)::

    {"format": 1, "dataset": "pgmain",
     "store": {"type": "local", "path": "/srv/backup/repo/wal/db01/pgmain"}}
    {"type": "sftp", "host": "backup01", "port": 22, "user": "wal", "path": "/srv/repo/wal/db01/pgmain",
     "identity_file": "/etc/restorable/wal/pgmain.key", "known_hosts_file": "/etc/restorable/wal/known_hosts"}
    {"type": "s3", "endpoint": "https://s3.eu-central-1.amazonaws.com", "bucket": "backups",
     "prefix": "fleet/db01/wal/pgmain", "region": "eu-central-1", "env_file": "/etc/restorable/wal/pgmain.env"}
"""
from __future__ import annotations

import json

from .factory import open_store
from .store import Store, check_name, parse_store

CONFIG_FORMAT = 1
CONFIG_KEYS = ("format", "dataset", "store")


class ArchiverConfigError(Exception):
    """The archiver configuration cannot be used; the message names the file and the field."""


class ArchiverConfig:
    """A loaded archiver configuration."""

    __slots__ = ("path", "dataset", "store")

    def __init__(self, path: str, dataset: str, store: dict) -> None:
        self.path = path
        self.dataset = dataset
        self.store = store

    def open_store(self) -> Store:
        return open_store(self.store)


def archiver_document(dataset: str, store: dict) -> dict:
    """The configuration file's content for a dataset and its (checked) store settings."""
    return {"format": CONFIG_FORMAT, "dataset": dataset, "store": parse_store(store, "store")}


def load_archiver_config(path: str) -> ArchiverConfig:
    try:
        with open(path, "r", encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as exc:
        raise ArchiverConfigError("archiver configuration %s cannot be read: %s" % (path, exc.strerror)) from None
    except ValueError as exc:
        raise ArchiverConfigError("archiver configuration %s is not valid JSON: %s" % (path, exc)) from None
    try:
        if not isinstance(data, dict):
            raise ValueError("expected an object")
        unknown = sorted(set(data) - set(CONFIG_KEYS))
        if unknown:
            raise ValueError("unknown option %s" % ", ".join(unknown))
        if data.get("format") != CONFIG_FORMAT:
            raise ValueError("format %r is not supported (expected %d)" % (data.get("format"), CONFIG_FORMAT))
        if not isinstance(data.get("dataset"), str) or not data["dataset"]:
            raise ValueError("dataset: expected a name")
        return ArchiverConfig(path, data["dataset"], parse_store(data.get("store"), "store"))
    except ValueError as exc:
        raise ArchiverConfigError("archiver configuration %s: %s" % (path, exc)) from None


def archive_wal(config_path: str, source: str, name: str) -> str:
    """archive_command: store the file at source (%p) as name (%f); its checksum."""
    config = load_archiver_config(config_path)
    return config.open_store().put(check_name(name), source)


def restore_wal(config_path: str, name: str, destination: str) -> str:
    """restore_command: write name (%f) to destination (%p) once verified; its checksum."""
    config = load_archiver_config(config_path)
    return config.open_store().get(check_name(name), destination)
