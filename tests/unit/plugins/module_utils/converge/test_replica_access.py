# -*- coding: utf-8 -*-
"""A replica host's directories and authorized keys: key lines, quoting as sshd and sh read it,
foreign lines kept byte for byte, btrfs required, nothing changed when an entry is bad.

The engine's installation is recorded, not done, except in the test of it: under ansible-test's
collection loader the standalone sources come as bytes, which install_standalone takes for a
change on every call (a real module run reads them as text; the system test runs the module)."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.converge import replica_access as converge
from ansible_collections.restorable.backup.plugins.module_utils.converge.replica_access import (
    ReplicaAccess, ReplicaAccessFailed, ReplicaEntry, forced_command, key_comment, merge, our_lines, parse_public_key,
    split_lines)
from ansible_collections.restorable.backup.plugins.module_utils.common.mounts import filesystem_type, mounts

INSTALL = converge.install_standalone
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINNp2eX+d7NFOA4U/rnxGZcVOnFQkBSI8xD31gxWbDLe"
OTHER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDFlwFu4oFdfRWT85IJJmNhHoqk4VbN8r8tw1mnqfBIe"
RSA_BLOB = "AAAAB3NzaC1yc2EAAAADAQABAAAAgQC7"  # starts with the type ssh-rsa


def entry(path, source="web01", dataset="data", key=KEY) -> dict:
    return {"source": source, "dataset": dataset, "path": str(path), "public_key": key}


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# -- public keys ---------------------------------------------------------------------------------


def test_a_key_line_gives_type_and_base64_without_its_comment():
    assert parse_public_key(KEY + " someone@laptop\n") == tuple(KEY.split())
    assert parse_public_key("  %s  " % KEY) == tuple(KEY.split())


@pytest.mark.parametrize("text, problem", [
    ("", "one key line"),
    ("ssh-ed25519", "one key line"),
    (KEY + "\n" + OTHER_KEY, "one key line"),
    ('restrict,command="x" ' + KEY, "one key line"),
    ("restrict " + KEY, "not base64"),
    ("ssh-ed25519 AAAA!!!!", "not base64"),
    ("ssh-rsa " + KEY.split()[1], "not of type ssh-rsa"),
    ("ssh-ed25519 " + RSA_BLOB, "not of type ssh-ed25519"),
    ("ssh-ed25519 AAAA", "not of type ssh-ed25519"),
])
def test_anything_but_one_key_is_refused(text, problem):
    with pytest.raises(ValueError, match=problem):
        parse_public_key(text)


# -- the line and its forced command ----------------------------------------------------------


def sshd_fields(line: str) -> tuple[str, str]:
    """(options, rest) as sshd splits a key line (sshkey_advance_past_options)."""
    quoted, index = False, 0
    while index < len(line) and (quoted or line[index] not in " \t"):
        if line[index] == "\\" and line[index + 1:index + 2] == '"':
            index += 1
        elif line[index] == '"':
            quoted = not quoted
        index += 1
    return line[:index], line[index:].lstrip()


def sshd_command(options: str) -> str:
    """The value of command="..." as sshd dequotes it (opt_dequote: only \\" is an escape)."""
    assert options.startswith('restrict,command="')
    text, value, index = options[len('restrict,command="'):], "", 0
    while text[index] != '"':
        if text[index] == "\\" and text[index + 1] == '"':
            index += 1
        value += text[index]
        index += 1
    assert text[index + 1:] == ""
    return value


def fake_engine(install_dir) -> None:
    """A restorable_agent package whose receiver prints how it was started."""
    package = install_dir / "restorable_agent"
    (package / "runtime").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "runtime" / "__init__.py").write_text("")
    (package / "runtime" / "replica_cli.py").write_text(
        "import json, os, sys\n"
        "print(json.dumps({'argv': sys.argv[1:], 'cwd': os.getcwd(), 'pythonpath': os.environ['PYTHONPATH']}))\n")


