"""The collection as users get it: built with ansible-galaxy, installed, run by FQCN."""

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run(*cmd, **kwargs):
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False, **kwargs)
    assert result.returncode == 0, (
        f"{' '.join(map(str, cmd))} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    )
    return result


def isolated_env(collections_path):
    """Ansible settings that see only the given collections path, never the checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(collections_path),
        ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    return env


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    run(BIN / "ansible-galaxy", "collection", "build", str(REPO), "--output-path", str(out))
    (path,) = out.glob("restorable-backup-*.tar.gz")
    return path


@pytest.fixture(scope="module")
def collections_path(tarball, tmp_path_factory):
    dest = tmp_path_factory.mktemp("installed")
    # cwd outside the checkout: its ansible.cfg would point at collections/, which already
    # holds restorable.backup, and the install would be skipped.
    run(
        BIN / "ansible-galaxy", "collection", "install", "--offline", str(tarball),
        cwd=dest, env=isolated_env(dest),
    )
    assert (dest / "ansible_collections/restorable/backup/MANIFEST.json").is_file()
    return dest


def test_tarball_leaves_out_checkout_artifacts(tarball):
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
    tops = {Path(name).parts[0] for name in names}
    # collections/ would be the symlink back to the checkout, a loop inside the tarball.
    assert not tops & {".venv", ".git", ".ci", "collections", "build"}
    assert not any(name.startswith("tests/output") for name in names)
    assert {"MANIFEST.json", "FILES.json", "meta/runtime.yml"} <= names


def test_validate_playbook_runs_from_installed_collection(collections_path, tmp_path):
    # A missing or empty inventory must fail, not pass with no host to validate.
    env = dict(isolated_env(collections_path), ANSIBLE_INVENTORY_UNPARSED_FAILED="true")
    result = run(
        BIN / "ansible-playbook", "restorable.backup.validate",
        "-i", str(REPO / "inventories/example-fleet"),
        cwd=tmp_path, env=env,
    )
    assert "PLAY RECAP" in result.stdout
