# -*- coding: utf-8 -*-
# Private to restorable.backup: the replica host's end of CDP replication, run by the forced
# command of a source's key in authorized_keys (`restorable_agent replica-serve --root DIR`).
"""What a source's key can do on its replica, and nothing else.

sshd runs the forced command whatever the client asked; the client's words arrive in
``SSH_ORIGINAL_COMMAND`` and are only ever matched against three verbs:

``list``
    the dataset's points, one name a line, oldest first.
``receive NAME``
    ``btrfs receive`` of one point from stdin (the SSH channel itself: no copy through Python)
    into ``<root>/.incoming/NAME/``; kept only when the received subvolume is NAME, read-only and
    has a received UUID, then renamed into place (see points.py). Leftovers of interrupted
    receives are swept first.
``delete NAME...``
    those points (absent ones are skipped); the newest point is never deleted, it is the next
    send's base.

Names must be point names (``YYYYMMDDTHHMMSSZ``: no slash, no dot), and every path is below the
root given on the forced command's own command line. Anything else is refused with a message and
a non-zero exit, before anything is touched.
"""
from __future__ import annotations

import os
import subprocess
import sys
from typing import IO, Any

from ...common.locks import FileLock, LockBusy
from ...common.process import base_env
from ...snapshot.btrfs import is_read_only, received_uuid
from ...snapshot.provider import SnapshotError
from .points import INCOMING, PointStore, is_point_name, is_subvolume, require_btrfs

EXIT_OK, EXIT_FAILED, EXIT_REFUSED = 0, 1, 2
PREFIX = "restorable replica: "
LOCK = ".lock"
USAGE = "this key may only run: list | receive NAME | delete NAME..."
_C_LOCALE = {"LC_ALL": "C"}


class Refused(Exception):
    """The command is not one the key may run; nothing was touched."""


def parse_command(command: str) -> tuple[str, list[str]]:
    """(verb, point names) of an allowed command; Refused for anything else."""
    words = command.split()
    if not words:
        raise Refused("no command given; " + USAGE)
    verb, names = words[0], words[1:]
    allowed = (verb == "list" and not names) or (verb == "receive" and len(names) == 1) or (verb == "delete" and names)
    if not allowed:
        raise Refused("%r is not allowed; %s" % (command[:200], USAGE))
    for name in names:
        if not is_point_name(name):
            raise Refused("%r is not a point name (YYYYMMDDTHHMMSSZ), nothing done; %s" % (name[:100], USAGE))
    return verb, names


def serve(root: str, command: str, stdin: Any, out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    """Run one command of a source's key against the dataset directory root; the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        verb, names = parse_command(command)
        lines = _run(_open(root), verb, names, stdin)
    except Refused as exc:
        err.write(PREFIX + "refused: %s\n" % exc)
        return EXIT_REFUSED
    except LockBusy:
        err.write(PREFIX + "another receive or deletion in %s is running; try again later\n" % root)
        return EXIT_FAILED
    except (SnapshotError, OSError) as exc:
        err.write(PREFIX + "%s failed: %s\n" % (command.split()[0], exc))
        return EXIT_FAILED
    out.write("".join(line + "\n" for line in lines))
    out.flush()
    return EXIT_OK


def _open(root: str) -> PointStore:
    if not os.path.isabs(root):
        raise SnapshotError("the replica directory %r is not an absolute path" % root)
    require_btrfs(root, "replica directory")
    os.makedirs(root, mode=0o700, exist_ok=True)
    return PointStore(root, nested=True)


def _run(store: PointStore, verb: str, names: list[str], stdin: Any) -> list[str]:
    if verb == "list":
        return store.names()  # a point appears by one rename: no lock needed to read them
    with FileLock(os.path.join(store.directory, LOCK)):
        if verb == "receive":
            return [receive(store, names[0], stdin)]
        return delete(store, names)


def receive(store: PointStore, name: str, stdin: Any) -> str:
    """One point from the stream on stdin, put in place only once it is whole."""
    if os.path.lexists(os.path.join(store.directory, name)):
        raise SnapshotError("point %s is on the replica already" % name)
    store.sweep()
    wrapper = os.path.join(store.directory, INCOMING, name)
    os.makedirs(wrapper, mode=0o700)
    # stdin is the SSH channel: btrfs reads it directly.
    result = subprocess.run(store.btrfs.receive_argv(wrapper), stdin=stdin, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=base_env(_C_LOCALE), check=False)
    try:
        if result.returncode != 0:
            tail = result.stderr.decode("utf-8", "replace").strip().splitlines()[-2:]
            raise SnapshotError("btrfs receive of %s exited %d: %s" % (name, result.returncode, " / ".join(tail)))
        _check_received(store, wrapper, name)
    except SnapshotError:
        store.sweep()
        raise
    os.rename(wrapper, os.path.join(store.directory, name))
    return "received %s" % name


def _check_received(store: PointStore, wrapper: str, name: str) -> None:
    entries = os.listdir(wrapper)
    received = os.path.join(wrapper, name)
    if entries != [name] or not is_subvolume(received):
        raise SnapshotError("the stream did not carry point %s alone (it made: %s)" % (name, ", ".join(sorted(entries))[:200]))
    fields = store.btrfs.show(received)
    if not is_read_only(fields) or not received_uuid(fields):
        raise SnapshotError("point %s arrived incomplete (not read-only or without a received UUID)" % name)


def delete(store: PointStore, names: list[str]) -> list[str]:
    present = store.names()
    if present and present[-1] in names:
        raise Refused("%s is the newest point on the replica (the next send's base): it is never deleted" % present[-1])
    doomed = [name for name in present if name in names]
    for name in doomed:
        if not is_subvolume(store.path(name)):
            raise SnapshotError("%s is not a received point; nothing deleted" % name)
    store.sweep()
    store.delete(doomed)
    return ["deleted %s" % name for name in doomed] + ["absent %s" % name for name in sorted(set(names) - set(doomed))]