@pytest.mark.parametrize("tricky", ["plain", "with space", 'a "quoted" name', "it's $HOME `id` \\ back\\\"slash", "ends\\"])
def test_the_forced_command_reaches_the_engine_with_the_paths_as_given(tmp_path, tricky):
    install_dir = tmp_path / ("engine " + tricky)
    fake_engine(install_dir)
    path = "/srv/replicas/%s/data" % tricky
    line = ReplicaEntry.from_params(entry(path)).authorized_line(str(install_dir), sys.executable)
    options, rest = sshd_fields(line)
    assert rest.split(" ", 2) == KEY.split() + ["restorable-replica:web01/data"]
    command = sshd_command(options)
    assert command == forced_command(str(install_dir), sys.executable, path)
    ran = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, check=True)
    assert json.loads(ran.stdout) == {"argv": ["--root", path], "cwd": "/", "pythonpath": str(install_dir)}


def test_the_line_is_restricted_and_named_after_source_and_dataset():
    line = ReplicaEntry.from_params(entry("/srv/r/web01/data")).authorized_line("/usr/local/lib/restorable", "/usr/bin/python3")
    assert line == ('restrict,command="cd / && PYTHONPATH=/usr/local/lib/restorable exec /usr/bin/python3 -m restorable_agent.runtime.'
                    'replica_cli --root /srv/r/web01/data" %s restorable-replica:web01/data' % KEY)
    assert key_comment("web01", "data") == "restorable-replica:web01/data"


# -- merging into the operator's file -------------------------------------------------------------


def ours(name: str, key: str = KEY) -> bytes:
    return ('restrict,command="x" %s restorable-replica:%s\n' % (key, name)).encode()


FOREIGN = [b"# keys of the operators\n", b"ssh-ed25519 AAAAC3Nza operator@desk\r\n", b"\n",
           b"from=\"10.0.0.1\" ssh-rsa AAAAB3 \xff\xfe not utf-8\n", b"# restorable-replica:web01/data stays a comment\n",
           b"ssh-ed25519 AAAA lone\rcarriage return\n"]


def test_foreign_lines_stay_byte_for_byte_and_in_place():
    current = b"".join(FOREIGN[:3] + [ours("web01/data", OTHER_KEY), ours("gone/data")] + FOREIGN[3:] + [ours("web01/data")])
    merged = merge(current, {"web01/data": ours("web01/data"), "db01/pg": ours("db01/pg")})
    assert split_lines(merged) == FOREIGN[:3] + [ours("web01/data")] + FOREIGN[3:] + [ours("db01/pg")]


def test_a_last_line_without_newline_is_kept_and_new_lines_go_after_it():
    assert merge(b"ssh-ed25519 AAAA mine", {"a/b": ours("a/b")}) == b"ssh-ed25519 AAAA mine\n" + ours("a/b")
    assert merge(b"ssh-ed25519 AAAA mine", {}) == b"ssh-ed25519 AAAA mine"


def test_new_lines_come_in_name_order_and_merging_again_changes_nothing():
    wanted = {name: ours(name) for name in ("web02/data", "db01/pg", "web01/data")}
    merged = merge(b"", wanted)
    assert split_lines(merged) == [ours("db01/pg"), ours("web01/data"), ours("web02/data")]
    assert merge(merged, wanted) == merged


def test_a_source_name_with_blanks_is_one_name():
    line = ours("web 01/data")
    assert merge(line, {"web 01/data": line}) == line
    assert merge(line, {"web/data": ours("web/data")}) == ours("web/data")


def test_our_lines_are_the_diff():
    assert our_lines(b"".join(FOREIGN) + ours("a/b")) == ours("a/b").decode()


# -- filesystems ----------------------------------------------------------------------------------


def write_mountinfo(path, *mounted) -> str:
    lines = ["%d 1 0:%d / %s rw,relatime shared:1 - %s /dev/x rw\n" % (n + 20, n, point, kind)
             for n, (point, kind) in enumerate(mounted)]
    path.write_text("".join(lines))
    return str(path)


