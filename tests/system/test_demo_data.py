"""The demo's generated data: the same bytes on every machine, written once, where the demo
inventory's www and app datasets read it. Small sizes here: the demo's own are only bigger counts."""

import hashlib
import importlib.util
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(name="demo_data")
def fixture_demo_data(monkeypatch):
    spec = importlib.util.spec_from_file_location("demo_data", REPO / "scripts" / "demo_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, value in {"PAGES": 30, "IMAGES": 4, "RELEASES": 3, "BUNDLE_MB": 2, "LOG_DAYS": 2, "LOG_LINES": 50,
                        "UPLOADS": 8, "EXPORT_MONTHS": 2}.items():
        monkeypatch.setattr(module, name, value)
    return module


def digest(tree: Path) -> str:
    hashes = hashlib.sha256()
    for path in sorted(p for p in tree.rglob("*") if p.is_file()):
        hashes.update(str(path.relative_to(tree)).encode() + b"\0" + path.read_bytes())
    return hashes.hexdigest()


def test_same_seed_same_bytes_and_repeats_to_deduplicate(demo_data, tmp_path):
    first, second = demo_data.generate("www", tmp_path / "a"), demo_data.generate("www", tmp_path / "b")
    assert digest(first) == digest(second)
    pages = sorted((first / "site").rglob("*.html"))
    assert [p.read_bytes() for p in pages] == [(first / "archive" / "2025" / p.relative_to(first)).read_bytes() for p in pages]
    bundles = [(first / "downloads" / "releases" / f"app-1.{n}" / "app.bundle").read_bytes() for n in range(3)]
    assert len(set(bundles)) == 3 and sum(a == b for a, b in zip(bundles[0], bundles[1])) > 0.4 * len(bundles[0])


def test_written_once_a_later_run_keeps_it(demo_data, tmp_path, capsys):
    content = demo_data.generate("app", tmp_path)
    manifest = (content / "MANIFEST.json").stat()
    assert demo_data.generate("app", tmp_path) == content
    assert (content / "MANIFEST.json").stat().st_mtime_ns == manifest.st_mtime_ns
    assert "present, kept" in capsys.readouterr().out
    assert not (tmp_path / "content.partial").exists()
    resent = sorted((content / "uploads" / "resent").iterdir())
    originals = [content / "uploads" / "00" / "attachment-0000.bin", content / "uploads" / "04" / "attachment-0004.bin"]
    assert [p.read_bytes() for p in resent] == [p.read_bytes() for p in originals]


@pytest.mark.parametrize(("variable", "host", "dataset", "suffix"), [
    ("DEMO_WWW", "demo-web", "www", "/srv/www"), ("DEMO_APP", "demo-db", "app", "/var/lib/app")])
def test_make_demo_generates_into_the_datasets_of_the_demo_inventory(variable, host, dataset, suffix):
    inventory = yaml.safe_load((REPO / "inventories/demo/group_vars/all/main.yml").read_text())
    host_vars = yaml.safe_load((REPO / f"inventories/demo/host_vars/{host}.yml").read_text())
    (path,) = [p for p in host_vars["restorable_datasets"][dataset]["paths"] if p.endswith(suffix)]
    expected = path.replace("{{ demo_host_root }}", f"{inventory['demo_root']}/hosts/{host}")
    assert re.search(rf"^{variable} := {re.escape(expected)}$", (REPO / "Makefile").read_text(), re.MULTILINE)
