# -*- coding: utf-8 -*-
# Private to restorable.backup: a PostgreSQL host's side of the CDP tier's WAL archiving. The
# archive_command runs as the cluster's OS user, which cannot enter the root-only secrets
# directory: its configuration and the store's credentials are files of their own, owned by that
# user. The settings go in with ALTER SYSTEM and a reload; a restart is reported, never done.
from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from typing import Any

from ..common.fileio import ensure_dir
from ..runtime.standalone import install_standalone
from ..consistency.postgresql import socket_dir_of
from ..tiers.cdp.wal.archiver import archiver_document
from ..tiers.cdp.wal.server import PgServer, ServerError
from ..tiers.cdp.wal.settings import archive_command, configure_archiving
from .files import DesiredFile, FileConverger


class WalArchivingFailed(Exception):
    """A cluster could not be set up; the message names the dataset."""


@dataclass
class ClusterResult:
    dataset: str
    data_directory: str
    changed: bool = False
    restart_needed: bool = False
    settings: dict[str, Any] = field(default_factory=dict)


class WalArchiving:
    """Converges the archiving of each cluster the plan lists (see plugin_utils/tiers/cdp.py)."""

    def __init__(self, install_dir: str, python: str, staging_dir: str, check_mode: bool) -> None:
        self.install_dir = install_dir
        self.python = python
        self.staging_dir = staging_dir
        self.check_mode = check_mode
        self.files = FileConverger(check_mode)
        self.actions: list[str] = []

    def converge(self, clusters: list[dict[str, Any]]) -> list[ClusterResult]:
        # Every cluster is checked before anything changes.
        owners = {c["dataset"]: self._owner(c) for c in clusters}
        documents = {c["dataset"]: self._document(c) for c in clusters}
        if clusters and install_standalone(self.install_dir, self.check_mode):
            self.actions.append("installed the agent in %s" % self.install_dir)
        return [self._cluster(cluster, owners[cluster["dataset"]], documents[cluster["dataset"]]) for cluster in clusters]

    @staticmethod
    def _document(cluster: dict[str, Any]) -> dict[str, Any]:
        try:
            return archiver_document(cluster["dataset"], cluster["store"])
        except ValueError as exc:
            raise WalArchivingFailed("dataset %s: WAL %s" % (cluster["dataset"], exc)) from None

    @staticmethod
    def _owner(cluster: dict[str, Any]) -> tuple[int, int]:
        try:
            info = os.stat(cluster["data_directory"])
        except OSError as exc:
            raise WalArchivingFailed("dataset %s: data directory %s: %s" % (
                cluster["dataset"], cluster["data_directory"], exc.strerror)) from None
        if not os.path.isfile(os.path.join(cluster["data_directory"], "PG_VERSION")):
            raise WalArchivingFailed("dataset %s: %s is not a PostgreSQL data directory (no PG_VERSION)" % (
                cluster["dataset"], cluster["data_directory"]))
        return info.st_uid, info.st_gid

    def _cluster(self, cluster: dict[str, Any], owner: tuple[int, int], document: dict[str, Any]) -> ClusterResult:
        result = ClusterResult(cluster["dataset"], cluster["data_directory"])
        before = len(self.files.changes.written)
        self._place_files(cluster, owner, document)
        if cluster["store"]["type"] == "local":
            self._local_store(cluster["store"]["path"], owner)
        command = archive_command(cluster["archiver_config"], self.install_dir, self.python)
        server = PgServer(socket_dir_of(cluster["data_directory"]), cluster["port"], None, None, self.staging_dir)
        try:
            settings = configure_archiving(server, command, int(cluster["archive_timeout"]), self.check_mode)
        except ServerError as exc:
            raise WalArchivingFailed("dataset %s: %s" % (cluster["dataset"], exc)) from None
        finally:
            server.profile.cleanup()
        if settings["changed"]:
            self.actions.append("dataset %s: set %s" % (cluster["dataset"], ", ".join(settings["changes"])))
        result.settings = settings
        result.restart_needed = settings["restart_needed"]
        result.changed = settings["changed"] or len(self.files.changes.written) > before
        return result

    def _place_files(self, cluster: dict[str, Any], owner: tuple[int, int], config: dict[str, Any]) -> None:
        if not self.check_mode:
            # The cluster's user must reach its files: the directory is traversable, the files are not readable by others.
            ensure_dir(os.path.dirname(cluster["archiver_config"]), 0o755)
        wanted = [DesiredFile(cluster["archiver_config"], json.dumps(config, indent=2, sort_keys=True) + "\n", 0o644)]
        wanted += [DesiredFile(f["path"], f["content"].rstrip("\n") + "\n", 0o600, secret=True, owner=owner)
                   for f in cluster.get("files") or []]
        for item in wanted:
            if self.files.ensure(item):
                self.actions.append("placed %s" % item.path)

    def _local_store(self, path: str, owner: tuple[int, int]) -> None:
        """A local store's directory belongs to the cluster's user; its parents (a restic repository,
        0700) let that user pass through to it, and show nothing more."""
        missing = []
        probe = path
        while not os.path.isdir(probe):
            missing.append(probe)
            probe = os.path.dirname(probe)
        for parent in _ancestors(probe if probe != path else os.path.dirname(path)):
            mode = stat.S_IMODE(os.stat(parent).st_mode)
            if not mode & stat.S_IXOTH:
                self.actions.append("let others pass through %s (mode %o to %o)" % (parent, mode, mode | stat.S_IXOTH))
                if not self.check_mode:
                    os.chmod(parent, mode | stat.S_IXOTH)
        for directory in reversed(missing):
            self.actions.append("created %s" % directory)
            if not self.check_mode:
                os.mkdir(directory, 0o700 if directory == path else 0o711)
        if self.check_mode and missing:
            return
        info = os.stat(path)
        if (info.st_uid, info.st_gid) != owner:
            self.actions.append("gave %s to the cluster's user" % path)
            if not self.check_mode:
                os.chown(path, *owner)


def _ancestors(path: str) -> list[str]:
    """path and every directory above it."""
    found = [path]
    while os.path.dirname(found[-1]) != found[-1]:
        found.append(os.path.dirname(found[-1]))
    return found
