# -*- coding: utf-8 -*-
"""The CDP replica's access, through ansible-playbook on this machine (connection local).

restorable.backup.replica_keys makes one key pair per replicated dataset in the controller's
credential store (once; check mode makes none; no private key in any result).
restorable.backup.replica_access gives each source dataset a directory on a real btrfs (a loop
device) and a line in authorized_keys: idempotent, check mode changes nothing, the operator's lines
stay byte for byte, stale lines of ours go, a path off btrfs fails naming its entry and changes
nothing. Last, a real sshd with that authorized_keys: the key made by replica_keys logs in and
runs the forced command only, whatever command the client asks for.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from pathlib import Path

import pytest
import yaml

from ansible_collections.restorable.backup.plugins.plugin_utils.replica_keys import key_path, read_replica_key
from apply_helpers import PlaybookRun, run_ansible, tree_state
from fleet.inventory import ansible_bin
from fleet.sshd import SshClient, SshKey

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "snapshot"))
from loop_helpers import loop_mount  # noqa: E402  (the snapshot tests' loop devices)

LOCAL = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}
ACCESS_PLAYBOOK = """
- hosts: replica01
  gather_facts: false
  tasks:
    - name: Authorize the replicated datasets
      restorable.backup.replica_access:
        entries: "{{ replica_entries }}"
        root: "{{ replica_root }}"
        authorized_keys: "{{ replica_authorized_keys | default(omit) }}"
        python: "{{ replica_python | default(omit) }}"
"""
KEYS_PLAYBOOK = """
- hosts: all
  gather_facts: false
  tasks:
    - name: Make the replica key pairs
      restorable.backup.replica_keys:
      run_once: true
      register: made
    - name: Keep the task's result for the test
      ansible.builtin.copy:
        content: "{{ made | to_json }}"
        dest: "{{ result_file }}"
        mode: "0600"
      delegate_to: localhost
      run_once: true
      check_mode: false
      changed_when: false
