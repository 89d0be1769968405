# -*- coding: utf-8 -*-
# Private to restorable.backup: a CDP replica host's side of replication. Every source dataset
# replicated to this host gets a directory of its own (on btrfs: its points arrive by btrfs
# receive) and one line in root's authorized_keys whose forced command serves that directory and
# nothing else. Lines are ours by their comment; every other line of the file is kept byte for byte.
from __future__ import annotations

import base64
import binascii
import os
import re
import shlex
import stat
import struct
from dataclasses import dataclass, field

from ..common.fileio import atomic_write
from ..common.mounts import MOUNTINFO, filesystem_type
from ..core.layout import PACKAGE_NAME, HostLayout
from ..runtime.standalone import install_standalone

COMMENT_PREFIX = "restorable-replica:"
AUTHORIZED_KEYS = "/root/.ssh/authorized_keys"
DEFAULT_PYTHON = "/usr/bin/python3"
PRIVATE_FILE, PRIVATE_DIR = 0o600, 0o700
# A key type as OpenSSH names them: ssh-ed25519, ecdsa-sha2-nistp256, sk-ssh-ed25519@openssh.com.
_KEY_TYPE = re.compile(r"[a-z0-9][a-z0-9@.-]*")
# Control characters would end or garble a line of authorized_keys.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# A line is ours when its comment, the rest of the line, starts with the prefix.
_OURS = re.compile(r"\s" + re.escape(COMMENT_PREFIX) + r"(.+?)\s*$")


class ReplicaAccessFailed(Exception):
    pass


def key_comment(source: str, dataset: str) -> str:
    """The comment of a replica key: in the key pair on the controller and in authorized_keys."""
    return "%s%s/%s" % (COMMENT_PREFIX, source, dataset)


