"""Sites of SSH hosts in network namespaces: a fleet spread over sites, one sshd per namespace.

Every host is a network namespace of its own with one sshd (port 22 of its own address) on the
shared filesystem (its own ``data_dir``). All hosts hang off one bridge (the WAN) in a namespace
of its own; the controller (this test process, Ansible) reaches them through a veth pair into
that bridge. A site can be a branch office behind a slow line: ``shape`` puts a tc token bucket
on its hosts' links toward the WAN, and ``tx_bytes`` reads a link's counters.

Addresses are a free /24 of ``SITE_BLOCK``, set only on interfaces this module creates (in
namespaces it creates, and the controller's end of its veth pair). Daemons are stopped by their
PID, the namespaces deleted (which deletes their interfaces) when the fleet stops.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .inventory import inventory_data
from .nspawn import NET_LOCK, KernelFeatureMissing, _ip
from .sshd import FleetError, SshClient, SshdHost, require_openssh

SITE_BLOCK = ipaddress.IPv4Network("10.214.0.0/16")
FIRST_HOST = 10  # .1 is the controller's end; hosts are .10, .11, ...


@dataclass(eq=False)
class SiteHost(SshdHost):
    """An sshd host in its own network namespace, member of a site."""

    site: str = ""
    link: str = "eth0"  # its interface toward the WAN, inside netns

    def exec(self, argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run a local command inside the host's network namespace (same filesystem)."""
        return subprocess.run(["ip", "netns", "exec", str(self.netns), *argv], capture_output=True, text=True,
                              check=False, **kwargs)

    def tx_bytes(self) -> int:
        """Bytes the host has sent on its WAN link (the link's own counter)."""
        out = _ip("-n", str(self.netns), "-s", "-j", "link", "show", self.link).stdout
        return int(json.loads(out)[0]["stats64"]["tx"]["bytes"])


@dataclass
class SiteFleet:
    """Hosts by site, the WAN they share and what was created for them."""

    hosts: list[SiteHost]
    wan_netns: str
    controller_if: str
    network: ipaddress.IPv4Network
    shaped: dict[str, str] = field(default_factory=dict)  # site: tc rate

    def __iter__(self) -> Iterator[SiteHost]:
        return iter(self.hosts)

    def __getitem__(self, name: str) -> SiteHost:
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)

    def site(self, name: str) -> list[SiteHost]:
        return [h for h in self.hosts if h.site == name]

    @property
    def sites(self) -> list[str]:
        return sorted({h.site for h in self.hosts})

    def shape(self, site: str, rate: str) -> None:
        """The site's hosts send toward the WAN at most `rate` (tc rate syntax, e.g. 20mbit)."""
        for host in self.site(site):
            _ip("netns", "exec", str(host.netns), "tc", "qdisc", "replace", "dev", host.link, "root",
                "tbf", "rate", rate, "burst", "32kb", "latency", "100ms")
        self.shaped[site] = rate

    def write_inventory(self, path: Path, extra_vars: Mapping[str, Any] | None = None,
                        host_vars: Mapping[str, Mapping[str, Any]] | None = None) -> Path:
        """A YAML inventory with a group per site; host_vars: more variables by host name."""
        data = inventory_data({site: self.site(site) for site in self.sites}, extra_vars)
        for group in data["all"]["children"].values():
            for name, variables in group["hosts"].items():
                variables.update((host_vars or {}).get(name, {}))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    def stop(self) -> None:
        for host in self.hosts:
            host.stop()
        for host in self.hosts:
            _ip("netns", "del", str(host.netns), check=False)
        # The WAN namespace takes the bridge and the peer of the controller's veth with it.
        _ip("link", "del", self.controller_if, check=False)
        _ip("netns", "del", self.wan_netns, check=False)


