# -*- coding: utf-8 -*-
# Private to restorable.backup: the SSH key pairs with which CDP sources reach their replicas.
# One ed25519 pair per (source host, dataset), made on the controller and kept in its credential
# store: the source gets the private half, the replica host authorizes the public half for that
# dataset's directory only (restorable.backup.replica_access). Nothing here removes a key: a
# dataset that is gone leaves its pair behind, as deleting credentials is the operator's call.
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field

from ansible_collections.restorable.backup.plugins.module_utils.converge.replica_access import key_comment
from ansible_collections.restorable.backup.plugins.plugin_utils.s3_provisioner import DEFAULT_STORE

KEY_DIR = "replica"
# Kept as they are in file names; every other byte is written %XX (upper-case letters too). Temporary
# files start with a dot, which no key's name does.
_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-")
_MAX_NAME = 128  # below the 255 bytes of a file name, with room for ".pub" and temporary names
_KEYGEN_TIMEOUT = 60


class ReplicaKeyFailed(Exception):
    pass


def safe_name(name: str) -> str:
    """A file name for any inventory or dataset name, distinct for distinct names.

    Upper-case letters are escaped so that case-insensitive file systems (a macOS controller) keep
    "Web" and "web" apart, dots so that no name becomes "." or ".."; a name too long for a file name
    is cut and made unique by its digest, after "%%", which no escaped name contains."""
    escaped = "".join(chr(byte) if chr(byte) in _PLAIN else "%%%02X" % byte for byte in name.encode("utf-8"))
    if len(escaped) <= _MAX_NAME:
        return escaped
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:32]
    return escaped[:_MAX_NAME - len(digest) - 2] + "%%" + digest


def key_path(store: str, source_host: str, dataset: str) -> str:
    """The private key of a source dataset in the store; the public key is beside it, with .pub."""
    return os.path.join(os.path.expanduser(store), KEY_DIR, safe_name(source_host), safe_name(dataset))


def read_replica_key(store: str, source_host: str, dataset: str) -> dict | None:
    """{"private": the private key file's text, "public": its authorized_keys line}, or None when
    the pair is not (wholly) in the store."""
    path = key_path(store, source_host, dataset)
    try:
        with open(path, encoding="utf-8") as handle:
            private = handle.read()
        with open(path + ".pub", encoding="utf-8") as handle:
            public = handle.readline().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return {"private": private, "public": public} if private and public else None


def replicated_datasets(documents: dict) -> dict[str, list[tuple[str, str]]]:
    """{credential store: [(source host, dataset)]} of the enabled btrfs CDP datasets with a replica,
    from the policies ({host: restorable_* variables}) of the hosts."""
    wanted: dict = {}
    for host, policy in sorted(documents.items()):
        store = (policy.get("restorable_controller") or {}).get("credential_store", DEFAULT_STORE)
        for name, dataset in sorted((policy.get("restorable_datasets") or {}).items()):
            if _replicated(dataset):
                wanted.setdefault(store, []).append((host, name))
    return wanted


def _replicated(dataset: object) -> bool:
    return (isinstance(dataset, dict) and dataset.get("tier") == "cdp" and dataset.get("enabled", True)
            and (dataset.get("source") or {}).get("type") == "btrfs" and bool(dataset.get("replica")))


@dataclass
class KeyPairs:
    """What ensuring the pairs of one store did, or would do, by "source/dataset"."""

    present: list = field(default_factory=list)
    created: list = field(default_factory=list)
    repaired: list = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.repaired)


class ReplicaKeys:
    """Ensures the key pairs of (source host, dataset) in one credential store."""

    def __init__(self, store: str = DEFAULT_STORE, check_mode: bool = False) -> None:
        self.store = store
        self.check_mode = check_mode
        self.result = KeyPairs()

    def ensure(self, pairs: list[tuple[str, str]]) -> KeyPairs:
        for source, dataset in pairs:
            self._ensure_pair(source, dataset)
        return self.result

    def _ensure_pair(self, source: str, dataset: str) -> None:
        path = key_path(self.store, source, dataset)
        name = "%s/%s" % (source, dataset)
        if not os.path.exists(path):
            self.result.created.append(name)
            if not self.check_mode:
                self._generate(path, key_comment(source, dataset))
            return
        self.result.present.append(name)
        if not os.path.exists(path + ".pub"):
            self.result.repaired.append(name)
            if not self.check_mode:
                self._rewrite_public(path, key_comment(source, dataset))

    def _generate(self, path: str, comment: str) -> None:
        directory = self._private_directory(path)
        with tempfile.TemporaryDirectory(prefix=".keygen-", dir=directory) as scratch:
            made = os.path.join(scratch, "key")
            _keygen("-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", made)
            os.chmod(made, 0o600)
            os.replace(made + ".pub", path + ".pub")
            os.replace(made, path)  # last: a private key in the store means a whole pair

    @staticmethod
    def _private_directory(path: str) -> str:
        """The key's directory (<store>/replica/<host>), it and the store's replica directory 0700."""
        directory = os.path.dirname(path)
        keys = os.path.dirname(directory)
        os.makedirs(os.path.dirname(keys), 0o700, exist_ok=True)  # the store; its parents as the umask makes them
        for folder in (keys, directory):
            if not os.path.isdir(folder):
                os.mkdir(folder, 0o700)
        return directory

    @staticmethod
    def _rewrite_public(path: str, comment: str) -> None:
        """A lost public half, derived again from the private key (its type and base64, our comment)."""
        key_type, key_base64 = _keygen("-y", "-f", path).split()[:2]
        handle, temporary = tempfile.mkstemp(prefix=".public-", dir=os.path.dirname(path))
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write("%s %s %s\n" % (key_type, key_base64, comment))
        os.chmod(temporary, 0o644)
        os.replace(temporary, path + ".pub")


def _keygen(*args: str) -> str:
    program = shutil.which("ssh-keygen")
    if program is None:
        raise ReplicaKeyFailed("ssh-keygen is not installed on the controller (package openssh-client)")
    try:
        result = subprocess.run([program, *args], capture_output=True, text=True, timeout=_KEYGEN_TIMEOUT, check=False,
                                stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ReplicaKeyFailed("ssh-keygen failed: %s" % exc) from None
    if result.returncode != 0:
        raise ReplicaKeyFailed("ssh-keygen %s failed: %s" % (args[0], result.stderr.strip() or "exit code %d" % result.returncode))
    return result.stdout