def parse_public_key(text: str) -> tuple[str, str]:
    """(type, base64) of one authorized_keys key, its comment dropped; ValueError says what is wrong."""
    fields = text.split()
    if len(text.strip().splitlines()) != 1 or len(fields) < 2 or not _KEY_TYPE.fullmatch(fields[0]):
        raise ValueError("public_key must be one key line: its type, its base64 and an optional comment")
    try:
        blob = base64.b64decode(fields[1], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("public_key: the key is not base64") from None
    # The key names its own type first: a key pasted under another type is refused here, not by sshd later.
    if _blob_type(blob) != fields[0]:
        raise ValueError("public_key: the key is not of type %s" % fields[0])
    return fields[0], fields[1]


def _blob_type(blob: bytes) -> str:
    if len(blob) < 4:
        return ""
    (length,) = struct.unpack(">I", blob[:4])
    return blob[4:4 + length].decode("ascii", "replace")


def forced_command(install_dir: str, python: str, path: str) -> str:
    """The only command the key may run: the standalone engine serving the dataset's directory."""
    # The receiver's own module, not the whole agent's command line: a run makes a few calls, each
    # paying the interpreter's start (0.1 s instead of 0.45 s).
    return "cd / && PYTHONPATH=%s exec %s -m %s.runtime.replica_cli --root %s" % (
        shlex.quote(install_dir), shlex.quote(python), PACKAGE_NAME, shlex.quote(path))


@dataclass(frozen=True)
class ReplicaEntry:
    """One source dataset replicated to this host."""

    source: str
    dataset: str
    path: str
    key_type: str
    key_base64: str

    @classmethod
    def from_params(cls, params: dict) -> "ReplicaEntry":
        source, dataset, path = params["source"], params["dataset"], params["path"]
        try:
            _check_names(source, dataset, path)
            key_type, key_base64 = parse_public_key(params["public_key"])
        except ValueError as exc:
            raise ReplicaAccessFailed("%s: %s" % (entry_label(source, dataset, path), exc)) from None
        return cls(source, dataset, path, key_type, key_base64)

    @property
    def name(self) -> str:
        return "%s/%s" % (self.source, self.dataset)

    def describe(self) -> str:
        return entry_label(self.source, self.dataset, self.path)

    def authorized_line(self, install_dir: str, python: str) -> str:
        # sshd reads the option value up to the next unescaped double quote and turns \" into ".
        command = forced_command(install_dir, python, self.path).replace('"', '\\"')
        return 'restrict,command="%s" %s %s %s' % (command, self.key_type, self.key_base64, key_comment(self.source, self.dataset))


def entry_label(source: str, dataset: str, path: str) -> str:
    return "replica of source %s, dataset %s, path %s" % (source, dataset, path)


def _check_names(source: str, dataset: str, path: str) -> None:
    if not source.strip() or _CONTROL.search(source):
        raise ValueError("source must be an inventory name without control characters")
    if not dataset or "/" in dataset or dataset.strip() != dataset or _CONTROL.search(dataset):
        raise ValueError("dataset must be a dataset name without '/', control characters or surrounding blanks")
    if not os.path.isabs(path) or _CONTROL.search(path):
        raise ValueError("path must be absolute and without control characters")


# -- authorized_keys: our lines among the operator's ---------------------------------------------


def split_lines(data: bytes) -> list[bytes]:
    """The lines of a file, each with its newline (the last one may have none)."""
    # Not bytes.splitlines: it also splits at a lone \r, which would change a foreign line.
    return re.findall(rb"[^\n]*\n|[^\n]+\Z", data)


def our_name(line: bytes) -> str | None:
    """The source/dataset of a line of ours, None for any other line."""
    text = line.decode("utf-8", "replace")
    if text.lstrip().startswith("#"):
        return None
    match = _OURS.search(text)
    return match.group(1) if match else None


def our_lines(data: bytes) -> str:
    return "".join(line.decode("utf-8", "replace") for line in split_lines(data) if our_name(line))


def merge(current: bytes, wanted: dict[str, bytes]) -> bytes:
    """The file with our lines as wanted ({name: line with its newline}): each kept in its place
    when it is there already, the new ones appended in name order, unwanted ones of ours dropped,
    every other line left as it is."""
    kept, placed = [], set()
    for line in split_lines(current):
        name = our_name(line)
        if name is None:
            kept.append(line)
        elif name in wanted and name not in placed:
            kept.append(wanted[name])
            placed.add(name)
    added = [wanted[name] for name in sorted(wanted) if name not in placed]
    if added and kept and not kept[-1].endswith(b"\n"):
        kept[-1] += b"\n"
    return b"".join(kept + added)


# -- filesystems ------------------------------------------------------------------------------


def missing_directories(path: str) -> list[str]:
    """The directories to create for path, outermost first."""
    missing = []
    while not os.path.lexists(path):
        missing.insert(0, path)
        path = os.path.dirname(path)
    return missing


def existing_ancestor(path: str) -> str:
    """The path itself when it exists, else its deepest existing parent (where it would be created)."""
    missing = missing_directories(path)
    return os.path.dirname(missing[0]) if missing else path


# -- the converger --------------------------------------------------------------------------------


@dataclass
class AccessChanges:
    actions: list = field(default_factory=list)
    before: str = ""
    after: str = ""

    @property
    def changed(self) -> bool:
        return bool(self.actions)


class ReplicaAccess:
    """Directories and authorized keys of the source datasets replicated to this host.

    The entries are the whole wanted state: lines of ours that no entry wants are removed.
    Directories are never removed (they hold the replicated points)."""

    def __init__(self, check_mode: bool, root: str = "/", authorized_keys: str | None = None, install_dir: str | None = None,
                 python: str = DEFAULT_PYTHON, require_btrfs: bool = True, mountinfo: str = MOUNTINFO) -> None:
        layout = HostLayout(root)
        self.check_mode = check_mode
        self.authorized_keys = authorized_keys or layout.below(AUTHORIZED_KEYS)
        self.install_dir = install_dir or layout.install_dir
        self.python = python
        self.require_btrfs = require_btrfs
        self.mountinfo = mountinfo
        self.changes = AccessChanges()

    def converge(self, params: list[dict]) -> AccessChanges:
        entries = self.validate(params)
        if entries:  # a host that serves no replica needs no engine for it
            self._install_engine()
        for entry in entries:
            self._ensure_directory(entry)
        self._ensure_keys(entries)
        return self.changes

    def validate(self, params: list[dict]) -> list[ReplicaEntry]:
        """Every entry checked before anything changes: one bad entry fails the call as a whole."""
        entries = [ReplicaEntry.from_params(p) for p in params]
        seen: set = set()
        for entry in entries:
            if entry.name in seen:
                raise ReplicaAccessFailed("%s: the source's dataset is listed twice" % entry.describe())
            seen.add(entry.name)
            self._check_directory(entry)
        return entries

    def _check_directory(self, entry: ReplicaEntry) -> None:
        existing = existing_ancestor(entry.path)
        if not os.path.isdir(existing):
            what = "is not a directory" if existing == entry.path else "cannot be created: %s is not a directory" % existing
            raise ReplicaAccessFailed("%s: the path %s" % (entry.describe(), what))
        if not self.require_btrfs:
            return
        try:
            kind = filesystem_type(entry.path, self.mountinfo)
        except (OSError, ValueError, IndexError) as exc:
            raise ReplicaAccessFailed("%s: cannot tell the filesystem of the path: %s" % (entry.describe(), exc)) from None
        if kind != "btrfs":
            raise ReplicaAccessFailed("%s: the path is on %s, not btrfs (points arrive by btrfs receive)" % (
                entry.describe(), kind or "an unknown filesystem"))

    def _act(self, text: str) -> bool:
        """Record an action; True when it is to be carried out (not in check mode)."""
        self.changes.actions.append(("would " if self.check_mode else "") + text)
        return not self.check_mode

    def _install_engine(self) -> None:
        changed = install_standalone(self.install_dir, self.check_mode)
        if changed:
            self._act("update the replica engine in %s (%d files)" % (self.install_dir, len(changed)))

    def _ensure_directory(self, entry: ReplicaEntry) -> None:
        for directory in missing_directories(entry.path):
            if self._act("create directory %s" % directory):
                os.mkdir(directory, PRIVATE_DIR)

    def _ensure_keys(self, entries: list[ReplicaEntry]) -> None:
        path = self.authorized_keys
        current = _read(path)
        wanted = {e.name: (e.authorized_line(self.install_dir, self.python) + "\n").encode("utf-8") for e in entries}
        content = merge(current or b"", wanted)
        if not wanted and content == (current or b""):
            return  # nothing of ours there, nothing wanted: the operator's file is none of our business
        self.changes.before, self.changes.after = our_lines(current or b""), our_lines(content)
        self._ensure_mode(os.path.dirname(path), PRIVATE_DIR)
        if content != current and self._act("write %s (replica keys: %d)" % (path, len(wanted))):
            atomic_write(path, content, mode=PRIVATE_FILE)
        elif content == current:
            self._ensure_mode(path, PRIVATE_FILE)

    def _ensure_mode(self, path: str, mode: int) -> None:
        """An existing path with exactly this mode, a missing one made a directory of it (the file's
        own path always exists here); sshd refuses keys that others may write."""
        try:
            current = stat.S_IMODE(os.stat(path).st_mode)
        except FileNotFoundError:
            if self._act("create directory %s" % path):
                os.makedirs(path, mode)
            return
        if current != mode and self._act("set mode %04o on %s" % (mode, path)):
            os.chmod(path, mode)


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
