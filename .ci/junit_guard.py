#!/usr/bin/env python
"""CI verdict on pytest's JUnit report: tests ran, and no suite that needs root, loop devices
or a real systemd was skipped.

    python .ci/junit_guard.py tests/output/pytest.xml    # exit 1 naming every problem

Those suites skip where the machine cannot give them what they need (not root, no loop
device, no systemd-nspawn). CI runs as root on a machine that has all of it, so a skip there
is a broken fixture, and a green run without them would prove nothing about snapshots, freezes
or systemd timers. tests/system/test_ci_guard.py tests problems() and keeps GUARDED in step
with the tests.
"""
from __future__ import annotations

import sys
import xml.etree.ElementTree as ET

# JUnit addresses (classname.name, dotted as pytest writes them) of the suites that must run:
# an entry covers itself, and every test and parameter below it.
GUARDED = {
    "tests.system.snapshot": "btrfs on loop devices (root)",
    "tests.system.consistency": "xfs and btrfs on loop devices, fsfreeze (root)",
    "tests.system.fleet.test_fleet": "the systemd-nspawn host (root)",
    "tests.system.apply.test_schedulers": "the systemd-nspawn host (root)",
    "tests.system.drill.test_drill_schedule.test_systemd_runs_the_drill_service_on_a_real_systemd_host":
        "the systemd-nspawn host (root)",
    "tests.system.hypervisor": "private libvirtd instances and a real guest (root)",
    "tests.system.host": "the host tier on private libvirtd instances with a real guest (root)",
    "tests.system.apply.test_replica_access": "btrfs on loop devices (root)",
    "tests.system.cdp_btrfs": "the CDP tier on btrfs filesystems on loop devices, a replica sshd (root)",
    "tests.system.cdp_pg": "the CDP tier on a real PostgreSQL 15, moto S3 and an sshd (root)",
    "tests.system.tape": "tape libraries: btrfs on loop devices, moto S3 with Object Lock (root)",
    "tests.system.apply.test_tape_modules": "a directory tape library through ansible-playbook (root)",
    "tests.system.array": "array tier: btrfs and XFS on loop devices, PostgreSQL 15, the systemd-nspawn host (root)",
    "tests.system.sites": "sites in network namespaces, a link shaped with tc (root)",
    "tests.system.audit": "the audit of a real fleet, WORM attributes of a tape library (root)",
    "tests.system.reports": "the HTML reports in headless Chromium",
}
# The systemd_host fixture's skip messages start with this, in whichever file a test uses it.
GUARDED_SKIP_MESSAGE = "systemd_host"


def _address(testcase: ET.Element) -> str:
    # A module skipped at collection has no classname: its dotted path is the name.
    classname, name = testcase.get("classname", ""), testcase.get("name", "")
    return f"{classname}.{name}" if classname else name


def _covered(address: str, entry: str) -> bool:
    return address == entry or address.startswith((entry + ".", entry + "["))


def _skip(testcase: ET.Element) -> ET.Element | None:
    skipped = testcase.find("skipped")
    if skipped is None or skipped.get("type") == "pytest.xfail":
        return None  # an expected failure is not a missing machine feature
    return skipped


def problems(root: ET.Element) -> list[str]:
    """One line per problem of a parsed JUnit report; empty when CI may pass."""
    testcases = list(root.iter("testcase"))
    if not testcases:
        return ["no test ran"]
    found = []
    for testcase in testcases:
        address = _address(testcase)
        skipped = _skip(testcase)
        if skipped is None:
            continue
        message = skipped.get("message", "")
        if message in ("", "collection skipped"):  # the reason is then in the text
            message = (skipped.text or message).strip()
        needs = next((why for entry, why in GUARDED.items() if _covered(address, entry)), None)
        if needs is None and GUARDED_SKIP_MESSAGE in message:
            needs = "the systemd-nspawn host (root)"
        if needs is not None:
            found.append(f"skipped {address} (needs {needs}): {message}")
    for entry in GUARDED:
        if not any(_covered(_address(testcase), entry) for testcase in testcases):
            found.append(f"missing {entry}: not in the report, so it did not run")
    return found


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: junit_guard.py PYTEST_JUNIT_XML", file=sys.stderr)
        return 2
    try:
        root = ET.parse(argv[0]).getroot()
    except (OSError, ET.ParseError) as exc:
        print(f"ci: no readable JUnit report from pytest: {exc}", file=sys.stderr)
        return 1
    found = problems(root)
    if found:
        print("ci: suites that need root, loop devices or systemd did not all run; CI runs as root, "
              "so this is a broken fixture:", file=sys.stderr)
        for line in found:
            print("ci:   " + line, file=sys.stderr)
        return 1
    print(f"pytest ran {len(list(root.iter('testcase')))} tests; the root, loop device and systemd suites ran")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