def start_site_fleet(sites: Mapping[str, int], base_dir: Path, client: SshClient, tag: str) -> SiteFleet:
    """``sites``: site name -> host count; hosts are named ``<site>1``.. in site order. On
    failure everything created so far is removed again."""
    require_openssh()
    if not Path("/proc/self/ns/net").exists():
        raise KernelFeatureMissing("kernel without network namespaces")
    with open(_lock_path(), "w") as lock:
        # Choosing a free /24 and taking it must be one step among concurrent sessions.
        fcntl.flock(lock, fcntl.LOCK_EX)
        network = _free_network()
        fleet = SiteFleet([], f"rbs{tag}w", f"rbs{tag}c", network)
        try:
            _wan(fleet, tag)
            index = 0
            for site, count in sites.items():
                for number in range(1, count + 1):
                    fleet.hosts.append(_host(fleet, f"{site}{number}", site, index, tag, base_dir, client))
                    index += 1
        except BaseException:
            fleet.stop()
            raise
    try:
        for host in fleet.hosts:
            host.prepare()
            host.start()
        for host in fleet.hosts:
            if not host.reachable(timeout=10):
                raise FleetError(f"{host.name} ({host.address}) answers but root cannot log in; log:\n{host.log.read_text()[-2000:]}")
    except BaseException:
        fleet.stop()
        raise
    return fleet


def _lock_path() -> Path:
    NET_LOCK.parent.mkdir(parents=True, exist_ok=True)
    return NET_LOCK


def _wan(fleet: SiteFleet, tag: str) -> None:
    result = _ip("netns", "add", fleet.wan_netns, check=False)
    if result.returncode != 0:
        raise KernelFeatureMissing(f"`ip netns add` failed: {result.stderr.strip()}")
    wan = fleet.wan_netns
    _ip("-n", wan, "link", "add", "br0", "type", "bridge")
    _ip("-n", wan, "link", "set", "br0", "up")
    _ip("link", "add", fleet.controller_if, "type", "veth", "peer", "name", "ctl", "netns", wan)
    _ip("-n", wan, "link", "set", "ctl", "master", "br0", "up")
    _disable_ipv6(None, fleet.controller_if)
    _ip("addr", "add", f"{fleet.network.network_address + 1}/{fleet.network.prefixlen}", "dev", fleet.controller_if)
    _ip("link", "set", fleet.controller_if, "up")


def _host(fleet: SiteFleet, name: str, site: str, index: int, tag: str, base_dir: Path, client: SshClient) -> SiteHost:
    netns = f"rbs{tag}h{index}"
    address = str(fleet.network.network_address + FIRST_HOST + index)
    _ip("netns", "add", netns)
    host = SiteHost(name=name, address=address, port=22, base_dir=base_dir / name, data_dir=base_dir / "hosts" / name,
                    client=client, netns=netns, site=site)
    _ip("-n", netns, "link", "add", "eth0", "type", "veth", "peer", "name", f"h{index}", "netns", fleet.wan_netns)
    _ip("-n", fleet.wan_netns, "link", "set", f"h{index}", "master", "br0", "up")
    _disable_ipv6(netns, "eth0")
    _ip("-n", netns, "addr", "add", f"{address}/{fleet.network.prefixlen}", "dev", "eth0")
    _ip("-n", netns, "link", "set", "eth0", "up")
    _ip("-n", netns, "link", "set", "lo", "up")
    return host


def _disable_ipv6(netns: str | None, interface: str) -> None:
    # Only the addresses given here: no IPv6 link-local chatter on the links.
    command = ["sh", "-c", f"echo 1 > /proc/sys/net/ipv6/conf/{interface}/disable_ipv6 2>/dev/null; true"]
    subprocess.run((["ip", "netns", "exec", netns] if netns else []) + command, check=False, timeout=10)


def _free_network() -> ipaddress.IPv4Network:
    """The first /24 of SITE_BLOCK that no address of this namespace is in (stale ones are skipped)."""
    used = _ip("-4", "-o", "addr", "show").stdout
    taken = {ipaddress.IPv4Interface(word).network for line in used.splitlines()
             for word in line.split() if "/" in word and word[0].isdigit()}
    for net in SITE_BLOCK.subnets(new_prefix=24):
        if not any(net.overlaps(t) for t in taken):
            return net
    raise FleetError(f"no free /24 left in {SITE_BLOCK} (stale test namespaces? `ip netns`)")


def session_tag() -> str:
    """Short (interface names are 15 characters at most) and unique among concurrent sessions."""
    return f"{os.getpid() % 10000}"