def test_the_deepest_and_latest_mount_decides(tmp_path):
    spaced = tmp_path / "a b"
    spaced.mkdir()
    info = write_mountinfo(tmp_path / "mountinfo", ("/", "ext4"), (str(tmp_path), "xfs"), (str(tmp_path), "btrfs"),
                           (str(spaced).replace(" ", "\\040"), "tmpfs"))
    assert mounts(info)[-1] == (str(spaced), "tmpfs")
    assert filesystem_type(str(tmp_path / "not" / "yet"), info) == "btrfs"
    assert filesystem_type(str(spaced / "x"), info) == "tmpfs"
    assert filesystem_type("/usr", info) == "ext4"


def test_the_real_mount_table_names_this_directory(tmp_path):
    assert filesystem_type(str(tmp_path / "missing")) == filesystem_type(str(tmp_path)) != ""


# -- converging --------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def installs(monkeypatch) -> list:
    calls: list = []
    monkeypatch.setattr(converge, "install_standalone", lambda install_dir, check_mode: calls.append((install_dir, check_mode)) or [])
    return calls


@pytest.fixture
def host(tmp_path):
    """A host root, a btrfs-looking mount table for its srv directory and an ext4 one elsewhere."""
    root = tmp_path / "root"
    (root / "srv").mkdir(parents=True)
    info = write_mountinfo(tmp_path / "mountinfo", ("/", "ext4"), (str(root / "srv"), "btrfs"))
    return root, info


def access(root, info, check_mode=False, **kwargs) -> ReplicaAccess:
    return ReplicaAccess(check_mode, str(root), python="/usr/bin/python3", mountinfo=info, **kwargs)


def tree(root) -> dict:
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            found[path] = (info.st_mode, info.st_size, info.st_mtime_ns)
    return found


def test_first_run_creates_everything_and_the_second_changes_nothing(host, installs):
    root, info = host
    path = root / "srv/replicas/web01/data"
    changes = access(root, info).converge([entry(path)])
    assert changes.changed
    keys = root / "root/.ssh/authorized_keys"
    assert keys.read_text().endswith(" restorable-replica:web01/data\n") and "--root %s" % path in keys.read_text()
    assert (mode(keys), mode(keys.parent)) == (0o600, 0o700)
    assert [mode(p) for p in (path, path.parent, path.parent.parent)] == [0o700] * 3
    assert installs == [(str(root / "usr/local/lib/restorable"), False)]
    assert changes.before == "" and changes.after == keys.read_text()
    assert "create directory %s" % (root / "srv/replicas") in changes.actions
    before = tree(root)
    again = access(root, info).converge([entry(path)])
    assert not again.changed and again.actions == []
    assert tree(root) == before


def test_the_engine_is_installed_where_the_command_runs_it_and_not_in_check_mode(tmp_path, monkeypatch):
    monkeypatch.setattr(converge, "install_standalone", INSTALL)
    engine = tmp_path / "usr/local/lib/restorable"
    checked = ReplicaAccess(True, str(tmp_path), require_btrfs=False).converge([entry(tmp_path / "r")])
    assert "would update the replica engine in %s" % engine in checked.actions[0] and not engine.exists()
    done = ReplicaAccess(False, str(tmp_path), require_btrfs=False).converge([entry(tmp_path / "r")])
    assert done.actions[0].startswith("update the replica engine in %s (" % engine)
    assert (engine / "restorable_agent/__main__.py").is_file()


def test_no_entries_need_no_engine(host, installs):
    root, info = host
    access(root, info).converge([])
    assert installs == []


def test_check_mode_writes_nothing_and_says_what_it_would_do(host):
    root, info = host
    before = tree(root)
    changes = access(root, info, check_mode=True).converge([entry(root / "srv/r/web01/data")])
    assert tree(root) == before
    assert changes.changed and all(action.startswith("would ") for action in changes.actions)
    assert "restorable-replica:web01/data" in changes.after


def test_stale_lines_of_ours_go_and_the_operators_stay(host):
    root, info = host
    keys = root / "root/.ssh/authorized_keys"
    keys.parent.mkdir(parents=True)
    keys.write_bytes(b"".join(FOREIGN) + ours("gone/data"))
    changes = access(root, info).converge([entry(root / "srv/r/web01/data")])
    assert split_lines(keys.read_bytes())[:-1] == FOREIGN
    assert "gone/data" in changes.before and "gone/data" not in changes.after
    access(root, info).converge([])
    assert keys.read_bytes() == b"".join(FOREIGN)