"""
FOREIGN = (b"# operators\n"
           b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ5n8v1cbL1YbZqVxj0Jg3yD9cGhV0sCQn0jmEw0mXzW operator@desk\r\n"
           b"\n"
           b'from="10.0.0.0/8" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ5n8v1cbL1YbZqVxj0Jg3yD9cGhV0sCQn0jmEw0mXzW \xff backup')


def key_of(name: str) -> str:
    return {"web01": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINNp2eX+d7NFOA4U/rnxGZcVOnFQkBSI8xD31gxWbDLe",
            "db01": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDFlwFu4oFdfRWT85IJJmNhHoqk4VbN8r8tw1mnqfBIe"}[name]


def _btrfs_unusable() -> str | None:
    if os.geteuid() != 0:
        return "loop devices and btrfs need root"
    for tool in ("losetup", "mount", "mkfs.btrfs"):
        if shutil.which(tool) is None:
            return "%s is not installed" % tool
    return None if os.path.exists("/dev/loop-control") else "no /dev/loop-control"


@pytest.fixture(scope="module")
def btrfs_dir(tmp_path_factory):
    """A directory on a btrfs of its own (a sparse image on a loop device), for this module."""
    reason = _btrfs_unusable()
    if reason:
        pytest.skip(reason)
    holder = tmp_path_factory.mktemp("replica-btrfs")
    mount = loop_mount(holder / "btrfs.img", holder / "mnt", "btrfs", 512)
    try:
        yield mount.mountpoint
    finally:
        mount.close()


def play(tmp_path: Path, playbook: str, inventory: dict, extra: dict, *args: str) -> PlaybookRun:
    """ansible-playbook of a playbook text on an inventory, variables from a JSON file."""
    paths = {name: tmp_path / ("%s-%d" % (name, len(list(tmp_path.glob(name + "-*"))))) for name in ("play", "inv", "vars")}
    paths["play"].write_text(playbook)
    paths["inv"].write_text(yaml.safe_dump(inventory))
    paths["vars"].write_text(json.dumps(extra))
    return run_ansible([ansible_bin("ansible-playbook"), "-i", paths["inv"], paths["play"], "-e", "@%s" % paths["vars"], *args])


def access(tmp_path: Path, entries: list, root: Path, *args: str, **variables) -> PlaybookRun:
    inventory = {"all": {"hosts": {"replica01": dict(LOCAL)}}}
    return play(tmp_path, ACCESS_PLAYBOOK, inventory, dict(replica_entries=entries, replica_root=str(root), **variables), *args)


def entry(source: str, dataset: str, path: Path, key: str | None = None) -> dict:
    return {"source": source, "dataset": dataset, "path": str(path), "public_key": key or key_of(source) + " from-the-store"}


def changed(run: PlaybookRun) -> int:
    """Tasks changed on all hosts (a run_once task counts on one of them)."""
    assert run.returncode == 0, run.describe()
    return sum(counts["changed"] for counts in run.recap.values())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- replica_access ------------------------------------------------------------------------------


def test_access_converges_once_keeps_foreign_lines_and_drops_stale_ones(btrfs_dir, tmp_path):
    root, replicas = tmp_path / "root", btrfs_dir / "first"
    keys = root / "root/.ssh/authorized_keys"
    keys.parent.mkdir(parents=True)
    stale = b'restrict,command="true" %s restorable-replica:gone/data\n' % key_of("db01").encode()
    keys.write_bytes(FOREIGN[:FOREIGN.index(b"\n\n") + 2] + stale + FOREIGN[FOREIGN.index(b"\n\n") + 2:])
    entries = [entry("web01", "data", replicas / "web01/data"), entry("db01", "pg", replicas / "db01/pg")]

    first = access(tmp_path, entries, root, "--diff")
    assert changed(first) == 1
    lines = keys.read_bytes().split(b"\n")
    assert b"\n".join(lines[:-3]) == FOREIGN  # the operator's lines, the last one's missing newline added
    ours = [line.decode() for line in lines[-3:-1]]
    assert [line.rsplit(" ", 1)[1] for line in ours] == ["restorable-replica:db01/pg", "restorable-replica:web01/data"]
    assert ours[1].startswith('restrict,command="cd / && PYTHONPATH=%s exec /usr/bin/python3 -m restorable_agent.runtime.'
                              'replica_cli --root %s" ' % (root / "usr/local/lib/restorable", replicas / "web01/data"))
    assert (mode(keys), mode(keys.parent)) == (0o600, 0o700)
    for path in (replicas / "web01/data", replicas / "db01/pg", replicas / "web01", replicas):
        assert path.is_dir() and mode(path) == 0o700
    assert (root / "usr/local/lib/restorable/restorable_agent/__main__.py").is_file()
    # The diff shows our lines only: the stale one going, the new ones coming.
    assert "-" + stale.decode().rstrip("\n") in first.stdout and "+" + ours[0] in first.stdout
    assert "operator@desk" not in first.stdout

    before = tree_state(root, replicas)
    second = access(tmp_path, entries, root, "--diff")
    assert changed(second) == 0
    assert tree_state(root, replicas) == before


def test_check_mode_changes_nothing_and_says_what_it_would_do(btrfs_dir, tmp_path):
    root, replicas = tmp_path / "root", btrfs_dir / "checked"
    before = tree_state(root, replicas)
    run = access(tmp_path, [entry("web01", "data", replicas / "web01/data")], root, "--check", "--diff", "-v")
    assert changed(run) == 1
    assert "would create directory %s" % replicas in run.stdout
    assert "restorable-replica:web01/data" in run.stdout
    assert tree_state(root, replicas) == before == {str(root): ("missing",), str(replicas): ("missing",)}


def test_a_path_off_btrfs_fails_naming_the_entry_and_nothing_changes(btrfs_dir, tmp_path):
    root, replicas, off = tmp_path / "root", btrfs_dir / "refused", tmp_path / "ext" / "pg"
    before = tree_state(root, replicas, off.parent)
    run = access(tmp_path, [entry("web01", "data", replicas / "web01/data"), entry("db01", "pg", off)], root)
    assert run.returncode != 0 and run.recap["replica01"]["failed"] == 1
    assert "replica of source db01, dataset pg, path %s: the path is on " % off in run.stdout
    assert "not btrfs" in run.stdout
    assert tree_state(root, replicas, off.parent) == before


# -- replica_keys ---------------------------------------------------------------------------------


def source_inventory(store: Path, result_file: Path) -> dict:
    dataset = {"tier": "cdp", "source": {"type": "btrfs", "subvolume": "/srv/data"}, "interval_minutes": 5,
               "replica": "rep", "retention": {"max_age": "1d"}}
    common = dict(LOCAL, result_file=str(result_file), restorable_controller={"credential_store": str(store)},
                  restorable_targets={"rep": {"type": "replica", "host": "replica01", "path": "/srv/replicas"}})
    return {"all": {"vars": common, "hosts": {
        "web01": {"restorable_datasets": {"data": dataset, "paused": dict(dataset, enabled=False)}},
        "db01": {"restorable_datasets": {"data": dataset, "files": {"tier": "agent", "paths": ["/etc"]}}},
        "replica01": {},
    }}}


def test_replica_keys_are_made_once_and_never_shown(tmp_path):
    store, result_file = tmp_path / "store", tmp_path / "result.json"
    inventory = source_inventory(store, result_file)

    checked = play(tmp_path, KEYS_PLAYBOOK, inventory, {}, "--check", "--diff", "-v")
    assert changed(checked) == 1
    assert json.loads(result_file.read_text())["created"] == ["db01/data", "web01/data"]
    assert not store.exists()

    first = play(tmp_path, KEYS_PLAYBOOK, inventory, {}, "--diff", "-v")
    assert changed(first) == 1
    result = json.loads(result_file.read_text())
    assert result["created"] == ["db01/data", "web01/data"] and result["changed"]
    assert sorted(path.name for path in (store / "replica").rglob("*")) == ["data", "data", "data.pub", "data.pub", "db01", "web01"]
    for host in ("web01", "db01"):
        key = read_replica_key(str(store), host, "data")
        assert key["public"].endswith(" restorable-replica:%s/data" % host)
        assert mode(Path(key_path(str(store), host, "data"))) == 0o600
        body = key["private"].splitlines()[1]
        for run in (checked, first):
            assert body not in run.output and "PRIVATE KEY" not in run.output
        assert body not in result_file.read_text()
    assert read_replica_key(str(store), "web01", "paused") is None
    assert mode(store / "replica") == mode(store / "replica/web01") == 0o700

    before = tree_state(store)
    second = play(tmp_path, KEYS_PLAYBOOK, inventory, {})
    assert changed(second) == 0
    assert json.loads(result_file.read_text())["created"] == []
    assert tree_state(store) == before


# -- both, with a real sshd -----------------------------------------------------------------------


FAKE_PYTHON = """#!/bin/sh
# Stands in for the interpreter: says how the forced command started it.
exec %s -c 'import json, os, sys; print(json.dumps({"argv": sys.argv[1:], "cwd": os.getcwd(),
    "pythonpath": os.environ.get("PYTHONPATH"), "asked": os.environ.get("SSH_ORIGINAL_COMMAND")}))' "$@"
