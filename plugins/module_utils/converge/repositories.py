# -*- coding: utf-8 -*-
# Private to restorable.backup: restic repositories a host writes to, and the credentials it
# keeps for them. A password is tried against the repository before it replaces the one on
# disk, so a wrong password fails with nothing changed.
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field

from ..storage.factory import open_repository
from ..storage.repository import Repository, RepositoryError
from .files import DesiredFile, FileConverger

ABSENT, PRESENT, CHECKED = "absent", "present", "checked"


@dataclass
class RepositorySpec:
    name: str
    url: str
    password: str
    password_file: str
    type: str = "local"
    options: list = field(default_factory=list)
    env: dict = field(default_factory=dict)
    env_file: str | None = None
    ssh_private_key: str | None = None
    known_hosts: str | None = None

    @classmethod
    def from_params(cls, params: dict) -> "RepositorySpec":
        return cls(**{k: v for k, v in params.items() if k in cls.__dataclass_fields__})

    @property
    def secrets_dir(self) -> str:
        return os.path.dirname(self.password_file)

    def credential_files(self) -> list:
        files = [DesiredFile(self.password_file, self.password + "\n", 0o600, secret=True)]
        if self.env_file:
            text = "".join("%s=%s\n" % item for item in sorted(self.env.items()))
            files.append(DesiredFile(self.env_file, text, 0o600, secret=True))
        if self.ssh_private_key:
            key = self.ssh_private_key.rstrip("\n") + "\n"
            files.append(DesiredFile(os.path.join(self.secrets_dir, self.name + ".key"), key, 0o600, secret=True))
        if self.known_hosts:
            files.append(DesiredFile(os.path.join(self.secrets_dir, self.name + ".known_hosts"), self.known_hosts.rstrip("\n") + "\n", 0o644))
        return files


class RepositoryFailed(Exception):
    """A repository could not be brought to the wanted state; the message says why."""


class RepositoryManager:
    def __init__(self, check_mode: bool, read_data_subset: str | None = None, purge: bool = False) -> None:
        self.files = FileConverger(check_mode)
        self.check_mode = check_mode
        self.read_data_subset = read_data_subset
        self.purge = purge
        self.actions: list = []
        self.checks: dict = {}

    def converge(self, spec: RepositorySpec, state: str) -> None:
        if state == ABSENT:
            self._absent(spec)
            return
        # Key and known_hosts first: the sftp command of the repository refers to them.
        for wanted in spec.credential_files()[1 + bool(spec.env_file):]:
            self.files.ensure(wanted)
        created = self._initialise(spec)
        if created:
            self.actions.append("%s: %s repository at %s" % (spec.name, "would initialise" if self.check_mode else "initialised", spec.url))
        for wanted in spec.credential_files()[: 1 + bool(spec.env_file)]:
            if self.files.ensure(wanted):
                self.actions.append("%s: placed credentials %s" % (spec.name, wanted.path))
        if state == CHECKED and not self.check_mode:
            self._check(spec)

    def _initialise(self, spec: RepositorySpec) -> bool:
        """Open the repository with the wanted password; create it if there is none."""
        scratch = tempfile.mkdtemp(prefix="restorable-")
        try:
            password_file = os.path.join(scratch, "password")
            with open(os.open(password_file, os.O_WRONLY | os.O_CREAT, 0o600), "w", encoding="utf-8") as handle:
                handle.write(spec.password + "\n")
            repository = open_repository(spec.url, password_file, env=spec.env, options=spec.options,
                                         cache_dir=os.path.join(scratch, "cache"))
            if self.check_mode:
                return self._would_initialise(repository)
            return repository.init_if_needed()
        except RepositoryError as exc:
            if exc.kind == RepositoryError.WRONG_PASSWORD:
                # restic's message would name the scratch file, gone by the time anyone reads it.
                raise RepositoryFailed("%s: wrong password for the restic repository at %s: the password given for this "
                                       "target opens no key of it; %s was left unchanged"
                                       % (spec.name, spec.url, spec.password_file)) from None
            raise RepositoryFailed("%s: %s" % (spec.name, exc)) from None
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    @staticmethod
    def _would_initialise(repository: Repository) -> bool:
        """Check mode: only a wrong password is certain to fail; storage that a real run would
        set up first (a bucket, per-host credentials) may not be reachable yet."""
        try:
            return not repository.exists()
        except RepositoryError as exc:
            if exc.kind == RepositoryError.WRONG_PASSWORD:
                raise
            return True

    def _check(self, spec: RepositorySpec) -> None:
        repository = open_repository(spec.url, spec.password_file, env=spec.env, options=spec.options)
        try:
            result = repository.check(self.read_data_subset)
        except RepositoryError as exc:
            raise RepositoryFailed("%s: %s" % (spec.name, exc)) from None
        self.checks[spec.name] = {"ok": result.ok, "read_data_subset": result.read_data_subset, "message": result.message}
        if not result.ok:
            raise RepositoryFailed("%s: restic check of %s found errors: %s" % (spec.name, spec.url, result.message))

    def _absent(self, spec: RepositorySpec) -> None:
        """Forget the credentials. Backup data goes only when purge is asked for and the
        repository is a local path: a host never deletes remote copies."""
        for wanted in spec.credential_files():
            if self.files.remove(wanted.path, wanted.secret):
                self.actions.append("%s: removed %s" % (spec.name, wanted.path))
        if not self.purge:
            return
        if spec.type != "local":
            raise RepositoryFailed("%s: purge removes local repositories only; delete %s with the storage's own tools" % (spec.name, spec.url))
        if os.path.isfile(os.path.join(spec.url, "config")) and os.path.isdir(os.path.join(spec.url, "data")):
            self.actions.append("%s: %s local repository %s" % (spec.name, "would delete" if self.check_mode else "deleted", spec.url))
            self.files.changes.removed.append(spec.url)
            if not self.check_mode:
                shutil.rmtree(spec.url)
        elif os.path.exists(spec.url):
            raise RepositoryFailed("%s: %s is not a restic repository; not deleting it" % (spec.name, spec.url))