def test_without_entries_an_operators_file_is_left_alone(host):
    root, info = host
    keys = root / "root/.ssh/authorized_keys"
    keys.parent.mkdir(parents=True)
    keys.write_bytes(FOREIGN[1])
    keys.chmod(0o644)
    before = tree(root)
    changes = access(root, info).converge([])
    assert not changes.changed and tree(root) == before


def test_loose_modes_are_tightened(host):
    root, info = host
    path = root / "srv/r/web01/data"
    access(root, info).converge([entry(path)])
    keys = root / "root/.ssh/authorized_keys"
    keys.chmod(0o644)
    keys.parent.chmod(0o755)
    changes = access(root, info).converge([entry(path)])
    assert changes.actions == ["set mode 0700 on %s" % keys.parent, "set mode 0600 on %s" % keys]
    assert (mode(keys), mode(keys.parent)) == (0o600, 0o700)


def test_an_existing_directory_keeps_its_mode(host):
    root, info = host
    path = root / "srv/r"
    path.mkdir(mode=0o755)
    path.chmod(0o755)
    access(root, info).converge([entry(path)])
    assert mode(path) == 0o755


def test_a_path_off_btrfs_fails_naming_the_entry_and_changes_nothing(host, tmp_path):
    root, info = host
    off = tmp_path / "elsewhere/data"
    before = tree(tmp_path)
    with pytest.raises(ReplicaAccessFailed) as failed:
        access(root, info).converge([entry(root / "srv/r/web01/data"), entry(off, source="db01", dataset="pg")])
    assert str(failed.value) == ("replica of source db01, dataset pg, path %s: the path is on ext4, not btrfs "
                                 "(points arrive by btrfs receive)" % off)
    assert tree(tmp_path) == before


def test_btrfs_is_not_required_when_told(host, tmp_path):
    root, info = host
    access(root, info, require_btrfs=False).converge([entry(tmp_path / "elsewhere/data")])
    assert (tmp_path / "elsewhere/data").is_dir()


@pytest.mark.parametrize("bad, problem", [
    ({"path": "relative/data"}, "path must be absolute"),
    ({"path": "/srv/a\nb"}, "path must be absolute and without control characters"),
    ({"source": "web\n01"}, "source must be an inventory name"),
    ({"source": " "}, "source must be an inventory name"),
    ({"dataset": "a/b"}, "dataset must be a dataset name"),
    ({"public_key": "ssh-ed25519"}, "public_key must be one key line"),
])
def test_bad_entries_are_refused_before_anything_changes(host, bad, problem):
    root, info = host
    before = tree(root)
    with pytest.raises(ReplicaAccessFailed, match=problem):
        access(root, info).converge([entry(root / "srv/r/web01/data", dataset="ok"), dict(entry(root / "srv/r/x"), **bad)])
    assert tree(root) == before


def test_a_file_in_the_way_and_a_dataset_listed_twice_are_refused(host):
    root, info = host
    (root / "srv/file").write_text("")
    with pytest.raises(ReplicaAccessFailed, match="the path is not a directory"):
        access(root, info).converge([entry(root / "srv/file")])
    with pytest.raises(ReplicaAccessFailed, match="cannot be created: %s is not a directory" % (root / "srv/file")):
        access(root, info).converge([entry(root / "srv/file/data")])
    with pytest.raises(ReplicaAccessFailed, match="listed twice"):
        access(root, info).converge([entry(root / "srv/a"), entry(root / "srv/b")])


def test_paths_default_below_the_root_and_may_be_given(tmp_path):
    default = ReplicaAccess(False, str(tmp_path))
    assert default.authorized_keys == str(tmp_path / "root/.ssh/authorized_keys")
    assert default.install_dir == str(tmp_path / "usr/local/lib/restorable")
    given = ReplicaAccess(False, str(tmp_path), authorized_keys="/k", install_dir="/i")
    assert (given.authorized_keys, given.install_dir) == ("/k", "/i")
