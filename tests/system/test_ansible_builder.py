# -*- coding: utf-8 -*-
"""The execution environment of docs/execution-environment.yml: ``ansible-builder create`` makes its
build context, and the collection's dependencies reach the image through
meta/execution-environment.yml.

No container engine runs here, so the image is not built. What the build would do with the
collection is done on this machine with the context's own files, as its Containerfile says: the
galaxy stage installs the requirements of ``_build/requirements.yml`` (the tarball
``make build`` writes, copied into the context) from ``/build``, and the builder stage runs
``_build/scripts/introspect.py`` on the installed collections to write the Python and bindep
requirements the final image installs.
"""
from __future__ import annotations

import re
import shutil
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

# The collection as users get it: the tarball of this checkout (module fixture).
from test_galaxy_build import BIN, REPO, isolated_env, run, tarball  # noqa: F401  pylint: disable=unused-import

EXAMPLE = REPO / "docs/execution-environment.yml"
# ansible-builder leaves these out of every image's requirements: ansible-core brings PyYAML.
BUILDER_EXCLUDES = {"pyyaml"}


def requirement_lines(path: Path) -> list[str]:
    """The requirements of a pip or bindep file, without comments."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def introspected_lines(path: Path) -> list[str]:
    """The requirements ansible-builder wrote; each names the collection it comes from."""
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    assert all(line.endswith("  # from collection restorable.backup") for line in lines), lines
    return requirement_lines(path)


@pytest.fixture(scope="module")
def context(tarball, tmp_path_factory) -> Path:  # noqa: F811
    """``ansible-builder create`` of the shipped definition, laid out as in the checkout: the
    definition in docs/, the tarball in build/."""
    root = tmp_path_factory.mktemp("ee")
    (root / "docs").mkdir()
    (root / "build").mkdir()
    shutil.copy(EXAMPLE, root / "docs")
    shutil.copy(tarball, root / "build")
    run(BIN / "ansible-builder", "create", "--file", str(root / "docs/execution-environment.yml"),
        "--context", str(root / "context"), "--output-filename", "Containerfile", cwd=root)
    return root / "context"


@pytest.fixture(scope="module")
def introspected(context, tmp_path_factory) -> dict[str, list[str]]:
    """{"python": lines, "system": lines} the image would install, made by the context's scripts."""
    image = tmp_path_factory.mktemp("image")
    collections = image / "usr/share/ansible/collections"
    # The galaxy stage: `WORKDIR /build` (the context's _build), then the install.
    run(BIN / "ansible-galaxy", "collection", "install", "--offline", "-r", "requirements.yml",
        "--collections-path", str(collections), cwd=context / "_build", env=isolated_env(collections))
    # The builder stage: the collections' requirements, combined and written for the final stage.
    run(sys.executable, str(context / "_build/scripts/introspect.py"), "introspect", str(collections),
        "--write-pip", str(image / "src/requirements.txt"), "--write-bindep", str(image / "src/bindep.txt"))
    return {"python": introspected_lines(image / "src/requirements.txt"),
            "system": introspected_lines(image / "src/bindep.txt")}


def test_collection_declares_its_dependency_files():
    meta = yaml.safe_load((REPO / "meta/execution-environment.yml").read_text())
    assert meta["dependencies"] == {"python": "requirements.txt", "system": "bindep.txt"}


def test_tarball_carries_the_dependency_files(tarball):  # noqa: F811
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
    assert {"meta/execution-environment.yml", "requirements.txt", "bindep.txt"} <= names


def test_context_holds_the_containerfile_and_the_collection(context, tarball):  # noqa: F811
    containerfile = (context / "Containerfile").read_text()
    assert "ansible-galaxy collection install $ANSIBLE_GALAXY_CLI_COLLECTION_OPTS -r requirements.yml" in containerfile
    assert "/output/scripts/introspect.py introspect" in containerfile
    assert re.search(r'^ARG ANSIBLE_INSTALL_REFS="ansible-core>=2\.19,<2\.20 ansible-runner', containerfile, re.M)
    (entry,) = yaml.safe_load((context / "_build/requirements.yml").read_text())["collections"]
    assert entry["type"] == "file"
    # The tarball the galaxy stage installs is this checkout's, under the version galaxy.yml gives.
    copied = context / "_build" / entry["name"]
    assert copied.name == tarball.name, "docs/execution-environment.yml installs %s, make build writes %s" % (copied.name, tarball.name)
    assert copied.read_bytes() == tarball.read_bytes()


def test_image_gets_the_collection_python_dependencies(introspected):
    declared = requirement_lines(REPO / "requirements.txt")
    expected = [line for line in declared if re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0].lower() not in BUILDER_EXCLUDES]
    assert expected and expected == introspected["python"]


def test_image_gets_the_collection_system_dependencies(introspected):
    declared = requirement_lines(REPO / "bindep.txt")
    assert declared == introspected["system"]
    # ansible-builder needs an RPM-based image: there the controller still gets restic and the ssh
    # client (Ansible's ssh connection; restorable.backup.replica_keys runs ssh-keygen).
    rpm = {line.split()[0] for line in declared if "platform:rpm" in line}
    assert {"restic", "openssh-clients"} <= rpm
