"""What the README, the Makefile and the collection metadata promise agrees with what they do."""

import re
from pathlib import Path

import yaml
from ansible.release import __version__ as ansible_core_version
from packaging.specifiers import SpecifierSet
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
MAKEFILE = (REPO / "Makefile").read_text()


def _specs(text: str) -> set:
    return {(spec.operator, Version(spec.version)) for spec in SpecifierSet(text)}


def _recipe(target: str) -> list[str]:
    lines = MAKEFILE.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"{re.escape(target)}:", line))
    recipe = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


def test_requires_ansible_is_the_tested_ansible_core_series():
    runtime = yaml.safe_load((REPO / "meta/runtime.yml").read_text())
    (pin,) = [line for line in (REPO / "requirements-dev.txt").read_text().splitlines() if line.startswith("ansible-core")]
    assert _specs(runtime["requires_ansible"]) == _specs(pin[len("ansible-core"):])
    assert Version(ansible_core_version) in SpecifierSet(runtime["requires_ansible"])


def test_readme_installs_the_tarball_make_build_writes():
    galaxy = yaml.safe_load((REPO / "galaxy.yml").read_text())
    tarball = "build/{namespace}-{name}-{version}.tar.gz".format(**galaxy)
    assert "ansible-galaxy collection build --force --output-path build" in _recipe("build")
    assert f"ansible-galaxy collection install {tarball}" in README


def test_makefile_header_names_the_readme_commands():
    header = MAKEFILE.split("\n\n", 1)[0]
    for command in ("make demo", "make test"):
        assert command in README
        assert command in header


def test_demo_clean_removes_exactly_the_demo_root():
    inventory = yaml.safe_load((REPO / "inventories/demo/group_vars/all/main.yml").read_text())
    demo_root = inventory["demo_root"]
    stop_hypervisor, remove = _recipe("demo-clean")
    assert remove == f"rm -rf -- {demo_root}"
    assert stop_hypervisor == "$(DEMO_HYPERVISOR) stop $(DEMO_HYPERVISOR_ROOT)"
    assert f"DEMO_HYPERVISOR_ROOT := {demo_root}/" in MAKEFILE  # the demo's hypervisor lives below it too
    assert f"`{demo_root}`" in README and "`make demo-clean`" in README
