"""The fleet fixtures give real hosts that Ansible reaches over SSH."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from .inventory import ansible_bin, ansible_env, write_inventory
from .nspawn import SystemdHost
from .sshd import SshFleet


def ansible_ping(inventory: Path, pattern: str = "all") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ansible_bin()), "-i", str(inventory), pattern, "-m", "ansible.builtin.ping",
         "--one-line", "--forks", "10"],
        capture_output=True, text=True, timeout=300, check=False, env=ansible_env(),
    )


def test_ansible_pings_every_sshd_host(ssh_fleet: SshFleet, tmp_path: Path) -> None:
    inventory = ssh_fleet.write_inventory(tmp_path / "inventory.yml")
    result = ansible_ping(inventory)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ssh_fleet.names:
        assert f"{name} | SUCCESS" in result.stdout


def test_inventory_has_connection_settings(ssh_fleet: SshFleet, tmp_path: Path) -> None:
    inventory = ssh_fleet.write_inventory(tmp_path / "inventory.yml")
    listed = subprocess.run([str(ansible_bin("ansible-inventory")), "-i", str(inventory), "--list"],
                            capture_output=True, text=True, timeout=120, check=True,
                            env=ansible_env())
    hostvars = json.loads(listed.stdout)["_meta"]["hostvars"]
    assert sorted(hostvars) == ssh_fleet.names
    for host in ssh_fleet:
        got = hostvars[host.name]
        assert (got["ansible_host"], got["ansible_port"]) == (host.address, host.port)
        assert got["ansible_user"] == "root"
        assert got["ansible_python_interpreter"] == "/usr/bin/python3"
        assert Path(got["ansible_ssh_private_key_file"]).is_file()
        assert "ControlPath=" in got["ansible_ssh_common_args"]


def test_each_sshd_host_has_its_own_address_key_and_data_dir(ssh_fleet: SshFleet) -> None:
    assert len(ssh_fleet) == 3
    assert len({h.address for h in ssh_fleet}) == 3
    assert len({h.data_dir for h in ssh_fleet}) == 3
    host_keys = {(h.base_dir / "ssh_host_ed25519_key.pub").read_text() for h in ssh_fleet}
    assert len(host_keys) == 3
    for host in ssh_fleet:
        # The host sees its own data_dir (sshd's SetEnv) and writes into it.
        out = host.run('echo "$FLEET_HOST $FLEET_DATA_DIR" && touch "$FLEET_DATA_DIR/mine"').stdout
        assert out.split() == [host.name, str(host.data_dir)]
        assert (host.data_dir / "mine").exists()
    for host in ssh_fleet:
        others = [h for h in ssh_fleet if h is not host]
        assert all(not (host.data_dir / o.name).exists() for o in others)


def test_stopped_host_is_unreachable_and_comes_back(ssh_fleet: SshFleet, tmp_path: Path) -> None:
    inventory = ssh_fleet.write_inventory(tmp_path / "inventory.yml")
    assert ansible_ping(inventory).returncode == 0  # leaves ControlPersist masters behind
    # A job that left its session behind dies with its host, like on a real one.
    job = int(ssh_fleet["host2"].run(
        "setsid sleep 600 </dev/null >/dev/null 2>&1 & echo $!").stdout)
    with ssh_fleet.down("host2") as (down,):
        assert not down.running
        assert not Path(f"/proc/{job}").exists()
        assert not down.reachable(timeout=3)
        result = ansible_ping(inventory)
        # Ansible exits 4 when a host is unreachable; the others still answer.
        assert result.returncode == 4, result.stdout + result.stderr
        assert "host2 | UNREACHABLE" in result.stdout
        assert "host1 | SUCCESS" in result.stdout and "host3 | SUCCESS" in result.stdout
    assert ssh_fleet["host2"].reachable()
    assert ansible_ping(inventory).returncode == 0


def test_factory_makes_another_fleet_on_other_addresses(ssh_fleet_factory, ssh_fleet: SshFleet) -> None:
    extra = ssh_fleet_factory(2, prefix="extra")
    assert extra.names == ["extra1", "extra2"]
    assert not {h.address for h in extra} & {h.address for h in ssh_fleet}
    assert all(h.reachable() for h in extra)
    extra.stop_all()


def test_systemd_host_runs_systemd(systemd_host: SystemdHost) -> None:
    state = systemd_host.run("systemctl is-system-running --wait", check=False, timeout=90)
    assert state.stdout.strip() in ("running", "degraded"), state
    assert systemd_host.run("cat /proc/1/comm").stdout.strip() == "systemd"
    assert systemd_host.run("systemctl is-active ssh.service cron.service").stdout.split() == [
        "active", "active"]
    assert systemd_host.run("hostname").stdout.strip() == systemd_host.name
    # Its own filesystem: written inside, seen through the host's view of its root only.
    systemd_host.run("echo inside > /root/marker")
    assert (systemd_host.fs / "root/marker").read_text() == "inside\n"
    assert not Path("/root/marker").exists() or Path("/root/marker").read_text() != "inside\n"


def test_ansible_pings_sshd_fleet_and_systemd_host(
        ssh_fleet: SshFleet, systemd_host: SystemdHost, tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path / "inventory.yml",
                                {"fleet": ssh_fleet.hosts, "systemd": [systemd_host]})
    result = ansible_ping(inventory)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in [*ssh_fleet.names, systemd_host.name]:
        assert f"{name} | SUCCESS" in result.stdout


def test_systemd_host_timers_fire(systemd_host: SystemdHost) -> None:
    # Without AccuracySec a timer may fire up to a minute late.
    systemd_host.run("rm -f /run/timer-fired && systemd-run --unit=fleet-probe --on-active=1s "
                     "--timer-property=AccuracySec=100ms /bin/touch /run/timer-fired")
    systemd_host.run("for i in $(seq 150); do [ -e /run/timer-fired ] && exit 0; sleep 0.1; done; "
                     "exit 1")