"""


def test_a_replica_key_runs_only_its_forced_command(ssh_fleet_factory, fleet_ssh_client, btrfs_dir, tmp_path):
    replica = ssh_fleet_factory(1, prefix="access")[0]
    store, result_file = tmp_path / "store", tmp_path / "result.json"
    assert changed(play(tmp_path, KEYS_PLAYBOOK, source_inventory(store, result_file), {})) == 1
    python = tmp_path / "fake python"
    python.write_text(FAKE_PYTHON % sys.executable)
    python.chmod(0o755)
    path = btrfs_dir / "sshd" / "web01" / "it's data"
    keys = replica.base_dir / "authorized_keys"  # the daemon's AuthorizedKeysFile, the session key in it
    entries = [entry("web01", "data", path, read_replica_key(str(store), "web01", "data")["public"])]
    run = access(tmp_path, entries, tmp_path / "root", replica_authorized_keys=str(keys), replica_python=str(python))
    assert changed(run) == 1

    # The source's side: its replica key, asking for a command of its own choosing.
    source = SshClient(key=SshKey(Path(key_path(str(store), "web01", "data"))), control_dir=fleet_ssh_client.control_dir)
    login = source.run(replica.address, replica.port, "rm -rf /tmp/nothing; id", check=False, timeout=60)
    assert login.returncode == 0, login.stderr
    assert json.loads(login.stdout) == {"argv": ["-m", "restorable_agent.runtime.replica_cli", "--root", str(path)], "cwd": "/",
                                        "pythonpath": str(tmp_path / "root/usr/local/lib/restorable"),
                                        "asked": "rm -rf /tmp/nothing; id"}
    # The operator's key in the same file still gets a shell.
    assert replica.run("echo still here").stdout == "still here\n"
